/*
 * proto.h - the broker's JSON protocol, version herald.v1 (proto/broker.md is the spec):
 * parsing client requests and writing the server's replies.
 *
 * Pure code, no I/O. Requests are parsed with cJSON's length-bounded API (nothing is read past
 * the frame, and cJSON's global error position is never consulted), then the raw source text of
 * "id" and "data" is located so both are passed on byte for byte unchanged: a publisher's data
 * reaches subscribers exactly as sent, and a reply echoes the request's id exactly as sent.
 *
 * Requests (one JSON object per text frame; unknown fields are ignored):
 *   {"op":"sub","topic":"chat.room1","id":1}
 *   {"op":"sub","topic":"chat.room1","recover":{"epoch":"...","offset":41}}
 *   {"op":"sub","topic":"chat.room1","last":10}
 *   {"op":"unsub","topic":"chat.room1"}
 *   {"op":"pub","topic":"chat.room1","data":{"text":"hi"}}
 *   {"op":"sub","topic":"chat.room1","presence":{"info":{"name":"ann"}}}
 *   {"op":"presence","topic":"chat.room1","limit":10}
 *   {"op":"ping"}
 * Server messages: welcome, ack, error, pong (here), and msg (built by broker.c).
 */
#ifndef HERALD_PROTO_H
#define HERALD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION "herald.v1"

enum proto_op { PROTO_SUB = 1, PROTO_UNSUB, PROTO_PUB, PROTO_PING, PROTO_PRESENCE };

#define PROTO_INFO_MAX      256 /* bytes of a presence "info" object */
#define PROTO_LIMIT_DEFAULT 100 /* members listed by a presence query without "limit" */

struct proto_request {
    enum proto_op op;
    const char *id; /* raw JSON text of "id" inside the input (a number or a string), or NULL */
    size_t id_len;
    const char *topic; /* "topic" string contents inside the input (no escapes allowed), or NULL */
    size_t topic_len;
    const char *data; /* raw JSON text of "data" inside the input, or NULL */
    size_t data_len;
    bool recover;     /* sub: "recover" given */
    char epoch[40];   /* its "epoch" */
    uint64_t offset;  /* its "offset" */
    unsigned last;    /* sub: "last" (0 if absent) */
    bool presence;    /* sub: "presence" true or an object */
    const char *info; /* sub: raw JSON text of "presence":{"info":{..}} inside the input, or NULL */
    size_t info_len;
    unsigned limit; /* presence: "limit" (PROTO_LIMIT_DEFAULT if absent) */
};

/* Stable error codes (the "code" of an error message). */
#define PROTO_E_BAD_JSON      "bad_json"    /* not valid JSON */
#define PROTO_E_BAD_REQUEST   "bad_request" /* not an object, or a field of the wrong type */
#define PROTO_E_UNKNOWN_OP    "unknown_op"
#define PROTO_E_MISSING_FIELD "missing_field"
#define PROTO_E_BAD_TOPIC     "bad_topic"
#define PROTO_E_TOO_MANY_SUBS "too_many_subscriptions"
#define PROTO_E_NOT_SUB       "not_subscribed"
#define PROTO_E_FORBIDDEN     "forbidden"
#define PROTO_E_BINARY        "binary_not_supported"
#define PROTO_E_INTERNAL      "internal"

/*
 * proto_parse - parses one request from text[0..len). Returns 0 (req filled; its pointers point
 * into text) or -1 with *code one of PROTO_E_* and *message a short static explanation; req->id
 * is still set when the id could be found, so the error can echo it. Validation: "op" a known
 * string; "id" absent, a number or a string; "topic" a string (required for sub, unsub, pub; its
 * contents are checked by the broker, but a string with escapes is refused here); "data" any
 * value (required for pub); "recover" an object with a string "epoch" (< 40 bytes) and a
 * non-negative integer "offset" (at most 2^53-1); "last" a non-negative integer (at most
 * 1000000); "presence" true, false or an object whose "info" is absent, null or an object of at
 * most PROTO_INFO_MAX bytes (raw span kept); "limit" an integer 0..1000. Only the fields of the
 * request's op are checked and set (a ping's "topic" is ignored; "data" is set for pub only). "op"
 * is compared as written ("p\u0069ng" is unknown). The text must be strict RFC 8259 JSON (bad_json
 * otherwise), stricter than cJSON: no leading zeros, no "1.", no raw control characters in strings,
 * no byte order mark, only the four JSON whitespace characters; so "data" is JSON for every
 * subscriber's parser. UTF-8 is the caller's to check, as cJSON passes any byte through: WebSocket
 * text frames are checked before (ws_conn), HTTP bodies by the publish API (http_api). A top-level
 * field counts only when its name is written without escapes
 * ("\u0069d" is an unknown field); when one appears twice, the last occurrence counts (for the
 * typed value and the raw span alike).
 */
