/* Integration: the HTTP API for backends (publish, topics), /metrics, and --client-publish. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "wsc.h"

#define KEY "test-key-0123456789abcdef"

static struct herald_proc srv;

static void setup(void)
{
    const char *args[] = {"--api-key", KEY, "--client-publish", "chat.>", NULL};
    herald_start(&srv, args);
}

static void teardown(void)
{
    free(herald_stop(&srv));
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);

/* POSTs body to path with the given Authorization value (NULL: none). */
static int post(int port, const char *path, const char *auth, const char *body, struct http_resp *r)
{
    char req[4096];
    snprintf(req, sizeof(req),
             "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n%s%s%s"
             "Content-Length: %zu\r\n\r\n%s",
             path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "",
             strlen(body), body);
    return http_once(port, req, r);
}

static cJSON *json_of(const struct http_resp *r)
{
    /* cJSON takes a NUL for whitespace; JSON does not (a bug once put one in a body). */
    cr_assert_null(memchr(r->body, '\0', r->body_len), "a NUL byte in the body: %s", r->body);
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    cr_assert_not_null(j, "not JSON: %s", r->body);
    return j;
}

Test(api, publish_needs_the_key)
{
    struct http_resp r;
    cr_assert_eq(post(srv.port, "/api/publish", NULL, "{\"topic\":\"news\",\"data\":1}", &r), 0);
    cr_assert_eq(r.status, 401);
    char v[128];
    cr_assert_eq(resp_header(&r, "WWW-Authenticate", v, sizeof(v)), 0);
    resp_free(&r);
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer wrong-key-0123456789abcdef",
                      "{\"topic\":\"news\",\"data\":1}", &r),
                 0);
    cr_assert_eq(r.status, 401);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                     "unauthorized");
    cJSON_Delete(j);
    resp_free(&r);
    cr_assert_eq(http_once(srv.port, "GET /api/topics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 401);
    resp_free(&r);
}

/* Opens a broker connection on the suite's server and reads the welcome. */
static void ws_open(struct wsc *c)
{
    char head[2048];
    cr_assert_eq(wsc_connect(c, srv.port, "/ws", NULL, head, sizeof(head)), 101, "%s", head);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(c, &f, 5000), 0); /* welcome */
    wsc_frame_free(&f);
}

/* Sends one request and checks that its answer contains `want`. */
static void ws_request(struct wsc *c, const char *json, const char *want)
{
    cr_assert_eq(wsc_send(c, WS_OP_TEXT, json, strlen(json)), 0);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(c, &f, 5000), 0);
    cr_assert_not_null(strstr((char *)f.data, want), "%s: %s", json, f.data);
    wsc_frame_free(&f);
}

Test(api, publish_reaches_websocket_subscribers)
{
    struct wsc c;
    ws_open(&c);
    ws_request(&c, "{\"op\":\"sub\",\"topic\":\"alerts\"}", "\"type\":\"ack\"");
    struct wsc_frame f;

    struct http_resp r;
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY,
                      "{\"topic\":\"alerts\",\"data\":{\"level\":\"high\"}}", &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *j = json_of(&r);
    cr_assert_eq(cJSON_GetObjectItem(j, "offset")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(j, "reach")->valueint, 1);
    cJSON_Delete(j);
    resp_free(&r);
    cr_assert_eq(wsc_recv(&c, &f, 5000), 0);
    cr_assert_str_eq((char *)f.data, "{\"type\":\"msg\",\"topic\":\"alerts\","
                                     "\"data\":{\"level\":\"high\"},\"offset\":1}");
    wsc_frame_free(&f);

    /* A batch reports each message; a bad one does not stop the others. */
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY,
                      "[{\"topic\":\"alerts\",\"data\":2},{\"topic\":\"no good\",\"data\":3},"
                      "{\"topic\":\"alerts\",\"data\":4}]",
                      &r),
                 0);
    cr_assert_eq(r.status, 200);
    j = json_of(&r);
    cJSON *res = cJSON_GetObjectItem(j, "results");
    cr_assert_eq(cJSON_GetArraySize(res), 3);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "offset")->valueint, 2);
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "error"));
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 2), "offset")->valueint, 3);
    cJSON_Delete(j);
    resp_free(&r);
    wsc_close(&c);
}

