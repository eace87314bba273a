/* http_api.c - publishing over HTTP, the topic list and /metrics (see http_api.h). */
#include "http_api.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "http_handler.h"
#include "proto.h"
#include "textbuf.h"
#include "topic.h"
#include "utf8.h"

/* Topics listed by /api/topics at most (the response says when there are more). */
#define TOPICS_MAX 10000

static bool path_is(const struct http_request *req, const char *path)
{
    return req->path_len == strlen(path) &&
           memcmp(req->buf + req->path_off, path, req->path_len) == 0;
}

int http_api_route(const struct http_request *req)
{
    return path_is(req, "/metrics") || path_is(req, "/api/publish") ||
           path_is(req, "/api/topics") || path_is(req, "/api/presence");
}

/* GET and HEAD: HEAD is answered as GET, without the body. */
static bool is_get(const struct http_request *req)
{
    return req->method == HTTP_GET || req->method == HTTP_HEAD;
}

int http_api_wants_body(const struct http_request *req)
{
    return req->method == HTTP_POST && path_is(req, "/api/publish");
}

/* How an API request is answered: HEAD gets the headers GET would, without the body. */
struct reply {
    struct outq *out;
    int keep_alive;
    bool head;
};

static int reply_json_extra(const struct reply *r, int status, const char *extra, const char *body,
                            size_t len)
{
    return http_json_response(r->out, status, r->keep_alive, extra, body, len, r->head);
}

static int reply_json(const struct reply *r, int status, const char *body, size_t len)
{
    return reply_json_extra(r, status, NULL, body, len);
}

static int send_error(const struct reply *r, int status, const char *extra, const char *code,
                      const char *message)
{
    char body[512], esc[256];
    size_t n = proto_json_escape(esc, sizeof(esc), message, strlen(message));
    esc[n] = '\0';
    int len =
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, esc);
    return reply_json_extra(r, status, extra, body, (size_t)len);
}

/* Constant-time comparison, so the key cannot be guessed byte by byte from response times. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen && i < blen; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* 1 when the request carries the key; otherwise queues 401/403 and returns 0, or -ENOMEM when
 * that answer could not be queued. */
static int authorize(const struct http_api *api, const struct http_request *req,
                     const struct reply *r)
{
    if (!api->api_key) {
        int rc = send_error(r, 403, NULL, "api_disabled",
                            "the HTTP API is off: start herald with --api-key");
        return rc < 0 ? rc : 0;
    }
    size_t len;
    const char *auth = http_header_get(req, "authorization", &len);
    static const char bearer[] = "Bearer ";
    if (!auth || len < sizeof(bearer) - 1 || strncasecmp(auth, bearer, sizeof(bearer) - 1) != 0 ||
        !same_secret(auth + 7, len - 7, api->api_key, strlen(api->api_key))) {
        int rc = send_error(r, 401, "WWW-Authenticate: Bearer realm=\"herald\"\r\n", "unauthorized",
                            auth ? "wrong API key" : "Authorization: Bearer KEY required");
        return rc < 0 ? rc : 0;
    }
    return 1;
}

int http_api_authorize_head(const struct http_api *api, const struct http_request *req,
                            struct outq *out)
{
    const struct reply r = {.out = out, .keep_alive = 0, .head = false};
    return authorize(api, req, &r);
}

/* Publishes one message and appends its result object to t. Returns its status: 200, 400 for a
 * request that cannot be published, 503 when the server ran out of memory (worth a retry). */
static int publish_one(const struct http_api *api, const char *text, size_t len, struct textbuf *t)
{
    struct proto_request req;
    const char *code, *message;
    int st = 400;
    if (proto_parse_publish(text, len, &req, &code, &message) == 0) {
        struct broker_pub_result res;
        const char *why = NULL;
        int rc = broker_publish(api->broker, req.topic, req.topic_len, req.data, req.data_len, &res,
                                &why);
        if (rc == 0) {
            textbuf_printf(t, "{\"offset\":%llu,\"reach\":%u}", (unsigned long long)res.offset,
                           res.reach);
            return 200;
        }
        code = rc == BROKER_EBADTOPIC ? PROTO_E_BAD_TOPIC : PROTO_E_INTERNAL;
        st = rc == BROKER_EBADTOPIC ? 400 : 503;
        message = why ? why : "cannot publish";
    }
    char esc[256];
    size_t n = proto_json_escape(esc, sizeof(esc), message, strlen(message));
    esc[n] = '\0';
    textbuf_printf(t, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, esc);
    return st;
}

