/*
 * wsc_wire.h - the client side of the wire, without I/O: what Herald's blocking test client (wsc)
 * and the non-blocking load generator (bench/wsload) both need, written once.
 *
 * - the upgrade request and the check of the server's 101 response;
 * - client frame headers (masked, any RSV bits) on top of Herald's own codec (ws_frame.h);
 * - herald.v1 requests (proto/broker.md) built with their JSON escaped;
 * - inflating a permessage-deflate message (RFC 7692) received from the server.
 *
 * A fixed handshake key is used (RFC 6455's example): a test or a benchmark gains nothing from a
 * random one, and the server must not care. Pure code; any thread.
 */
#ifndef HERALD_WSC_WIRE_H
#define HERALD_WSC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WSC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* base64(SHA-1(WSC_KEY + GUID)) */

/*
 * wsc_upgrade_request - writes "GET path HTTP/1.1" with Host, the upgrade headers, WSC_KEY,
 * version 13, Sec-WebSocket-Protocol when `subprotocol` is not NULL, and the `extra` header lines
 * (each ending in "\r\n"; may be NULL). Returns its length, or -1 if it does not fit in cap.
 */
int wsc_upgrade_request(char *out, size_t cap, const char *host, const char *path,
                        const char *subprotocol, const char *extra);

/*
 * wsc_upgrade_check - looks at a complete response head (up to its blank line, NUL-terminated):
 * returns its HTTP status, or -1 if it is not an HTTP/1.1 status line. For 101, *accepted is set
 * when Sec-WebSocket-Accept matches WSC_KEY and *extensions when the server agreed to one.
 */
int wsc_upgrade_check(const char *head, bool *accepted, bool *extensions);

/* wsc_frame_header - a client frame header for a `len`-byte payload, masked with `mask` (NULL:
 * unmasked, a violation the server must refuse), `rsv` the three RSV bits. Writes at most 14
 * bytes; returns how many. The payload must then be masked with ws_mask(). */
size_t wsc_frame_header(uint8_t *out, bool fin, unsigned rsv, uint8_t opcode, size_t len,
                        const uint8_t mask[4]);

/*
 * herald.v1 requests: {"op":"sub","topic":..[,"id":..]<extra>} and
 * {"op":"pub","topic":..,"data":<data>[,"id":..]}. `extra` (may be NULL) is raw JSON members
 * starting with a comma (",\"last\":10"); `data` and `id` are raw JSON values (id may be NULL).
 * The topic is escaped. Return the length, or -1 if it does not fit in cap (NUL included).
 */
int wsc_herald_sub(char *out, size_t cap, const char *topic, const char *id, const char *extra);
int wsc_herald_pub(char *out, size_t cap, const char *topic, const char *data, const char *id);

/*
 * wsc_inflate - inflates the payload of a compressed message (RSV1 set; the RFC 7692 tail
 * 00 00 FF FF is added here) with a 15-bit window. Returns 0 with *out malloc'ed and
 * NUL-terminated (caller frees) and *out_len, or -1 if the data is corrupt or over max_out bytes.
 */
int wsc_inflate(const uint8_t *in, size_t len, size_t max_out, char **out, size_t *out_len);

#endif
