/*
 * ws_conn.h - a connection after the WebSocket upgrade: frames in, messages to the endpoint,
 * frames out, the close handshake and the ping/pong keepalive.
 *
 * Runs inside conn.c's run loop, on the thread that runs the connection (see conn.h); it reads
 * from the connection's input dmsg and queues onto its outq, and performs no socket I/O itself
 * except through conn's flush. Received data frames are copied once, from the read window into
 * the message buffer (a dmsg); a message sent back (echo) moves that buffer into the send queue
 * without a further copy.
 *
 * Limits: a message over --max-message is refused with 1009 as soon as its size is known (the
 * frame header, or while inflating), text is validated as UTF-8 as it arrives (1007 at the first
 * bad byte), protocol violations close with 1002. Each close carries a short reason.
 */
#ifndef HERALD_WS_CONN_H
#define HERALD_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsg.h"
#include "ws_handshake.h"

struct conn;

struct ws_endpoint {
    const char *path;              /* request path it is served at (exact match) */
    struct ws_handshake_config hs; /* its subprotocols, origins and compression policy */
    /*
     * on_message - a complete, validated message (opcode WS_OP_TEXT or WS_OP_BINARY). The handler
     * may move msg's buffers away (ws_send_dmsg does); whatever is left is freed afterwards.
     * Returns 0, or a close code to end the connection with.
     */
    int (*on_message)(struct conn *c, uint8_t opcode, struct dmsg *msg);
    /* on_open - the upgrade succeeded (the 101 is queued); may queue a first message. Returns 0,
     * or -1 to refuse (the connection closes with 1011). Optional. */
    int (*on_open)(struct conn *c, void *ctx);
    /* on_run - called on every turn of the connection after input was handled and before output
     * is flushed (the broker pulls deliveries here). *more holds what the last turn left in it
     * and is set to whether output is still waiting that could not be queued yet (the connection
     * then runs again once it has sent). Returns 0 or a close code. Optional. */
    int (*on_run)(struct conn *c, bool *more);
    /* on_close - the connection is closing; release what on_open made. Optional. */
    void (*on_close)(struct conn *c);
    void *ctx; /* passed to on_open */
};

/* ws_echo_on_message - the echo endpoint (--echo-path): sends every message back with its opcode,
 * moving the received buffers into the send queue. */
int ws_echo_on_message(struct conn *c, uint8_t opcode, struct dmsg *msg);

/*
 * ws_conn_upgrade - completes the handshake `hs` on c: queues the 101 response and switches c to
 * WebSocket framing (bytes already read after the request head are frames). Returns 0 or
 * -ENOMEM (the caller then answers 500 and closes).
 */
int ws_conn_upgrade(struct conn *c, const struct ws_endpoint *ep, const struct ws_handshake *hs);

/* ws_conn_process - decodes and handles the frames buffered in c's input. Returns 0, or -1 when
 * the connection must close now (nothing more to send). */
int ws_conn_process(struct conn *c);

/* ws_conn_run - gives the endpoint its turn (on_run) after input was handled: the broker queues
 * deliveries here. Returns whether the endpoint has more output waiting to be queued. */
bool ws_conn_run(struct conn *c);

/* ws_conn_on_input - the peer sent something: it is alive (moves the keepalive deadline). */
void ws_conn_on_input(struct conn *c);

/* ws_conn_on_deadline - the keepalive deadline passed: ping, or close if the last ping went
 * unanswered. Returns 0, or -1 to close now. */
int ws_conn_on_deadline(struct conn *c);

/* ws_send - queues one unfragmented message (copied). Returns 0 or -ENOMEM. */
int ws_send(struct conn *c, uint8_t opcode, const void *data, size_t len);

/* ws_send_dmsg - queues the unconsumed bytes of msg as one message, taking its buffers (no copy
 * unless it is compressed). Returns 0 or -ENOMEM. */
int ws_send_dmsg(struct conn *c, uint8_t opcode, struct dmsg *msg);

/* ws_conn_ctx - the ctx of the endpoint c was upgraded on. */
void *ws_conn_ctx(const struct conn *c);

/* ws_conn_shared_deflate - true when c negotiated permessage-deflate in a form that lets it take
 * frames compressed once for many receivers: no server context (always so) and the full 15-bit
 * window (a client that asked for a smaller one is sent such frames uncompressed). */
bool ws_conn_shared_deflate(const struct conn *c);

/* ws_close - queues a close frame with `code` and a short static `reason`, after which the
 * connection reads nothing more from the WebSocket: once the frame is sent it half-closes and
 * lingers, draining input until the peer's FIN or LINGER_SECONDS, so the peer reads the frame
 * rather than a reset. */
void ws_close(struct conn *c, unsigned code, const char *reason);

/* ws_conn_goodbye - at server shutdown: queues a 1001 close frame and tries once to send what is
 * queued, without waiting and without touching the wheel (the caller then destroys c). */
void ws_conn_goodbye(struct conn *c);

/* ws_conn_free - frees the WebSocket state of a closing connection. */
void ws_conn_free(struct conn *c);

#endif
