/*
 * ws_deflate.h - permessage-deflate (RFC 7692): negotiation, and zlib compression with limits.
 *
 * Herald's policy keeps memory per connection low and lets a broadcast message be compressed once
 * for every subscriber: the server always answers with server_no_context_takeover (each outgoing
 * message is compressed on its own, so the same compressed bytes suit every receiver) and, unless
 * configured otherwise, with client_no_context_takeover (a connection keeps no inflate window
 * between messages). Window sizes are honoured as negotiated.
 *
 * Negotiation is pure string code. The deflater and inflater wrap zlib; a deflater is meant to be
 * kept per thread and reused (deflateInit is expensive), an inflater per connection only while a
 * compressed message is being received when client_no_context_takeover is in force.
 */
#ifndef HERALD_WS_DEFLATE_H
#define HERALD_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <zlib.h>

#include "dmsg.h"

struct ws_deflate_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 9..15: the server's LZ77 window when compressing */
    uint8_t client_max_window_bits; /* 8..15: the client's window, which bounds our inflater */
};

/* What the server allows. */
struct ws_deflate_config {
    bool enabled;
    bool allow_client_context_takeover; /* false (default): always ask client_no_context_takeover */
};

/*
 * ws_deflate_negotiate - reads the Sec-WebSocket-Extensions value(s) `offers` (comma-separated
 * extension offers, each "name; param; param=value"; several header fields joined with ", ")
 * and accepts the first acceptable permessage-deflate offer (RFC 7692 5 and 7.1). An offer with an
 * unknown or repeated parameter, or an invalid value, is declined and the next one considered; an
 * offer of server_max_window_bits=8 is declined too, because zlib's raw deflate cannot use an
 * 8-bit window. Returns 1 and fills `out` and the response value `resp` (NUL-terminated, e.g.
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover") when accepted;
 * 0 when there is nothing to accept (or the config disables it); HERALD_ELIMIT if resp is too
 * small.
 */
int ws_deflate_negotiate(const char *offers, size_t len, const struct ws_deflate_config *cfg,
                         struct ws_deflate_params *out, char *resp, size_t resp_cap);

struct ws_inflater {
    z_stream zs;
    bool ready;      /* inflateInit2 was done */
    int window_bits; /* from client_max_window_bits (15 when not negotiated) */
    bool no_context; /* client_no_context_takeover: reset (and free) after each message */
};

/* ws_inflater_init - sets up (without allocating) an inflater for these parameters. */
void ws_inflater_init(struct ws_inflater *inf, const struct ws_deflate_params *p);
/* ws_inflater_deinit - frees zlib's state. */
void ws_inflater_deinit(struct ws_inflater *inf);

/*
 * ws_inflate - inflates one frame's compressed payload `in[0..len)` of a message, appending the
 * output to `out`. With `fin` (last frame of the message) the RFC 7692 tail 00 00 FF FF is fed
 * too, and with no_context the zlib state is freed afterwards. Output is bounded: if the message
 * would grow past `max_out` bytes in `out` (counting what `out` already holds) it stops and returns
 * -1009, so a small compressed frame cannot expand without limit (also when `out` reaches its own
 * limit). Returns 0, -1009, -1007 for corrupt compressed data (including a message that, with the
 * tail, does not end on a deflate block boundary), or -1011 when out of memory. After an error
 * the zlib state is freed. Any thread, one at a time per inflater.
 */
int ws_inflate(struct ws_inflater *inf, const uint8_t *in, size_t len, bool fin, struct dmsg *out,
               size_t max_out);

/*
 * ws_deflate_message - compresses a whole message with no context takeover (the only mode the
 * server sends in) and a window of `window_bits`, using a deflater cached per thread. The result,
 * without the trailing 00 00 FF FF, is written to out[0..*out_len) when it fits in out_cap
 * (zlib's output, tail included, must leave at least one byte of out_cap free). window_bits is
 * clamped to 9..15. An empty message compresses to the single byte 00.
 * Returns 0, HERALD_ELIMIT when it does not fit (send it uncompressed), or -ENOMEM.
 */
int ws_deflate_message(const uint8_t *in, size_t len, int window_bits, uint8_t *out, size_t out_cap,
                       size_t *out_len);

/* ws_deflate_iov - ws_deflate_message over a message in scattered buffers (a dmsg's iovecs), so
 * a received message is compressed without first being made contiguous. */
int ws_deflate_iov(const struct iovec *iov, int iovcnt, int window_bits, uint8_t *out,
                   size_t out_cap, size_t *out_len);

/*
 * ws_deflate_part - compresses a message in pieces, at different times, on the calling thread's
 * deflater for `window_bits`: `first` starts a new message (no context from earlier ones), each
 * piece ends with a sync flush so the output so far is complete, and `last` strips the final
 * 00 00 FF FF as ws_deflate_message does. The broker compresses a delivery's body before it knows
 * the message's offset, and only the few bytes of the offset under the topic's lock. Between the
 * first and the last piece the thread must not compress anything else with the same window bits.
 * The last piece must not be empty (after a flush, zlib writes nothing for no input, so there
 * would be no tail to strip: HERALD_ELIMIT).
 * Writes this piece's output to out[0..*out_len). Returns 0, HERALD_ELIMIT (out too small; the
 * message cannot be finished: send it uncompressed) or -ENOMEM.
 */
int ws_deflate_part(const uint8_t *in, size_t len, int window_bits, bool first, bool last,
                    uint8_t *out, size_t out_cap, size_t *out_len);

/* ws_deflate_thread_cleanup - frees the calling thread's cached deflater (call before a worker
 * thread exits). */
void ws_deflate_thread_cleanup(void);

#endif