int proto_parse(const char *text, size_t len, struct proto_request *req, const char **code,
                const char **message);

/* proto_parse_publish - one message for the HTTP publish API: {"topic":..,"data":..}, where "op"
 * may be left out (it must be "pub" if given). Same rules and results as proto_parse. */
int proto_parse_publish(const char *text, size_t len, struct proto_request *req, const char **code,
                        const char **message);

/* proto_array_next - walks the elements of a JSON array text[0..len): start with *pos = 0; returns
 * 1 with the next element's raw text in *el and *el_len, 0 after the last one, -1 if the text is
 * not an array (structure only: elements are checked by whoever parses them). *pos is the walk's
 * state: an offset into the text, or len + 1 once the closing bracket has been passed. */
int proto_array_next(const char *text, size_t len, size_t *pos, const char **el, size_t *el_len);

/*
 * Reply writers: each writes one complete JSON text into out[0..cap), NUL-terminated, and returns
 * its length (not counting the NUL), or 0 when it does not fit (1 KiB plus the id and topic lengths
 * always does). `id` (raw, id_len) may be NULL: the field is then omitted. Strings (session,
 * topic, epoch, code, message) are escaped; the id is copied as is. Any thread.
 */
size_t proto_welcome(char *out, size_t cap, const char *session);
size_t proto_error(char *out, size_t cap, const char *id, size_t id_len, const char *code,
                   const char *message);
size_t proto_pong(char *out, size_t cap, const char *id, size_t id_len);
/* ack of sub: {"type":"ack","op":"sub","id":..,"topic":..,"epoch":..,"offset":N,"replay":N}
 * plus "delivered":N when `delivered` is not 0 (broker_sub_result), and "recovered":true|false
 * when the request asked to recover, unless `recovered` is PROTO_RECOVERY_IGNORED (a wildcard
 * pattern, where recovery is not tried). */
#define PROTO_RECOVERY_IGNORED (-1)
size_t proto_ack_sub(char *out, size_t cap, const struct proto_request *req, const char *epoch,
                     uint64_t offset, uint64_t replay, uint64_t delivered, int recovered);
/* The start of a presence ack, up to and including the members array's '[':
 * {"type":"ack","op":"presence","id":..,"topic":..,"count":N,"members":[
 * The caller appends the members (comma-separated) and "]}". */
size_t proto_ack_presence_head(char *out, size_t cap, const struct proto_request *req,
                               size_t count);
/* A presence member: {"session":"<session>","info":<info raw, or null>} */
size_t proto_member(char *out, size_t cap, const char *session, const char *info, size_t info_len);
size_t proto_ack_unsub(char *out, size_t cap, const struct proto_request *req);
/* ack of pub: {"type":"ack","op":"pub","id":..,"topic":..,"offset":N,"reach":N} */
size_t proto_ack_pub(char *out, size_t cap, const struct proto_request *req, uint64_t offset,
                     unsigned reach);

/* proto_json_escape - writes s[0..n) as JSON string contents (no quotes) into out, NUL-terminated:
 * '"' and '\' get a backslash, bytes below 0x20 become \u00XX, others are copied. Returns the
 * length, or 0 if it does not fit (or n is 0). Messages and codes are static ASCII, but this keeps
 * any reply valid JSON. */
size_t proto_json_escape(char *out, size_t cap, const char *s, size_t n);

#endif