Test(api, bad_bodies_and_methods)
{
    struct http_resp r;
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY, "{\"topic\":\"x\"}", &r), 0);
    cr_assert_eq(r.status, 400);
    resp_free(&r);
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY, "not json", &r), 0);
    cr_assert_eq(r.status, 400);
    resp_free(&r);
    cr_assert_eq(http_once(srv.port,
                           "GET /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY
                           "\r\n\r\n",
                           &r),
                 0);
    cr_assert_eq(r.status, 405);
    char v[64];
    cr_assert_eq(resp_header(&r, "Allow", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "POST");
    resp_free(&r);
}

/* A body that is not UTF-8 publishes nothing: its data would reach subscribers in text frames
 * their WebSocket must refuse (a bug once sent it, and kept it in the topic's history). */
Test(api, a_body_that_is_not_utf8_publishes_nothing)
{
    struct wsc c;
    ws_open(&c);
    ws_request(&c, "{\"op\":\"sub\",\"topic\":\"utf8\"}", "\"type\":\"ack\"");
    static const char *const bodies[] = {
        "{\"topic\":\"utf8\",\"data\":\"bad \xff\xfe\"}",
        "{\"topic\":\"utf8\",\"data\":\"cut \xc3\"}",
        "{\"topic\":\"utf8\",\"data\":\"surrogate \xed\xa0\x80\"}",
        "[{\"topic\":\"utf8\",\"data\":1},{\"topic\":\"utf8\",\"data\":\"\xc0\xaf\"}]",
    };
    struct http_resp r;
    for (size_t k = 0; k < sizeof(bodies) / sizeof(bodies[0]); k++) {
        cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY, bodies[k], &r), 0);
        cr_assert_eq(r.status, 400, "body %zu: %s", k, r.body);
        cr_assert_not_null(strstr(r.body, "\"bad_json\""), "body %zu: %s", k, r.body);
        resp_free(&r);
    }
    /* Valid UTF-8 beyond ASCII goes through; it is the topic's first message. */
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY,
                      "{\"topic\":\"utf8\",\"data\":\"caf\xc3\xa9\"}", &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(&c, &f, 5000), 0);
    cr_assert_str_eq((char *)f.data, "{\"type\":\"msg\",\"topic\":\"utf8\","
                                     "\"data\":\"caf\xc3\xa9\",\"offset\":1}");
    wsc_frame_free(&f);
    wsc_close(&c);
}

Test(api, topics_lists_subscribers_and_offsets)
{
    struct http_resp r;
    cr_assert_eq(
        post(srv.port, "/api/publish", "Bearer " KEY, "{\"topic\":\"listed\",\"data\":1}", &r), 0);
    resp_free(&r);
    cr_assert_eq(http_once(srv.port,
                           "GET /api/topics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY
                           "\r\n\r\n",
                           &r),
                 0);
    cr_assert_eq(r.status, 200);
    cJSON *j = json_of(&r);
    cJSON *t;
    int found = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "topics"))
    {
        if (strcmp(cJSON_GetObjectItem(t, "topic")->valuestring, "listed") == 0) {
            found = 1;
            cr_assert_eq(cJSON_GetObjectItem(t, "offset")->valueint, 1);
            cr_assert_eq(cJSON_GetObjectItem(t, "subscribers")->valueint, 0);
        }
    }
    cr_assert(found);
    cJSON_Delete(j);
    resp_free(&r);
}

/* GETs path with the key; the response's status, its JSON in *j (caller deletes). */
static int get_json(const char *path, cJSON **j)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY "\r\n\r\n", path);
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    int status = r.status;
    *j = json_of(&r);
    resp_free(&r);
    return status;
}