/* Messages a batch may hold. Each gets a result of about 40-80 bytes, built in memory and held
 * until the client reads it: unbounded, a 1 MiB body of `[1,1,...]` made a 40 MB answer. */
#define BATCH_MAX 10000
#define STR_(x)   #x
#define STR(x)    STR_(x)

/* A batch is published only once all of it is known to be one JSON array: a 400 then means
 * nothing was published, and a client that retries after it cannot duplicate messages. The
 * elements' own rules (fields, topics) are still checked one by one, with a result each.
 * Returns the number of elements, or -1 if the text is not one JSON array. */
static long array_well_formed(const char *text, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(text, len); /* text after the `]`: the walk below */
    bool ok = root && cJSON_IsArray(root);
    cJSON_Delete(root);
    size_t pos = 0, el_len;
    const char *el;
    int rc = 0;
    long n = 0;
    while (ok && (rc = proto_array_next(text, len, &pos, &el, &el_len)) == 1)
        n++;
    return ok && rc == 0 ? n : -1;
}

static int handle_publish(const struct http_api *api, const struct http_request *req,
                          const struct dmsg *body, const struct reply *r)
{
    if (req->method != HTTP_POST)
        return send_error(r, 405, "Allow: POST\r\n", "method_not_allowed", "use POST");
    int auth = authorize(api, req, r);
    if (auth <= 0)
        return auth;
    size_t len = body ? dmsg_len(body) : 0;
    char *text = malloc(len + 1);
    if (!text)
        return -ENOMEM;
    if (len)
        dmsg_copy(body, 0, text, len);
    /* JSON text is UTF-8 (RFC 8259) and cJSON passes any byte through, so a body is checked here,
     * whole: its "data" would go out in text frames that every subscriber's WebSocket must refuse
     * (and stay in the topic's history). Like a malformed batch, it publishes nothing. */
    if (!utf8_valid((const uint8_t *)text, len)) {
        free(text);
        return send_error(r, 400, NULL, PROTO_E_BAD_JSON, "the body is not valid UTF-8");
    }
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    struct textbuf t = {0};
    int status = 200; /* a batch reports per message; a single one by status */
    if (i < len && text[i] == '[') {
        long n = array_well_formed(text, len);
        if (n < 0 || n > BATCH_MAX) {
            free(text);
            return n < 0 ? send_error(r, 400, NULL, PROTO_E_BAD_JSON,
                                      "the body must be a JSON object or an array of them")
                         : send_error(r, 413, NULL, "too_large",
                                      "a batch holds at most " STR(BATCH_MAX) " messages");
        }
        textbuf_put(&t, "{\"results\":[", 12);
        size_t pos = 0, el_len;
        const char *el;
        for (int k = 0; proto_array_next(text, len, &pos, &el, &el_len) == 1; k++) {
            if (k)
                textbuf_put(&t, ",", 1);
            publish_one(api, el, el_len, &t);
        }
        textbuf_put(&t, "]}", 2);
    } else {
        status = publish_one(api, text, len, &t);
    }
    free(text);
    int rc = t.failed ? -ENOMEM : reply_json(r, status, t.p, t.len);
    textbuf_free(&t);
    return rc;
}

struct topic_list {
    struct textbuf *t;
    size_t n;
};

static void list_topic(const struct broker_topic_info *info, void *ctx)
{
    struct topic_list *l = ctx;
    if (l->n++)
        textbuf_put(l->t, ",", 1);
    textbuf_put(l->t, "{\"topic\":\"", 10);
    textbuf_put(l->t, info->name, info->len); /* topic names need no escaping */
    textbuf_printf(l->t, "\",\"subscribers\":%zu,\"offset\":%llu}", info->subscribers,
                   (unsigned long long)info->offset);
}

