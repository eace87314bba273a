/*
 * ws_frame.h - the WebSocket frame codec (RFC 6455 section 5): an incremental decoder that
 * enforces the framing rules, and an encoder that writes frame headers into caller buffers.
 *
 * Pure code, no I/O. The decoder is resumable: it accepts any split of the input (the 2..14 header
 * bytes may arrive one at a time) and returns payload as spans of the caller's input, unmasked in
 * place, so payload is never copied by the codec. It enforces, for a server (clients' frames):
 *   - frames must be masked (1002)
 *   - reserved bits must be zero unless allowed by a negotiated extension (1002); RSV1 is allowed
 *     only on the first frame of a data message when `allow_rsv1` (permessage-deflate)
 *   - opcodes 3-7 and 11-15 are refused (1002)
 *   - control frames carry at most 125 bytes and have FIN set (1002)
 *   - a 64-bit length with the top bit set, or a non-minimal length encoding, is refused (1002)
 *   - a continuation frame with no message to continue, or a new text/binary frame while a
 *     fragmented message is open, is refused (1002)
 *   - a data message whose announced total exceeds `max_message` is refused (1009) as soon as the
 *     frame header announcing it is complete, before any of its payload is accepted
 * Control frames may come between the fragments of a message.
 */
#ifndef HERALD_WS_FRAME_H
#define HERALD_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* The largest control frame payload (RFC 6455 5.5). */
#define WS_MAX_CONTROL_PAYLOAD 125

/* Close codes (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL       1000
#define WS_CLOSE_GOING_AWAY   1001
#define WS_CLOSE_PROTOCOL     1002
#define WS_CLOSE_UNSUPPORTED  1003
#define WS_CLOSE_NO_STATUS    1005 /* never sent: "the close frame had no code" */
#define WS_CLOSE_ABNORMAL     1006 /* never sent */
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_POLICY       1008
#define WS_CLOSE_TOO_BIG      1009
#define WS_CLOSE_EXTENSION    1010
#define WS_CLOSE_INTERNAL     1011
#define WS_CLOSE_TRY_AGAIN    1013

struct ws_frame_header {
    bool fin;
    bool rsv1;      /* compressed message (permessage-deflate), first frame only */
    uint8_t opcode; /* enum ws_opcode */
    bool masked;
    uint8_t mask[4];
    uint64_t len; /* payload length */
};

struct ws_decoder {
    /* Settings (set before decoding; may change between frames). */
    bool require_mask;    /* true on a server */
    bool allow_rsv1;      /* permessage-deflate was negotiated */
    uint64_t max_message; /* most payload bytes in one (reassembled) data message; 0: no limit */

    /* State (private). */
    int state;
    uint8_t hdr[14];
    uint8_t hdr_len, hdr_need;
    struct ws_frame_header frame; /* the current frame's header */
    uint64_t left;                /* payload bytes of the current frame still to come */
    uint64_t mask_pos;            /* payload bytes of the current frame unmasked so far */
    bool in_message;              /* a fragmented data message is open */
    uint8_t message_opcode;       /* its opcode (TEXT or BINARY) */
    bool message_rsv1;            /* it is compressed */
    uint64_t message_len;         /* its payload bytes so far (announced) */
    const char *reason;           /* static text for the last error */
};

/* What ws_decode returns (errors are negative close codes: -1002, -1009). */
#define WS_DEC_AGAIN   0 /* all input consumed, nothing more to report */
#define WS_DEC_HEADER  1 /* a frame header is complete: d->frame describes it */
#define WS_DEC_PAYLOAD 2 /* *out, *out_len: payload bytes (unmasked in place) inside the input */
#define WS_DEC_END     3 /* the current frame's payload is complete (also after a 0-byte payload) */

/* ws_decoder_init - a decoder at the start of a frame stream with these settings. */
void ws_decoder_init(struct ws_decoder *d, bool require_mask, bool allow_rsv1,
                     uint64_t max_message);

/* ws_decoder_idle - true between messages: no frame header or payload half-read, no fragmented
 * message open, no error. A decoder in this state may be thrown away and made anew. */
bool ws_decoder_idle(const struct ws_decoder *d);

/*
 * ws_decode - consumes input up to the next event. Sets *consumed (bytes used from `in`) and
 * returns one of WS_DEC_* or a negative close code. Call in a loop with the rest of the input until
 * WS_DEC_AGAIN. After WS_DEC_HEADER the caller knows the frame (d->frame; for data frames also
 * whether it continues a message, via d->frame.opcode == WS_OP_CONT, and the message's opcode in
 * d->message_opcode); WS_DEC_PAYLOAD spans follow (none for an empty payload), then WS_DEC_END.
 * The input is modified in place (unmasking). After an error the decoder must not be used again.
 */
int ws_decode(struct ws_decoder *d, uint8_t *in, size_t len, size_t *consumed, uint8_t **out,
              size_t *out_len);

/* ws_frame_header_size - bytes of a header for `len` payload bytes (2, 4 or 10, plus 4 if
 * masked). */
size_t ws_frame_header_size(uint64_t len, bool masked);

/*
 * ws_frame_header_encode - writes a frame header into out (at least 14 bytes) and returns its
 * size. `mask` NULL for an unmasked (server) frame, else the 4 mask bytes (client frames; the
 * caller masks the payload with ws_mask).
 */
size_t ws_frame_header_encode(uint8_t *out, bool fin, bool rsv1, uint8_t opcode, uint64_t len,
                              const uint8_t *mask);

/* ws_mask - XORs p[0..n) with the mask, as if p started `offset` bytes into the payload. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* ws_close_code_valid - 1 if a peer may send this code in a close frame (1000-1003, 1007-1014,
 * 3000-4999), else 0. */
int ws_close_code_valid(unsigned code);

/*
 * ws_close_parse - checks a received close payload: empty (no code: *code = 1005), or a 2-byte
 * valid code followed by a valid UTF-8 reason. Returns 0 (code and reason span set) or -1002 (a
 * 1-byte payload, a code a peer may not send, or a reason that is not UTF-8).
 */
int ws_close_parse(const uint8_t *p, size_t n, unsigned *code, const uint8_t **reason,
                   size_t *reason_len);

#endif
