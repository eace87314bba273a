/*
 * ws_handshake.h - the server side of the WebSocket opening handshake (RFC 6455 4.2).
 *
 * Pure code over a parsed HTTP request (no I/O): decides whether the request is a valid upgrade,
 * negotiates a subprotocol and permessage-deflate, and writes the 101 response. The accept key is
 * base64(SHA-1(key + GUID)) computed with OpenSSL.
 */
#ifndef HERALD_WS_HANDSHAKE_H
#define HERALD_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parse.h"
#include "ws_deflate.h"

struct ws_handshake_config {
    const char *const *protocols;       /* subprotocols the endpoint speaks, in preference order,
                                           NULL-terminated; NULL: none */
    const char *const *allowed_origins; /* exact Origin values allowed, NULL-terminated; NULL:
                                           any origin (and requests without Origin) */
    struct ws_deflate_config deflate;
};

struct ws_handshake {
    char accept[32];                 /* Sec-WebSocket-Accept value, NUL-terminated */
    const char *protocol;            /* chosen subprotocol (from cfg->protocols), or NULL */
    bool deflate;                    /* permessage-deflate accepted */
    struct ws_deflate_params params; /* its parameters */
    char extensions[160];            /* Sec-WebSocket-Extensions response value, if deflate */
    const char *reason;              /* on failure: a short static reason for the 4xx body */
};

/* ws_is_upgrade - 1 if the request asks for a WebSocket upgrade (Connection lists "upgrade" and
 * Upgrade lists "websocket"), so the handshake rules apply; else 0. */
int ws_is_upgrade(const struct http_request *req);

/*
 * ws_handshake_check - validates an upgrade request and negotiates. Returns 0 (hs filled) or a
 * negative HTTP status with hs->reason set:
 *   -400  not GET, not HTTP/1.1, no Host, Sec-WebSocket-Key missing or not 16 bytes of base64,
 *         or a malformed header
 *   -426  Sec-WebSocket-Version missing or not 13 (the response must carry
 *         "Sec-WebSocket-Version: 13")
 *   -403  Origin not in cfg->allowed_origins
 * A client that offers subprotocols none of which the endpoint speaks gets no
 * Sec-WebSocket-Protocol in the response (the client decides whether to go on).
 */
int ws_handshake_check(const struct http_request *req, const struct ws_handshake_config *cfg,
                       struct ws_handshake *hs);

/* ws_handshake_response - writes the 101 response head (terminated by an empty line) to out;
 * returns its length, or 0 if cap is too small (512 bytes always suffice). */
size_t ws_handshake_response(const struct ws_handshake *hs, char *out, size_t cap);

/* ws_accept_key - base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) into out (29 bytes
 * with the NUL). */
void ws_accept_key(const char *key, size_t len, char out[29]);

#endif