static int handle_topics(const struct http_api *api, const struct http_request *req,
                         const struct reply *r)
{
    if (!is_get(req))
        return send_error(r, 405, "Allow: GET, HEAD\r\n", "method_not_allowed", "use GET");
    int auth = authorize(api, req, r);
    if (auth <= 0)
        return auth;
    struct textbuf t = {0};
    struct topic_list l = {.t = &t};
    textbuf_put(&t, "{\"topics\":[", 11);
    size_t total = broker_topics(api->broker, list_topic, &l, TOPICS_MAX);
    textbuf_printf(&t, "],\"count\":%zu,\"truncated\":%s}", total, total > l.n ? "true" : "false");
    int rc = t.failed ? -ENOMEM : reply_json(r, 200, t.p, t.len);
    textbuf_free(&t);
    return rc;
}

/* The value of query parameter `name`, percent-decoded into out[0..cap); its length, -1 when
 * absent, or -2 when too long or badly encoded. '+' stays '+' (topic names have no spaces). */
static ssize_t query_param(const struct http_request *req, const char *name, char *out, size_t cap)
{
    const char *q = req->buf + req->query_off, *end = q + req->query_len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
            size_t n = 0;
            for (const char *p = q + nlen + 1; p < stop; p++) {
                int c = (unsigned char)*p;
                if (c == '%') {
                    if (stop - p < 3 || !isxdigit((unsigned char)p[1]) ||
                        !isxdigit((unsigned char)p[2]))
                        return -2;
                    char hex[3] = {p[1], p[2], 0};
                    c = (int)strtol(hex, NULL, 16);
                    p += 2;
                }
                if (n + 1 >= cap)
                    return -2;
                out[n++] = (char)c;
            }
            out[n] = '\0';
            return (ssize_t)n;
        }
        q = stop + 1;
    }
    return -1;
}

static void list_member(const char *member, size_t len, void *ctx)
{
    struct topic_list *l = ctx;
    if (l->n++)
        textbuf_put(l->t, ",", 1);
    textbuf_put(l->t, member, len);
}

/* GET /api/presence?topic=NAME[&limit=N]: the members of a topic, as the WebSocket query. */
static int handle_presence(const struct http_api *api, const struct http_request *req,
                           const struct reply *r)
{
    if (!is_get(req))
        return send_error(r, 405, "Allow: GET, HEAD\r\n", "method_not_allowed", "use GET");
    int auth = authorize(api, req, r);
    if (auth <= 0)
        return auth;
    char topic[TOPIC_MAX_LEN + 1], num[16];
    ssize_t tlen = query_param(req, "topic", topic, sizeof(topic));
    if (tlen == -1)
        return send_error(r, 400, NULL, PROTO_E_MISSING_FIELD,
                          "give the topic: /api/presence?topic=NAME");
    if (tlen < 0)
        return send_error(r, 400, NULL, PROTO_E_BAD_TOPIC, "topic name too long");
    bool wild = false;
    const char *why = pattern_check(topic, (size_t)tlen, &wild);
    if (why || wild)
        return send_error(r, 400, NULL, PROTO_E_BAD_TOPIC,
                          why ? why : "presence needs an exact topic name");
    unsigned long limit = PROTO_LIMIT_DEFAULT;
    ssize_t nlen = query_param(req, "limit", num, sizeof(num));
    if (nlen == -2)
        return send_error(r, 400, NULL, PROTO_E_BAD_REQUEST,
                          "limit must be an integer from 0 to 1000");
    if (nlen >= 0) {
        /* Digits only: strtoul alone would take "+5" and " 5". */
        limit = strtoul(num, NULL, 10);
        if (!num[0] || num[strspn(num, "0123456789")] || limit > 1000)
            return send_error(r, 400, NULL, PROTO_E_BAD_REQUEST,
                              "limit must be an integer from 0 to 1000");
    }
    struct textbuf t = {0};
    struct topic_list l = {.t = &t};
    textbuf_put(&t, "{\"topic\":\"", 10);
    textbuf_put(&t, topic, (size_t)tlen); /* a valid name needs no escaping */
    textbuf_puts(&t, "\",\"members\":[");
    size_t count = broker_presence(api->broker, topic, (size_t)tlen, limit, list_member, &l);
    textbuf_printf(&t, "],\"count\":%zu}", count);
    int rc = t.failed ? -ENOMEM : reply_json(r, 200, t.p, t.len);
    textbuf_free(&t);
    return rc;
}