Test(api, presence_lists_members)
{
    struct wsc c;
    ws_open(&c);
    ws_request(&c, "{\"op\":\"sub\",\"topic\":\"lobby:1\",\"presence\":{\"info\":{\"n\":\"ann\"}}}",
               "\"type\":\"ack\"");

    cJSON *j;
    cr_assert_eq(get_json("/api/presence?topic=lobby%3A1", &j), 200); /* percent-decoded */
    cr_assert_eq(cJSON_GetObjectItem(j, "count")->valueint, 1);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "members"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "info"), "n")->valuestring, "ann");
    cJSON_Delete(j);
    cr_assert_eq(get_json("/api/presence?limit=0&topic=lobby:1", &j), 200);
    cr_assert_eq(cJSON_GetObjectItem(j, "count")->valueint, 1);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "members")), 0);
    cJSON_Delete(j);
    cr_assert_eq(get_json("/api/presence?topic=empty.room", &j), 200);
    cr_assert_eq(cJSON_GetObjectItem(j, "count")->valueint, 0);
    cJSON_Delete(j);
    const char *bad[] = {"/api/presence",
                         "/api/presence?topic=a.*",
                         "/api/presence?topic=a%20b",
                         "/api/presence?topic=a&limit=1001",
                         "/api/presence?topic=a&limit=x",
                         "/api/presence?topic=a&limit=99999999999999999999",
                         "/api/presence?topic=a&limit=0000000000000000000001",
                         "/api/presence?topic=a&limit=%2B5",
                         "/api/presence?topic=a&limit=+5",
                         "/api/presence?topic=a&limit=%205",
                         "/api/presence?topic=a&limit=5%20",
                         "/api/presence?topic=a&limit="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(get_json(bad[i], &j), 400, "%s", bad[i]);
        cr_assert_not_null(cJSON_GetObjectItem(j, "error"), "%s", bad[i]);
        cJSON_Delete(j);
    }
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET /api/presence?topic=a HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                 0);
    cr_assert_eq(r.status, 401, "the key is needed");
    resp_free(&r);
    wsc_close(&c);
}

Test(api, metrics_are_present_and_move)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    char v[128];
    resp_header(&r, "Content-Type", v, sizeof(v));
    cr_assert(strncmp(v, "text/plain; version=0.0.4", 25) == 0);
    const char *names[] = {"herald_connections",
                           "herald_topics",
                           "herald_subscriptions",
                           "herald_messages_published_total",
                           "herald_messages_delivered_total",
                           "herald_bytes_in_total",
                           "herald_bytes_out_total",
                           "herald_sends_total",
                           "herald_slow_consumer_disconnects_total",
                           "herald_presence_members",
                           "herald_history_bytes",
                           "herald_topics_removed_total",
                           "herald_epoll_rearms_total"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert_geq(metric_value(r.body, names[i]), 0, "%s missing", names[i]);
    cr_assert_not_null(strstr(r.body, "herald_worker_events_total{worker=\"0\"}"));
    cr_assert_not_null(strstr(r.body, "herald_recoveries_total{result=\"hit\"}"));
    double published = metric_value(r.body, "herald_messages_published_total");
    double bytes_in = metric_value(r.body, "herald_bytes_in_total");
    resp_free(&r);
    cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY, "{\"topic\":\"m\",\"data\":1}", &r),
                 0);
    resp_free(&r);
    cr_assert_eq(http_once(srv.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(metric_value(r.body, "herald_messages_published_total"), published + 1);
    cr_assert_gt(metric_value(r.body, "herald_bytes_in_total"), bytes_in);
    resp_free(&r);
}

/* A topic nobody uses any more is removed by the server's once-a-second sweep. */
Test(api, unused_topics_are_swept)
{
    struct wsc c;
    ws_open(&c);
    ws_request(&c, "{\"op\":\"sub\",\"topic\":\"gone.soon\"}", "\"type\":\"ack\"");
    ws_request(&c, "{\"op\":\"unsub\",\"topic\":\"gone.soon\"}", "\"type\":\"ack\"");
    wsc_close(&c);
    struct http_resp r;
    double removed = 0;
    for (int i = 0; i < 100 && removed < 1; i++) { /* up to 10 s; a tick is 1 s */
        cr_assert_eq(http_once(srv.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
        removed = metric_value(r.body, "herald_topics_removed_total");
        resp_free(&r);
        if (removed < 1)
            usleep(100 * 1000);
    }
    cr_assert_geq(removed, 1, "the empty topic was not removed");
}

Test(api, client_publish_patterns_limit_websocket_publishers)
{
    struct wsc c;
    ws_open(&c);
    ws_request(&c, "{\"op\":\"pub\",\"topic\":\"chat.room\",\"data\":1}", "\"type\":\"ack\"");
    ws_request(&c, "{\"op\":\"pub\",\"topic\":\"admin.reset\",\"data\":1}",
               "\"code\":\"forbidden\"");
    wsc_close(&c);
}

Test(api, off_without_a_key)
{
    struct herald_proc p;
    herald_start(&p, NULL);
    struct http_resp r;
    cr_assert_eq(post(p.port, "/api/publish", "Bearer " KEY, "{\"topic\":\"x\",\"data\":1}", &r),
                 0);
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    free(herald_stop(&p));
}

/* HEAD is GET without the body (RFC 9110 9.3.2): each HEAD is followed on the same connection by
 * a GET, which reads as its own response only if the HEAD's answer carried no body (a 405 with a
 * JSON body once made the next response unparseable for keep-alive clients). */
Test(api, head_is_answered_like_get_without_a_body)
{
    static const char *const paths[] = {"/metrics", "/api/topics", "/api/presence?topic=lobby",
                                        "/api/publish"};
    static const int want[] = {200, 200, 200, 405};
    for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
        struct client c;
        client_open(&c, srv.port);
        char req[1024];
        snprintf(req, sizeof(req),
                 "HEAD %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY "\r\n\r\n"
                 "GET /api/topics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY "\r\n\r\n",
                 paths[k]);
        send_str(c.fd, req);
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, 1), 0, "HEAD %s", paths[k]);
        cr_assert_eq(r.status, want[k], "HEAD %s: %s", paths[k], r.head);
        char v[64];
        cr_assert_eq(resp_header(&r, "Content-Length", v, sizeof(v)), 0, "HEAD %s", paths[k]);
        cr_assert_gt(atol(v), 0, "HEAD %s: the length GET's body would have", paths[k]);
        resp_free(&r);
        cr_assert_eq(read_response(&c, &r, 0), 0, "GET after HEAD %s", paths[k]);
        cr_assert_eq(r.status, 200, "after HEAD %s the next response starts: %.40s", paths[k],
                     r.head);
        cJSON_Delete(json_of(&r));
        resp_free(&r);
        client_close(&c);
    }
}

