/*
 * wsc.h - a small blocking WebSocket client in C, for Herald's integration tests and tools.
 *
 * It speaks the client side of RFC 6455 over a blocking TCP socket: the opening handshake, masked
 * frames (any opcode, bits and fragmentation, also deliberately invalid ones, so tests can probe
 * the server), and reading the server's frames one at a time. It uses Herald's own frame codec
 * (ws_frame.h) with masking not required. Not thread-safe; one wsc per thread.
 */
#ifndef HERALD_WSC_H
#define HERALD_WSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"

struct wsc {
    int fd;
    struct ws_decoder dec;
    uint8_t *buf; /* received bytes not yet decoded */
    size_t len, cap;
    uint32_t rng; /* for masks */
};

struct wsc_frame {
    bool fin, rsv1;
    uint8_t opcode;
    uint8_t *data; /* malloc'ed payload (NUL-terminated), or NULL */
    size_t len;
};

/*
 * wsc_connect - connects to 127.0.0.1:port and sends an upgrade request for `path` with the
 * extra header lines `extra` (each ending in "\r\n", may be NULL), then reads the response head
 * into `head` (NUL-terminated, at most cap bytes). Returns the HTTP status (101 on success, with
 * the connection ready for frames), or -1 on a network error. On any other status the socket
 * stays open for the caller to inspect (the body is not read).
 */
int wsc_connect(struct wsc *c, int port, const char *path, const char *extra, char *head,
                size_t cap);

/* wsc_connect_raw - connects without a handshake; `request` is sent as is. Returns as above. */
int wsc_connect_raw(struct wsc *c, int port, const char *request, char *head, size_t cap);

/* wsc_send_frame - sends one frame. `masked` false sends it unmasked (a protocol violation the
 * server must refuse). rsv is the three RSV bits (0..7). Returns 0 or -1. */
int wsc_send_frame(struct wsc *c, bool fin, unsigned rsv, uint8_t opcode, const void *data,
                   size_t len, bool masked);

/* wsc_send - one unfragmented, masked message. */
int wsc_send(struct wsc *c, uint8_t opcode, const void *data, size_t len);

/* wsc_send_raw - raw bytes. */
int wsc_send_raw(struct wsc *c, const void *data, size_t len);

/*
 * wsc_recv - the next frame from the server within timeout_ms. Returns 0 (f filled; free f->data
 * with wsc_frame_free), 1 when the server closed TCP, -1 on timeout or error, or a negative close
 * code when the server's bytes break the protocol.
 */
int wsc_recv(struct wsc *c, struct wsc_frame *f, int timeout_ms);

/* wsc_recv_message - like wsc_recv, but joins fragments (control frames in between are
 * returned first if `ctrl_ok`, else skipped). */
int wsc_recv_message(struct wsc *c, struct wsc_frame *f, int timeout_ms);

void wsc_frame_free(struct wsc_frame *f);

/* wsc_close - closes the socket and frees the buffer. */
void wsc_close(struct wsc *c);

/* wsc_expect_close - reads frames until a close frame (skipping data and control frames), then
 * returns its code (1005 when it had none); 1006 if TCP closed without one, -1 on timeout. */
int wsc_expect_close(struct wsc *c, int timeout_ms);

/* wsc_wait_eof - 1 if the server closes TCP within timeout_ms (data read meanwhile is dropped),
 * else 0. */
int wsc_wait_eof(struct wsc *c, int timeout_ms);

#endif