static void metric(struct textbuf *t, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    textbuf_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                   (unsigned long long)v);
}

/* Worker i's counter at `field_offset` in struct worker_stats. */
static uint64_t worker_value(const struct http_api *api, int i, size_t field_offset)
{
    const char *base = (const char *)&api->workers[i];
    return atomic_load_explicit((atomic_uint_fast64_t *)(base + field_offset),
                                memory_order_relaxed);
}

/* One metric per worker: a counter, or a gauge kept in thousandths (permille). */
static void per_worker(struct textbuf *t, const struct http_api *api, const char *name,
                       const char *type, const char *help, size_t offset, int permille)
{
    textbuf_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (int i = 0; i < api->nworkers; i++) {
        unsigned long long x = worker_value(api, i, offset);
        if (permille)
            textbuf_printf(t, "%s{worker=\"%d\"} %llu.%03llu\n", name, i, x / 1000, x % 1000);
        else
            textbuf_printf(t, "%s{worker=\"%d\"} %llu\n", name, i, x);
    }
}

/* Sums one counter over every worker. */
static uint64_t sum(const struct http_api *api, size_t field_offset)
{
    uint64_t total = 0;
    for (int i = 0; i < api->nworkers; i++)
        total += worker_value(api, i, field_offset);
    return total;
}

/* What the broker holds and has moved (broker_stats) and the open connections. */
static void broker_metrics(struct textbuf *t, const struct http_api *api)
{
    struct broker_stats st;
    broker_stats(api->broker, &st);
    metric(t, "herald_connections", "gauge", "Open client connections.", atomic_load(api->nconns));
    metric(t, "herald_topics", "gauge", "Topics known to the broker.", st.topics);
    metric(t, "herald_subscriptions", "gauge", "Subscriptions of all connections.",
           st.subscriptions);
    metric(t, "herald_presence_members", "gauge", "Presence memberships of all connections.",
           st.members);
    metric(t, "herald_history_bytes", "gauge", "Memory of the messages topics keep.",
           st.history_bytes);
    metric(t, "herald_topics_removed_total", "counter",
           "Topics removed because nobody subscribed and nothing was kept.", st.topics_removed);
    metric(t, "herald_messages_published_total", "counter", "Messages published.", st.published);
    metric(t, "herald_messages_delivered_total", "counter", "Messages queued to subscribers.",
           st.delivered);
    metric(t, "herald_delivered_bytes_total", "counter", "Bytes of messages queued to subscribers.",
           st.delivered_bytes);
}

/* The workers' socket and HTTP counters, summed over the workers. */
static void io_metrics(struct textbuf *t, const struct http_api *api)
{
    metric(t, "herald_bytes_in_total", "counter", "Bytes read from clients.",
           sum(api, offsetof(struct worker_stats, bytes_in)));
    metric(t, "herald_bytes_out_total", "counter", "Bytes written to clients.",
           sum(api, offsetof(struct worker_stats, bytes_out)));
    metric(t, "herald_sends_total", "counter",
           "Writes to client sockets that wrote bytes: system calls and io_uring sends.",
           sum(api, offsetof(struct worker_stats, sends)));
    metric(t, "herald_http_requests_total", "counter", "HTTP requests answered.",
           sum(api, offsetof(struct worker_stats, http_requests)));
    metric(t, "herald_epoll_rearms_total", "counter",
           "EPOLL_CTL_MOD calls that re-armed or changed a connection's epoll interest.",
           sum(api, offsetof(struct worker_stats, epoll_rearms)));
    metric(t, "herald_batched_sends_total", "counter",
           "Sends to WebSocket clients made together with others in one io_uring submission (0 "
           "with --no-uring or where the kernel offers no io_uring).",
           sum(api, offsetof(struct worker_stats, batched_sends)));
    metric(t, "herald_batch_submissions_total", "counter",
           "io_uring submissions that made those sends, two or more each.",
           sum(api, offsetof(struct worker_stats, batch_submissions)));
    metric(t, "herald_ws_messages_received_total", "counter", "WebSocket messages received.",
           sum(api, offsetof(struct worker_stats, ws_messages_in)));
}