Test(api, unauthorized_has_its_reason_phrase)
{
    struct http_resp r;
    cr_assert_eq(post(srv.port, "/api/publish", NULL, "{\"topic\":\"news\",\"data\":1}", &r), 0);
    cr_assert_eq(strncmp(r.head, "HTTP/1.1 401 Unauthorized\r\n", 27), 0, "%.40s", r.head);
    resp_free(&r);
}

/* A batch that is not a whole JSON array publishes nothing (a client that retries after the 400
 * must not duplicate its first messages), and one cut after a comma is not taken for complete. */
Test(api, a_malformed_batch_publishes_nothing)
{
    static const char *const bodies[] = {
        "[{\"topic\":\"atomic\",\"data\":1},{\"topic\":\"atomic\",\"data\":2}",
        "[{\"topic\":\"atomic\",\"data\":1},",
        "[{\"topic\":\"atomic\",\"data\":1},{\"topic\":\"atomic\",\"data\":2}] x",
        "[{\"topic\":\"atomic\",\"data\":1},{\"topic\":\"atomic\",\"data\":}]",
    };
    for (size_t k = 0; k < sizeof(bodies) / sizeof(bodies[0]); k++) {
        struct http_resp r;
        cr_assert_eq(post(srv.port, "/api/publish", "Bearer " KEY, bodies[k], &r), 0);
        cr_assert_eq(r.status, 400, "%s: %s", bodies[k], r.body);
        resp_free(&r);
    }
    cJSON *j;
    cr_assert_eq(get_json("/api/topics", &j), 200);
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "topics"))
    {
        cr_assert_str_neq(cJSON_GetObjectItem(t, "topic")->valuestring, "atomic",
                          "a malformed batch published to \"atomic\"");
    }
    cJSON_Delete(j);
}

/* POSTs a batch of n copies of `el` (a comma between them) and reads the answer. */
static void post_batch(const char *el, size_t n, struct http_resp *r)
{
    size_t el_len = strlen(el), body_len = 2 + n * (el_len + 1);
    char *req = malloc(body_len + 512);
    cr_assert_not_null(req);
    int head = snprintf(req, 512,
                        "POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY
                        "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n[",
                        body_len - 1);
    char *p = req + head;
    for (size_t k = 0; k < n; k++) {
        memcpy(p, el, el_len);
        p += el_len;
        *p++ = k + 1 < n ? ',' : ']';
    }
    *p = '\0';
    cr_assert_eq(http_once(srv.port, req, r), 0);
    free(req);
}

/* A batch holds at most 10,000 messages: each gets a result held in memory until the client
 * reads it, and a 1 MiB body of `[1,1,...]` once made a 40 MB answer. */
