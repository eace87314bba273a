/*
 * fuzz_proto.c - libFuzzer driver for the client protocol's request parser and reply writers.
 *
 * The first byte picks the entry point (a WebSocket request, an HTTP publish body, or an array of
 * publish bodies); the rest is the text. What must hold for any input:
 *  - the parser returns 0 or -1, and -1 always comes with an error code and a message;
 *  - it is stricter than cJSON, never looser: whatever it accepts, cJSON parses too;
 *  - every span it returns (id, topic, data, info) lies inside the input, and the raw ones are
 *    JSON texts of their own (data and info parse; an id is a number or a string);
 *  - the reply built from an accepted request (the ack, or an error echoing the id) fits the
 *    documented size and is JSON that cJSON parses, with the id echoed byte for byte.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static int inside(const char *text, size_t len, const char *p, size_t n)
{
    return p >= text && n <= len && (size_t)(p - text) <= len - n;
}

/* A raw span must be a complete JSON text: cJSON parses exactly those bytes. */
static void check_json(const char *p, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(p, n);
    check(j != NULL);
    cJSON_Delete(j);
}

static void check_reply(const char *out, size_t n, size_t cap, const struct proto_request *req)
{
    check(n > 0 && n < cap && out[n] == '\0');
    check_json(out, n);
    if (req->id) {
        const char *at = strstr(out, "\"id\":");
        check(at && strncmp(at + 5, req->id, req->id_len) == 0);
    }
}

static void check_request(const char *text, size_t len, const struct proto_request *req)
{
    check(req->op >= PROTO_SUB && req->op <= PROTO_PRESENCE);
    if (req->id) {
        check(inside(text, len, req->id, req->id_len) && req->id_len > 0);
        check(req->id[0] == '"' || req->id[0] == '-' || (req->id[0] >= '0' && req->id[0] <= '9'));
        check_json(req->id, req->id_len);
    }
    if (req->topic)
        check(inside(text, len, req->topic, req->topic_len));
    if (req->data) {
        check(inside(text, len, req->data, req->data_len));
        check_json(req->data, req->data_len);
    }
    if (req->info) {
        check(inside(text, len, req->info, req->info_len) && req->info_len <= PROTO_INFO_MAX);
        check_json(req->info, req->info_len);
    }
    check(req->last <= 1000000 && req->limit <= 1000);
    check(memchr(req->epoch, '\0', sizeof(req->epoch)) != NULL);

    /* Replies: room for 1 KiB plus the id and topic, as proto.h promises. */
    size_t cap = 1024 + req->id_len + req->topic_len + 1;
    char *out = malloc(cap);
    size_t n;
    switch (req->op) {
    case PROTO_SUB:
        n = proto_ack_sub(out, cap, req, "5d2a0f6b9e8c1a73-4", 44, 4, 42, false);
        break;
    case PROTO_UNSUB:
        n = proto_ack_unsub(out, cap, req);
        break;
    case PROTO_PUB:
        n = proto_ack_pub(out, cap, req, 46, 2);
        break;
    case PROTO_PING:
        n = proto_pong(out, cap, req->id, req->id_len);
        break;
    default: /* presence: the head, no members, the end the caller writes */
        n = proto_ack_presence_head(out, cap - 2, req, 0);
        if (n > 0) {
            memcpy(out + n, "]}", 3);
            n += 2;
        }
        break;
    }
    check_reply(out, n, cap, req);
    n = proto_error(out, cap, req->id, req->id_len, PROTO_E_BAD_TOPIC, "a \"quoted\"\n reason");
    check_reply(out, n, cap, req);
    free(out);
}

static void parse_one(const char *text, size_t len, int http)
{
    struct proto_request req;
    memset(&req, 0xA5, sizeof(req)); /* nothing may be read that the parser did not set */
    const char *code = NULL, *message = NULL;
    int rc = http ? proto_parse_publish(text, len, &req, &code, &message)
                  : proto_parse(text, len, &req, &code, &message);
    check(rc == 0 || rc == -1);
    if (rc < 0) {
        check(code != NULL && message != NULL);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    check(j != NULL); /* stricter than cJSON, never looser */
    cJSON_Delete(j);
    check_request(text, len, &req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    /* A copy of exactly the text: a read past its end is caught by ASan. */
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    memcpy(text, data + 1, len);
    if (mode < 2) {
        parse_one(text, len, mode == 1);
    } else {
        size_t pos = 0, prev = 0, n = 0;
        const char *el;
        size_t el_len;
        int rc;
        while ((rc = proto_array_next(text, len, &pos, &el, &el_len)) == 1) {
            /* len + 1 marks "past the closing bracket" (proto.h). */
            check(inside(text, len, el, el_len) && pos > prev && pos <= len + 1);
            prev = pos;
            check(++n <= len);
            parse_one(el, el_len, 1);
        }
        check(rc == 0 || rc == -1);
    }
    free(text);
    return 0;
}
