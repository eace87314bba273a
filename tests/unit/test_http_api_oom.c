/*
 * test_http_api_oom.c - POST /api/publish when the broker runs out of memory. malloc and calloc
 * are wrapped (see the Makefile) so that a chosen size fails: here the new topic's allocation.
 * The answer must say so (503, "internal": worth a retry), not blame the request (it said 400
 * bad_topic, which tells a backend to drop the message).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "http_api.h"
#include "http_parse.h"
#include "outq.h"
#include "../../src/broker_internal.h" /* struct topic: the size of a topic's allocation */

#include "malloc_fail.h"

#define KEY "0123456789abcdef-key"

static void nop(void *owner)
{
    (void)owner;
}

static void drop(struct broker_batch *batch, void *ctx)
{
    (void)ctx;
    free(batch);
}

/* POSTs body to /api/publish; returns the status and copies the response body into out. */
static int publish(const struct http_api *api, const char *body, char *out, size_t cap)
{
    char head[512];
    snprintf(head, sizeof(head),
             "POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY
             "\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    struct http_limits lim;
    http_limits_default(&lim);
    struct http_parser p;
    http_parser_init(&p, &lim);
    struct http_request req;
    http_request_init(&req);
    size_t used = 0;
    cr_assert_eq(http_parse_feed(&p, &req, head, strlen(head), &used), HTTP_PARSE_DONE);
    struct dmsg b;
    dmsg_init(&b, 1 << 20);
    cr_assert_eq(dmsg_append(&b, body, strlen(body)), 0);
    struct outq q;
    outq_init(&q);
    cr_assert_eq(http_api_handle(api, &req, &b, 1, &q), 0);
    /* The response: status line, headers, body, in the queue's buffers. */
    char resp[4096];
    size_t n = 0;
    for (uint32_t i = 0; i < q.count; i++) {
        const struct outq_seg *sg = &q.segs[(q.head + i) % q.cap];
        cr_assert_eq(sg->kind, OUTQ_BUF);
        const struct obuf *o = sg->buf.b;
        size_t k = o->len - o->start;
        cr_assert_lt(n + k, sizeof(resp));
        memcpy(resp + n, o->data + o->start, k);
        n += k;
    }
    resp[n] = '\0';
    int status = atoi(resp + 9);
    const char *at = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(at);
    snprintf(out, cap, "%s", at + 4);
    outq_deinit(&q);
    dmsg_deinit(&b);
    http_request_deinit(&req);
    return status;
}

Test(http_api_oom, a_publish_without_memory_is_503_internal_not_a_bad_topic)
{
    struct broker_config cfg = {.history_size = 10, .max_subscriptions = 8};
    struct broker_hooks hooks = {.ref = nop, .unref = nop, .dispatch = drop};
    struct broker *b = broker_new(&cfg, &hooks);
    atomic_uint nconns = 0;
    struct http_api api = {.broker = b, .api_key = KEY, .nconns = &nconns};
    char out[1024];
    fail_size = sizeof(struct topic) + strlen("oom") + 1; /* the new topic "oom" */
    int st = publish(&api, "{\"topic\":\"oom\",\"data\":1}", out, sizeof(out));
    int batch = publish(&api, "[{\"topic\":\"oom\",\"data\":1}]", out + 512, sizeof(out) - 512);
    fail_size = 0;
    cr_assert_eq(st, 503, "status %d: %s", st, out);
    cr_assert_not_null(strstr(out, "\"code\":\"internal\""), "%s", out);
    cr_assert_eq(batch, 200, "a batch reports per message");
    cr_assert_not_null(strstr(out + 512, "\"code\":\"internal\""), "%s", out + 512);
    /* With memory, the same request is published. */
    cr_assert_eq(publish(&api, "{\"topic\":\"oom\",\"data\":1}", out, sizeof(out)), 200, "%s", out);
    cr_assert_not_null(strstr(out, "\"offset\":1"), "%s", out);
    broker_free(b);
}