/* The WebSocket broker's own counters: slow consumers cut off and recoveries. */
static void session_metrics(struct textbuf *t, const struct http_api *api)
{
    metric(t, "herald_slow_consumer_disconnects_total", "counter",
           "Connections closed because they could not keep up (4008).",
           atomic_load(&api->bw->slow_consumers));
    textbuf_printf(t, "# HELP herald_recoveries_total Resubscriptions asking to recover, by "
                      "outcome.\n# TYPE herald_recoveries_total counter\n");
    textbuf_printf(t, "herald_recoveries_total{result=\"hit\"} %llu\n",
                   (unsigned long long)atomic_load(&api->bw->recovery_hits));
    textbuf_printf(t, "herald_recoveries_total{result=\"miss\"} %llu\n",
                   (unsigned long long)atomic_load(&api->bw->recovery_misses));
}

/* One series per worker thread, to see how the work spreads. */
static void worker_metrics(struct textbuf *t, const struct http_api *api)
{
    per_worker(t, api, "herald_worker_events_total", "counter",
               "Events handled by each worker thread.", offsetof(struct worker_stats, events), 0);
    per_worker(t, api, "herald_worker_fanout_batches_total", "counter",
               "Wake batches of up to 256 subscribers each worker served from the shared fan-out "
               "queue.",
               offsetof(struct worker_stats, fanout_batches), 0);
    per_worker(t, api, "herald_worker_cpu_others_ratio", "gauge",
               "Share of each worker's CPU other tasks took in its last window (200 ms or "
               "more); above 0.4 the worker leaves the shared fan-out queue to workers with "
               "free CPUs, unless --fanout-all.",
               offsetof(struct worker_stats, cpu_others_permille), 1);
}

static int handle_metrics(const struct http_api *api, const struct reply *r)
{
    struct textbuf t = {0};
    broker_metrics(&t, api);
    io_metrics(&t, api);
    session_metrics(&t, api);
    worker_metrics(&t, api);
    if (t.failed) {
        textbuf_free(&t);
        return -ENOMEM;
    }
    struct obuf *b = http_response_start(200, r->keep_alive, r->head ? 0 : t.len);
    if (!b) {
        textbuf_free(&t);
        return -ENOMEM;
    }
    obuf_puts(b, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: ");
    obuf_putu(b, t.len);
    obuf_puts(b, "\r\n\r\n");
    if (!r->head)
        obuf_put(b, t.p, t.len);
    textbuf_free(&t);
    return outq_push_take(r->out, b);
}

int http_api_handle(const struct http_api *api, const struct http_request *req,
                    const struct dmsg *body, int keep_alive, struct outq *out)
{
    const struct reply r = {.out = out, .keep_alive = keep_alive, .head = req->method == HTTP_HEAD};
    if (path_is(req, "/metrics")) {
        if (!is_get(req))
            return send_error(&r, 405, "Allow: GET, HEAD\r\n", "method_not_allowed", "use GET");
        return handle_metrics(api, &r);
    }
    if (path_is(req, "/api/topics"))
        return handle_topics(api, req, &r);
    if (path_is(req, "/api/presence"))
        return handle_presence(api, req, &r);
    return handle_publish(api, req, body, &r);
}