Test(api, a_batch_over_the_limit_publishes_nothing)
{
    struct http_resp r;
    post_batch("1", 10000, &r);
    cr_assert_eq(r.status, 200, "%.200s", r.body);
    cJSON *j = json_of(&r);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")), 10000);
    cJSON_Delete(j);
    resp_free(&r);
    post_batch("{\"topic\":\"capped\",\"data\":1}", 10001, &r);
    cr_assert_eq(r.status, 413, "%.200s", r.body);
    cr_assert_not_null(strstr(r.body, "\"too_large\""), "%s", r.body);
    resp_free(&r);
    cJSON *t;
    cr_assert_eq(get_json("/api/topics", &j), 200);
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "topics"))
    {
        cr_assert_str_neq(cJSON_GetObjectItem(t, "topic")->valuestring, "capped",
                          "a batch over the limit published");
    }
    cJSON_Delete(j);
}

/* herald_recoveries_total counts recoveries asked for on exact topics, by outcome; on a wildcard
 * recovery is ignored (broker.md) and used to count as a miss. */
Test(api, recoveries_are_counted_by_outcome_and_not_for_wildcards)
{
    struct wsc c;
    ws_open(&c);
    double hit = scrape_metric(srv.port, "herald_recoveries_total{result=\"hit\"}");
    double miss = scrape_metric(srv.port, "herald_recoveries_total{result=\"miss\"}");
    ws_request(&c,
               "{\"op\":\"sub\",\"topic\":\"rec.*\",\"recover\":{\"epoch\":\"x\",\"offset\":1}}",
               "\"ack\"");
    cr_assert_eq(scrape_metric(srv.port, "herald_recoveries_total{result=\"miss\"}"), miss);
    ws_request(&c,
               "{\"op\":\"sub\",\"topic\":\"rec.a\",\"recover\":{\"epoch\":\"x\",\"offset\":1}}",
               "\"recovered\":false");
    cr_assert_eq(scrape_metric(srv.port, "herald_recoveries_total{result=\"miss\"}"), miss + 1);
    cr_assert_eq(scrape_metric(srv.port, "herald_recoveries_total{result=\"hit\"}"), hit);
    wsc_close(&c);
}

/* Sends the head of a publish with `Expect: 100-continue` (auth: the Authorization value, or
 * NULL) and reads the first response: the refusal must come before any 100 Continue, at once, so
 * the body is never invited nor kept (it used to be: 100 clients without a key held --max-body,
 * 1 MiB, each). */
static void expect_refused_before_continue(int port, const char *auth, int status, const char *code)
{
    struct client c;
    client_open(&c, port);
    char req[512];
    snprintf(req, sizeof(req),
             "POST /api/publish HTTP/1.1\r\nHost: t\r\n%s%s%sContent-Length: 1000000\r\n"
             "Expect: 100-continue\r\n\r\n",
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    send_str(c.fd, req);
    struct http_resp r;
    cr_assert_eq(read_response(&c, &r, 0), 0, "%s: no answer to the head", auth ? auth : "no key");
    cr_assert_eq(r.status, status, "%s: %.60s", auth ? auth : "no key", r.head);
    char v[128];
    if (status == 401)
        cr_assert_eq(resp_header(&r, "WWW-Authenticate", v, sizeof(v)), 0);
    cr_assert_eq(resp_header(&r, "Connection", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "close");
    cJSON *j = json_of(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                     code);
    cJSON_Delete(j);
    resp_free(&r);
    client_close(&c);
}

Test(api, a_publish_without_the_key_is_refused_on_its_head)
{
    expect_refused_before_continue(srv.port, NULL, 401, "unauthorized");
    expect_refused_before_continue(srv.port, "Bearer wrong-key-0123456789abcdef", 401,
                                   "unauthorized");
    struct herald_proc off;
    herald_start(&off, NULL);
    expect_refused_before_continue(off.port, "Bearer " KEY, 403, "api_disabled");
    free(herald_stop(&off));

    /* With the key: 100 Continue, then the body is read and published as before. */
    struct client c;
    client_open(&c, srv.port);
    const char *body = "{\"topic\":\"early\",\"data\":1}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " KEY
             "\r\nContent-Length: %zu\r\nExpect: 100-continue\r\n\r\n",
             strlen(body));
    send_str(c.fd, req);
    struct http_resp r;
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 100);
    resp_free(&r);
    send_str(c.fd, body);
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    client_close(&c);
}
