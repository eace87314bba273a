/*
 * Integration: the broker over real WebSocket connections (protocol herald.v1): the request and
 * reply flow, errors that keep the connection, wildcards, order under concurrent publishers with
 * many subscribers, slow consumers, recovery with publishing in flight, history.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "wsc.h"
#include "wsc_wire.h"

static struct herald_proc srv;

static void setup(void)
{
    /* Over a thousand connections from this one process. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    const char *args[] = {"--threads", "4", "--log-level", "warn", NULL};
    herald_start(&srv, args);
}

static void teardown(void)
{
    free(herald_stop(&srv));
}

TestSuite(broker, .init = setup, .fini = teardown, .timeout = 180);

/* Opens a broker connection and consumes the welcome. */
static void bopen_port(struct wsc *c, int port)
{
    char head[2048];
    int st =
        wsc_connect(c, port, "/ws", "Sec-WebSocket-Protocol: herald.v1\r\n", head, sizeof(head));
    cr_assert_eq(st, 101, "%s", head);
    cr_assert_not_null(strstr(head, "Sec-WebSocket-Protocol: herald.v1\r\n"));
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(c, &f, 10000), 0);
    cJSON *j = cJSON_ParseWithLength((char *)f.data, f.len);
    cr_assert_not_null(j);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "welcome");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "version")->valuestring, "herald.v1");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "session")));
    cJSON_Delete(j);
    wsc_frame_free(&f);
}

static void bopen(struct wsc *c)
{
    bopen_port(c, srv.port);
}

static void bsend(struct wsc *c, const char *json)
{
    cr_assert_eq(wsc_send(c, WS_OP_TEXT, json, strlen(json)), 0);
}

/* The next server message, parsed (caller deletes). */
static cJSON *brecv(struct wsc *c)
{
    struct wsc_frame f;
    int rc = wsc_recv(c, &f, 20000);
    cr_assert_eq(rc, 0, "no message (rc %d)", rc);
    cr_assert_eq(f.opcode, WS_OP_TEXT, "opcode %d", f.opcode);
    cJSON *j = cJSON_ParseWithLength((char *)f.data, f.len);
    cr_assert_not_null(j, "not JSON: %s", f.data);
    wsc_frame_free(&f);
    return j;
}

static const char *str(cJSON *j, const char *k)
{
    cJSON *v = cJSON_GetObjectItem(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(cJSON *j, const char *k)
{
    cJSON *v = cJSON_GetObjectItem(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void expect_type(struct wsc *c, const char *type, cJSON **out)
{
    cJSON *j = brecv(c);
    char *txt = cJSON_PrintUnformatted(j);
    cr_assert_str_eq(str(j, "type"), type, "%s", txt);
    free(txt);
    if (out)
        *out = j;
    else
        cJSON_Delete(j);
}

Test(broker, subscribe_publish_deliver_with_ids_echoed)
{
    struct wsc a, b;
    bopen(&a);
    bopen(&b);
    bsend(&a, "{\"op\":\"sub\",\"topic\":\"chat.lobby\",\"id\":1}");
    cJSON *j;
    expect_type(&a, "ack", &j);
    cr_assert_eq(num(j, "id"), 1);
    cr_assert_str_eq(str(j, "op"), "sub");
    cr_assert_str_eq(str(j, "topic"), "chat.lobby");
    cr_assert_neq(str(j, "epoch")[0], '\0');
    cJSON_Delete(j);
    bsend(&b, "{\"op\":\"pub\",\"topic\":\"chat.lobby\",\"data\":{\"text\":\"hi\",\"n\":1.50},"
              "\"id\":\"p-1\"}");
    expect_type(&b, "ack", &j);
    cr_assert_str_eq(str(j, "id"), "p-1");
    cr_assert_eq(num(j, "offset"), 1);
    cr_assert_eq(num(j, "reach"), 1);
    cJSON_Delete(j);
    /* The data arrives byte for byte as published. */
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(&a, &f, 10000), 0);
    cr_assert_str_eq((char *)f.data, "{\"type\":\"msg\",\"topic\":\"chat.lobby\","
                                     "\"data\":{\"text\":\"hi\",\"n\":1.50},\"offset\":1}");
    wsc_frame_free(&f);
    bsend(&a, "{\"op\":\"ping\",\"id\":7}");
    expect_type(&a, "pong", &j);
    cr_assert_eq(num(j, "id"), 7);
    cJSON_Delete(j);
    bsend(&a, "{\"op\":\"unsub\",\"topic\":\"chat.lobby\",\"id\":2}");
    expect_type(&a, "ack", NULL);
    bsend(&b, "{\"op\":\"pub\",\"topic\":\"chat.lobby\",\"data\":2}");
    expect_type(&b, "ack", &j);
    cr_assert_eq(num(j, "reach"), 0, "unsubscribed");
    cJSON_Delete(j);
    wsc_close(&a);
    wsc_close(&b);
}

Test(broker, errors_are_answered_and_the_connection_stays)
{
    struct wsc c;
    bopen(&c);
    struct {
        const char *req, *code;
    } cases[] = {
        {"{not json", "bad_json"},
        {"[1,2]", "bad_request"},
        {"{\"op\":\"dance\",\"id\":3}", "unknown_op"},
        {"{\"op\":\"sub\"}", "missing_field"},
        {"{\"op\":\"pub\",\"topic\":\"t\"}", "missing_field"},
        {"{\"op\":\"sub\",\"topic\":\"bad topic!\"}", "bad_topic"},
        {"{\"op\":\"pub\",\"topic\":\"chat.*\",\"data\":1}", "bad_topic"},
        {"{\"op\":\"unsub\",\"topic\":\"never\"}", "not_subscribed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bsend(&c, cases[i].req);
        cJSON *j;
        expect_type(&c, "error", &j);
        cr_assert_str_eq(str(j, "code"), cases[i].code, "case %zu", i);
        cr_assert_neq(str(j, "message")[0], '\0');
        cJSON_Delete(j);
    }
    wsc_send(&c, WS_OP_BINARY, "\x01\x02", 2);
    cJSON *j;
    expect_type(&c, "error", &j);
    cr_assert_str_eq(str(j, "code"), "binary_not_supported");
    cJSON_Delete(j);
    bsend(&c, "{\"op\":\"ping\"}");
    expect_type(&c, "pong", NULL);
    wsc_close(&c);
}

Test(broker, no_subprotocol_gets_the_same_protocol_and_wildcards_work)
{
    struct wsc c, p;
    char head[2048];
    cr_assert_eq(wsc_connect(&c, srv.port, "/ws", NULL, head, sizeof(head)), 101);
    expect_type(&c, "welcome", NULL);
    bopen(&p);
    bsend(&c, "{\"op\":\"sub\",\"topic\":\"room.*\"}");
    expect_type(&c, "ack", NULL);
    bsend(&c, "{\"op\":\"sub\",\"topic\":\"room.>\"}");
    expect_type(&c, "ack", NULL);
    const char *topics[] = {"room.a", "room.b.c", "other", "room"};
    for (int i = 0; i < 4; i++) {
        char req[128];
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"%s\",\"data\":%d}", topics[i], i);
        bsend(&p, req);
        expect_type(&p, "ack", NULL);
    }
    /* room.a and room.b.c, each once; there is no order across topics (proto/broker.md), and
     * when both wait for one pull they come in the session's order of entries. */
    int seen_a = 0, seen_bc = 0;
    for (int k = 0; k < 2; k++) {
        cJSON *j;
        expect_type(&c, "msg", &j);
        seen_a += strcmp(str(j, "topic"), "room.a") == 0;
        seen_bc += strcmp(str(j, "topic"), "room.b.c") == 0;
        cJSON_Delete(j);
    }
    cr_assert(seen_a == 1 && seen_bc == 1, "room.a %d times, room.b.c %d times", seen_a, seen_bc);
    /* Nothing else: a ping's pong comes next. */
    bsend(&c, "{\"op\":\"ping\"}");
    expect_type(&c, "pong", NULL);
    wsc_close(&c);
    wsc_close(&p);
}

/* n connections (calloc'd array, the caller frees it), each subscribed to `topic`: all the requests
 * are sent before any ack is awaited. */
static struct wsc *open_subscribers(int n, const char *topic)
{
    struct wsc *subs = calloc((size_t)n, sizeof(*subs));
    cr_assert_not_null(subs);
    char req[128];
    snprintf(req, sizeof(req), "{\"op\":\"sub\",\"topic\":\"%s\"}", topic);
    for (int i = 0; i < n; i++) {
        bopen(&subs[i]);
        bsend(&subs[i], req);
    }
    for (int i = 0; i < n; i++)
        expect_type(&subs[i], "ack", NULL);
    return subs;
}

Test(broker, sixteen_publishers_thousand_subscribers_one_order)
{
    enum { PUBS = 16, EACH = 40 };
    /* 1,000 subscribers; a quarter of them under the (much slower) sanitizer builds. */
    const int SUBS = under_sanitizer() ? 250 : 1000;
    struct wsc *subs = open_subscribers(SUBS, "order");
    struct wsc pubs[PUBS];
    for (int p = 0; p < PUBS; p++)
        bopen(&pubs[p]);
    /* Interleaved, without waiting for acks: the server handles them on all its workers. */
    for (int k = 0; k < EACH; k++)
        for (int p = 0; p < PUBS; p++) {
            char req[128];
            snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"order\",\"data\":[%d,%d]}", p,
                     k);
            bsend(&pubs[p], req);
        }
    for (int p = 0; p < PUBS; p++)
        for (int k = 0; k < EACH; k++)
            expect_type(&pubs[p], "ack", NULL);
    /* Every subscriber sees offsets 1..N in order with the same data at each offset. */
    int(*seq)[2] = calloc(PUBS * EACH, sizeof(*seq));
    for (int i = 0; i < SUBS; i++) {
        int last_k[PUBS];
        for (int p = 0; p < PUBS; p++)
            last_k[p] = -1;
        for (int n = 1; n <= PUBS * EACH; n++) {
            cJSON *j = brecv(&subs[i]);
            cr_assert_eq(num(j, "offset"), n, "subscriber %d: offset %g, want %d", i,
                         num(j, "offset"), n);
            cJSON *d = cJSON_GetObjectItem(j, "data");
            int p = cJSON_GetArrayItem(d, 0)->valueint, k = cJSON_GetArrayItem(d, 1)->valueint;
            if (i == 0) {
                seq[n - 1][0] = p;
                seq[n - 1][1] = k;
            } else {
                cr_assert(seq[n - 1][0] == p && seq[n - 1][1] == k,
                          "subscriber %d differs at offset %d", i, n);
            }
            cr_assert_gt(k, last_k[p], "one publisher's messages keep their order");
            last_k[p] = k;
            cJSON_Delete(j);
        }
    }
    free(seq);
    for (int i = 0; i < SUBS; i++)
        wsc_close(&subs[i]);
    for (int p = 0; p < PUBS; p++)
        wsc_close(&pubs[p]);
    free(subs);
}

/* A fan-out's sends to its subscribers are made together, through io_uring, by whichever worker
 * serves a wake batch; with --no-uring (the Makefile's second run of this suite) one sendmsg
 * each. Either way every subscriber gets every message, in order. */
Test(broker, fan_out_sends_are_batched_unless_no_uring)
{
    bool batching = server_batches_sends();
    enum { MSGS = 30 };
    /* More than one wake batch (256) and more than a worker keeps for itself (16). */
    const int SUBS = under_sanitizer() ? 100 : 600;
    struct wsc *subs = open_subscribers(SUBS, "batched");
    double before = scrape_metric(srv.port, "herald_batched_sends_total");
    double subs_before = scrape_metric(srv.port, "herald_batch_submissions_total");
    cr_assert(before >= 0 && subs_before >= 0, "batching metrics missing");
    struct wsc pub;
    bopen(&pub);
    /* One message at a time, each received everywhere before the next: every wave is one wake
     * of every subscriber, with one send each. */
    for (int k = 1; k <= MSGS; k++) {
        char req[96];
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"batched\",\"data\":%d}", k);
        bsend(&pub, req);
        expect_type(&pub, "ack", NULL);
        for (int i = 0; i < SUBS; i++) {
            cJSON *j = brecv(&subs[i]);
            cr_assert_eq(num(j, "data"), k, "subscriber %d: got %g, want %d", i, num(j, "data"), k);
            cJSON_Delete(j);
        }
    }
    double batched = scrape_metric(srv.port, "herald_batched_sends_total") - before;
    double submissions = scrape_metric(srv.port, "herald_batch_submissions_total") - subs_before;
    /* Nearly every send is batched. A wake that finds its subscriber still busy finishing the
     * previous wave's turn (its send made, its fd not yet re-armed) is folded into that turn,
     * whose further sends are ordinary ones: under TSan 66 of 100 subscribers' first sends were
     * batched when the messages were published all at once. */
    if (batching) {
        cr_assert_geq(batched, MSGS * SUBS / 2, "%.0f batched sends for %d deliveries", batched,
                      MSGS * SUBS);
        /* A wave's sends leave in submissions of up to 256, not one by one. */
        cr_assert_leq(submissions * 8, batched, "%.0f sends in %.0f submissions", batched,
                      submissions);
    } else {
        cr_assert(batched == 0 && submissions == 0, "--no-uring: %.0f sends in %.0f submissions",
                  batched, submissions);
    }
    for (int i = 0; i < SUBS; i++)
        wsc_close(&subs[i]);
    wsc_close(&pub);
    free(subs);
}

/* herald_sends_total counts writes to client sockets: one publish to SUBS idle subscribers is one
 * send each, one for the publisher's ack and one per /metrics answer read in between. */
Test(broker, the_sends_metric_counts_one_send_per_subscriber_woken)
{
    enum { SUBS = 40 };
    struct wsc *subs = open_subscribers(SUBS, "counted");
    struct wsc pub;
    bopen(&pub);
    /* The subscriptions' acks may still be counted late (a worker counts a send after it returns,
     * and the reader it woke can preempt it in between: 45 sends for 43-44 under TSan once the
     * workers were batch tasks). So `before` is taken once two scrapes in a row differ by exactly
     * the earlier one's answer. */
    double before = scrape_metric(srv.port, "herald_sends_total");
    for (int tries = 0; tries < 300; tries++) {
        double again = scrape_metric(srv.port, "herald_sends_total");
        bool settled = again == before + 1;
        before = again;
        if (settled)
            break;
        usleep(10 * 1000);
    }
    double delivered = scrape_metric(srv.port, "herald_messages_delivered_total");
    cr_assert(before >= 0 && delivered >= 0, "metrics missing");
    bsend(&pub, "{\"op\":\"pub\",\"topic\":\"counted\",\"data\":1}");
    expect_type(&pub, "ack", NULL);
    for (int i = 0; i < SUBS; i++)
        cJSON_Delete(brecv(&subs[i]));
    delivered = scrape_metric(srv.port, "herald_messages_delivered_total") - delivered;
    cr_assert_eq(delivered, SUBS);
    /* SUBS deliveries, the ack, and the answers of the /metrics requests made since `before`
     * (each counted once it has gone). A worker counts a send after it returns, which may be
     * after its reader got the bytes (seen under TSan: 38 of 40 counted at first), so the count
     * is awaited; a send split by a full socket would add one, which these small frames never
     * meet. */
    int answers = 3; /* `before`'s and the two of `delivered` */
    double sends = 0;
    for (int tries = 0; tries < 300; tries++) {
        sends = scrape_metric(srv.port, "herald_sends_total") - before;
        if (sends >= SUBS + 1 + answers)
            break;
        answers++;
        usleep(10 * 1000);
    }
    cr_assert(sends >= SUBS + 1 + answers && sends <= SUBS + 2 + answers,
              "%.0f sends for %d subscribers and %d /metrics answers", sends, SUBS, answers);
    for (int i = 0; i < SUBS; i++)
        wsc_close(&subs[i]);
    wsc_close(&pub);
    free(subs);
}

/* Gives a socket that was made slow with a tiny SO_RCVBUF a normal receive window again: the
 * window's clamp was set from the tiny buffer, and through it the megabytes the kernel buffered
 * for the reader come at a few KiB per 200 ms (the sender waits for a window of a full segment). */
static void open_window(int fd)
{
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    setsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP, &big, sizeof(big));
}

Test(broker, slow_consumer_is_cut_off_and_healthy_subscribers_get_everything)
{
    struct herald_proc p;
    const char *args[] = {"--max-outbound", "65536", "--history-size", "100000", NULL};
    herald_start(&p, args);
    /* More than the kernel's send buffer (up to 4 MiB) and the 64 KiB queue can hold for it. */
    enum { HEALTHY_MAX = 100, MSGS = 6000 }; /* the issue asks for 100 healthy subscribers */
    const int HEALTHY = under_sanitizer() ? 10 : HEALTHY_MAX;
    struct wsc slow;
    bopen_port(&slow, p.port);
    int tiny = 4096;
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
    bsend(&slow, "{\"op\":\"sub\",\"topic\":\"firehose\"}");
    expect_type(&slow, "ack", NULL);
    struct wsc *ok = calloc((size_t)HEALTHY, sizeof(*ok));
    for (int i = 0; i < HEALTHY; i++) {
        bopen_port(&ok[i], p.port);
        bsend(&ok[i], "{\"op\":\"sub\",\"topic\":\"firehose\"}");
        expect_type(&ok[i], "ack", NULL);
    }
    struct wsc pub;
    bopen_port(&pub, p.port);
    char *pad = malloc(1501);
    memset(pad, 'x', 1500);
    pad[1500] = '\0';
    char *req = malloc(1700);
    int got[HEALTHY_MAX] = {0};
    for (int m = 0; m < MSGS; m++) {
        snprintf(req, 1700, "{\"op\":\"pub\",\"topic\":\"firehose\",\"data\":\"%d %s\"}", m, pad);
        bsend(&pub, req);
        expect_type(&pub, "ack", NULL);
        /* Healthy subscribers keep reading as they go. */
        for (int i = 0; i < HEALTHY; i++) {
            cJSON *j = brecv(&ok[i]);
            cr_assert_eq(num(j, "offset"), ++got[i]);
            cJSON_Delete(j);
        }
    }
    /* The slow one was cut off early: what reaches it ends (close frame or, long after the
     * server gave up on delivering it, a reset) well before the last message. Read it with a
     * normal window now: through 4 KiB, the megabytes the kernel buffered take minutes. */
    open_window(slow.fd);
    int delivered = 0;
    struct wsc_frame f;
    while (wsc_recv(&slow, &f, 5000) == 0 && f.opcode == WS_OP_TEXT) {
        delivered++;
        wsc_frame_free(&f);
    }
    wsc_frame_free(&f);
    cr_assert_lt(delivered, MSGS / 2, "the slow consumer got %d of %d", delivered, MSGS);
    for (int i = 0; i < HEALTHY; i++) {
        cr_assert_eq(got[i], MSGS);
        wsc_close(&ok[i]);
    }
    wsc_close(&slow);
    wsc_close(&pub);
    free(ok);
    free(pad);
    free(req);
    char *log = herald_stop(&p);
    cr_assert_not_null(strstr(log, "slow consumer"), "logged");
    free(log);
}

struct slow_reader {
    struct wsc *c;
    bool chatty; /* sends a ping after each message it reads */
    int frames, code;
    atomic_int fast; /* publishing is over: read at full speed */
};

/* Reads one frame per millisecond: slower than the publisher, so it falls behind. */
static void *read_slowly(void *arg)
{
    struct slow_reader *r = arg;
    struct wsc_frame f;
    while (wsc_recv(r->c, &f, 10000) == 0) {
        if (f.opcode == WS_OP_CLOSE) {
            r->code = f.len >= 2 ? (f.data[0] << 8 | f.data[1]) : 1005;
            wsc_frame_free(&f);
            return NULL;
        }
        r->frames += f.opcode == WS_OP_TEXT;
        wsc_frame_free(&f);
        /* Pings the server, held back by this reader's queue, leaves unread. */
        if (r->chatty && !atomic_load(&r->fast) && wsc_send(r->c, WS_OP_PING, "hi", 2) < 0)
            break;
        if (!atomic_load(&r->fast))
            usleep(1000);
    }
    r->code = -1;
    return NULL;
}

/* A reader slower than the publisher is closed with 4008 once --max-outbound bytes wait for it. */
static void slow_reader_is_cut(const char *max_outbound, bool chatty)
{
    struct herald_proc p;
    const char *args[] = {"--max-outbound", max_outbound, "--history-size", "100000", NULL};
    herald_start(&p, args);
    struct wsc slow, pub;
    bopen_port(&slow, p.port);
    int tiny = 4096;
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
    bsend(&slow, "{\"op\":\"sub\",\"topic\":\"firehose\"}");
    expect_type(&slow, "ack", NULL);
    struct slow_reader r = {.c = &slow, .chatty = chatty};
    pthread_t th;
    pthread_create(&th, NULL, read_slowly, &r);
    bopen_port(&pub, p.port);
    char pad[1501], req[1700];
    memset(pad, 'x', 1500);
    pad[1500] = '\0';
    for (int m = 0; m < 8000; m++) {
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"firehose\",\"data\":\"%d %s\"}", m,
                 pad);
        bsend(&pub, req);
        if (m % 100 == 99) /* keep reading the acks, or the server throttles this publisher */
            for (int k = 0; k < 100; k++)
                expect_type(&pub, "ack", NULL);
    }
    /* Publishing is over: what the kernel still buffers for the reader comes through a normal
     * window and without the pauses (through 4 KiB it takes minutes), then the close. */
    open_window(slow.fd);
    atomic_store(&r.fast, 1);
    pthread_join(th, NULL);
    cr_assert_eq(r.code, 4008, "close code %d after %d messages", r.code, r.frames);
    cr_assert_lt(r.frames, 8000);
    wsc_close(&slow);
    wsc_close(&pub);
    free(herald_stop(&p));
}

Test(broker, slow_consumer_gets_close_code_4008)
{
    slow_reader_is_cut("65536", false);
}

/* A reader that still sends while it is cut off leaves input the server will not read. Closing
 * with it unread would send a reset, and the reset throws away what the kernel still holds for
 * the reader, the close frame with it: the reader would see its connection reset (1006 to a
 * browser), not 4008. */
Test(broker, slow_consumer_that_keeps_sending_gets_close_code_4008)
{
    slow_reader_is_cut("65536", true);
}

/* Subscribes c to `topic` and copies the topic's epoch from the ack into epoch. */
static void sub_epoch(struct wsc *c, const char *topic, char *epoch, size_t cap)
{
    char req[300];
    snprintf(req, sizeof(req), "{\"op\":\"sub\",\"topic\":\"%s\"}", topic);
    bsend(c, req);
    cJSON *j;
    expect_type(c, "ack", &j);
    snprintf(epoch, cap, "%s", str(j, "epoch"));
    cJSON_Delete(j);
}

/* A replay the subscriber asks for (recover, last) is read at its pace: --max-outbound bounds how
 * far behind the live stream it falls, not how much history it asked for. 300 KiB missed behind a
 * 64 KiB bound used to end in 4008 right after the ack, every time the client came back. */
Test(broker, a_replay_larger_than_max_outbound_is_delivered_whole)
{
    struct herald_proc p;
    const char *args[] = {"--max-outbound", "65536", "--history-size", "1000", NULL};
    herald_start(&p, args);
    enum { N = 300 };
    struct wsc a, pub;
    char epoch[64];
    bopen_port(&a, p.port);
    sub_epoch(&a, "feed", epoch, sizeof(epoch));
    wsc_close(&a); /* gone while N KiB are published */
    cJSON *j;
    bopen_port(&pub, p.port);
    char pad[1025], req[1200];
    memset(pad, 'x', 1024);
    pad[1024] = '\0';
    for (int m = 1; m <= N; m++) {
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"feed\",\"data\":\"%d %s\"}", m,
                 pad);
        bsend(&pub, req);
        expect_type(&pub, "ack", NULL);
    }
    int published = N;
    for (int k = 0; k < 2; k++) {
        bopen_port(&a, p.port);
        char opt[128];
        if (k == 0) /* everything since it left */
            snprintf(opt, sizeof(opt), "\"recover\":{\"epoch\":\"%s\",\"offset\":0}", epoch);
        else /* the newest N */
            snprintf(opt, sizeof(opt), "\"last\":%d", N);
        snprintf(req, sizeof(req), "{\"op\":\"sub\",\"topic\":\"feed\",%s}", opt);
        bsend(&a, req);
        expect_type(&a, "ack", &j);
        cr_assert_eq(num(j, "replay"), N, "%s", opt);
        cJSON_Delete(j);
        for (int m = published - N + 1; m <= published; m++) {
            j = brecv(&a); /* fails on the 4008 close frame */
            cr_assert_eq(num(j, "offset"), m, "%s", opt);
            cJSON_Delete(j);
        }
        /* Live messages still come after it. */
        bsend(&pub, "{\"op\":\"pub\",\"topic\":\"feed\",\"data\":\"live\"}");
        expect_type(&pub, "ack", NULL);
        published++;
        j = brecv(&a);
        cr_assert_str_eq(str(j, "data"), "live");
        cJSON_Delete(j);
        wsc_close(&a);
    }
    wsc_close(&pub);
    free(herald_stop(&p));
}

/* Past the 64 KiB a connection's queue takes at a time, what waits for it stays in the topic's
 * history: it still counts against --max-outbound, so 12 MB published past a slow reader with a
 * 1 MiB bound still ends in 4008, not in a reader quietly left behind. */
Test(broker, what_waits_in_the_history_counts_against_max_outbound)
{
    slow_reader_is_cut("1048576", false);
}

struct pub_loop {
    int port, n;
};

static void *publish_loop(void *arg)
{
    struct pub_loop *pl = arg;
    struct wsc p;
    bopen_port(&p, pl->port);
    for (int i = 1; i <= pl->n; i++) {
        char req[96];
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"feed\",\"data\":%d}", i);
        wsc_send(&p, WS_OP_TEXT, req, strlen(req));
        if (i % 50 == 0) {
            /* Read the acks: a publisher that never reads is throttled by the server (its
             * replies back up), and this loop would block for good. */
            for (int k = 0; k < 50; k++) {
                struct wsc_frame f;
                if (wsc_recv(&p, &f, 20000) != 0)
                    break;
                wsc_frame_free(&f);
            }
            usleep(2000);
        }
    }
    wsc_close(&p);
    return NULL;
}

/* The replay fills the connection's queue while a slow reader takes it: live messages arriving
 * meanwhile are not a reason to cut it off, as long as what waits past the replay stays under
 * --max-outbound. A queue full of replay plus one live message used to end in 4008. */
Test(broker, live_messages_during_a_slowly_read_replay_do_not_cut_it)
{
    struct herald_proc p;
    const char *args[] = {"--max-outbound", "65536", "--history-size", "100000", NULL};
    herald_start(&p, args);
    /* More than the kernel buffers for a reader with a 4 KiB window: the queue stays full. */
    enum { N = 6000, LIVE = 100 };
    struct wsc a, pub;
    bopen_port(&pub, p.port);
    char pad[1025], req[1200];
    memset(pad, 'x', 1024);
    pad[1024] = '\0';
    for (int m = 1; m <= N; m++) {
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"feed\",\"data\":\"%s\"}", pad);
        bsend(&pub, req);
        if (m % 100 == 0) /* read the acks as they come, or the server throttles this publisher */
            for (int k = 0; k < 100; k++)
                expect_type(&pub, "ack", NULL);
    }
    bopen_port(&a, p.port);
    int tiny = 4096;
    setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
    snprintf(req, sizeof(req), "{\"op\":\"sub\",\"topic\":\"feed\",\"last\":%d}", N);
    bsend(&a, req);
    cJSON *j;
    expect_type(&a, "ack", &j);
    cr_assert_eq(num(j, "replay"), N);
    cJSON_Delete(j);
    pthread_t th;
    struct pub_loop pl = {.port = p.port, .n = LIVE}; /* small live messages, while it reads none */
    pthread_create(&th, NULL, publish_loop, &pl);
    pthread_join(th, NULL);
    usleep(300000);
    open_window(a.fd);
    for (int m = 1; m <= N + LIVE; m++) {
        j = brecv(&a); /* fails on the 4008 close frame */
        cr_assert_eq(num(j, "offset"), m);
        cJSON_Delete(j);
    }
    wsc_close(&a);
    wsc_close(&pub);
    free(herald_stop(&p));
}

/* Its own server, whose history holds every message of the run: with the default 1,000 the test
 * depended on timing, since a publisher that outran the reconnection by 1,000 messages made the
 * recovery fail (16 of 20 runs once the workers became batch tasks and the publisher ran ahead). */
Test(broker, recovery_after_forced_disconnect_with_publishing_in_flight)
{
    enum { N = 3000 };
    struct herald_proc hp;
    const char *args[] = {"--threads", "4", "--history-size", "100000", NULL};
    herald_start(&hp, args);
    struct wsc a;
    bopen_port(&a, hp.port);
    char epoch[64];
    sub_epoch(&a, "feed", epoch, sizeof(epoch));
    cJSON *j;
    pthread_t th;
    struct pub_loop pl = {.port = hp.port, .n = N};
    pthread_create(&th, NULL, publish_loop, &pl);
    int last = 0;
    while (last < 500) { /* read a while */
        j = brecv(&a);
        cr_assert_eq(num(j, "offset"), last + 1);
        last++;
        cJSON_Delete(j);
    }
    wsc_close(&a); /* forced disconnect while publishing goes on */
    usleep(50000);
    bopen_port(&a, hp.port);
    char req[256];
    snprintf(req, sizeof(req),
             "{\"op\":\"sub\",\"topic\":\"feed\",\"recover\":{\"epoch\":\"%s\",\"offset\":%d}}",
             epoch, last);
    bsend(&a, req);
    expect_type(&a, "ack", &j);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "recovered")), "recovered");
    cJSON_Delete(j);
    /* Exactly the missed messages, then the live ones: no gap, no duplicate. */
    while (last < N) {
        j = brecv(&a);
        cr_assert_eq(num(j, "offset"), last + 1, "gap or duplicate after %d", last);
        cr_assert_eq(cJSON_GetObjectItem(j, "data")->valueint, last + 1);
        last++;
        cJSON_Delete(j);
    }
    pthread_join(th, NULL);
    /* A wrong epoch is not recovered. */
    struct wsc b;
    bopen_port(&b, hp.port);
    bsend(&b, "{\"op\":\"sub\",\"topic\":\"feed\",\"recover\":{\"epoch\":\"0-0\",\"offset\":5}}");
    expect_type(&b, "ack", &j);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "recovered")));
    cr_assert_eq(num(j, "replay"), 0);
    cJSON_Delete(j);
    /* "last": the newest N kept messages. */
    bsend(&b, "{\"op\":\"unsub\",\"topic\":\"feed\"}");
    expect_type(&b, "ack", NULL);
    bsend(&b, "{\"op\":\"sub\",\"topic\":\"feed\",\"last\":3}");
    expect_type(&b, "ack", &j);
    cr_assert_eq(num(j, "replay"), 3);
    cJSON_Delete(j);
    for (int off = N - 2; off <= N; off++) {
        expect_type(&b, "msg", &j);
        cr_assert_eq(num(j, "offset"), off);
        cJSON_Delete(j);
    }
    wsc_close(&a);
    wsc_close(&b);
    free(herald_stop(&hp));
}

Test(broker, closing_a_connection_removes_its_subscriptions)
{
    struct wsc a, p;
    bopen(&a);
    bopen(&p);
    bsend(&a, "{\"op\":\"sub\",\"topic\":\"gone\"}");
    expect_type(&a, "ack", NULL);
    wsc_close(&a);
    usleep(200000);
    bsend(&p, "{\"op\":\"pub\",\"topic\":\"gone\",\"data\":1}");
    cJSON *j;
    expect_type(&p, "ack", &j);
    cr_assert_eq(num(j, "reach"), 0);
    cJSON_Delete(j);
    wsc_close(&p);
}

/* A connection Herald closes (here for a protocol error) lingers until the peer's FIN so that the
 * close frame is not lost to a reset, but its session ends when the close frame is sent: the other
 * members hear it leave at once, not when the lingering ends, 2 s later for a peer that keeps its
 * socket open. */
Test(broker, a_connection_herald_closes_leaves_its_topics_at_once)
{
    struct wsc a, b;
    bopen(&a);
    bopen(&b);
    bsend(&b, "{\"op\":\"sub\",\"topic\":\"room.linger\",\"presence\":true}");
    expect_type(&b, "ack", NULL);
    bsend(&a, "{\"op\":\"sub\",\"topic\":\"room.linger\",\"presence\":true}");
    expect_type(&a, "ack", NULL);
    expect_type(&b, "join", NULL);
    long long t0 = now_ms();
    cr_assert_eq(wsc_send_frame(&a, true, 0, WS_OP_TEXT, "{}", 2, false), 0); /* unmasked: 1002 */
    expect_type(&b, "leave", NULL);
    long long waited = now_ms() - t0;
    cr_assert_lt(waited, 1000, "the leave came %lld ms after the close", waited);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(&a, &f, 5000), 0);
    cr_assert_eq(f.opcode, WS_OP_CLOSE);
    cr_assert_eq(f.data[0] << 8 | f.data[1], 1002);
    wsc_frame_free(&f);
    wsc_close(&a);
    wsc_close(&b);
}

/* The payload of a frame, inflated when it is compressed (RSV1); malloc'ed, NUL-terminated. */
static char *frame_text(const struct wsc_frame *f, size_t *len)
{
    char *t;
    if (f->rsv1) {
        cr_assert_eq(wsc_inflate(f->data, f->len, 1 << 20, &t, len), 0, "corrupt deflate data");
        return t;
    }
    t = malloc(f->len + 1);
    memcpy(t, f->data, f->len);
    t[f->len] = '\0';
    *len = f->len;
    return t;
}

/* The next message's text on a connection that may receive compressed frames. */
static char *zrecv(struct wsc *c, bool *compressed, size_t *len)
{
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(c, &f, 20000), 0);
    *compressed = f.rsv1;
    char *t = frame_text(&f, len);
    wsc_frame_free(&f);
    return t;
}

/* A subscriber that negotiated permessage-deflate gets a large delivery compressed (RSV1), and it
 * inflates to exactly what a subscriber without compression gets; a client asking for a smaller
 * server window gets it plain (the shared frame is compressed with the full window). */
Test(broker, deflate_subscribers_get_the_compressed_frame)
{
    struct wsc z, small, plain, pub;
    const char *exts[] = {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"};
    struct wsc *zc[] = {&z, &small};
    bool zipped;
    size_t len;
    for (int i = 0; i < 2; i++) {
        char head[2048];
        cr_assert_eq(wsc_connect(zc[i], srv.port, "/ws", exts[i], head, sizeof(head)), 101);
        cr_assert_not_null(strstr(head, "permessage-deflate"), "%s", head);
        free(zrecv(zc[i], &zipped, &len)); /* welcome */
        bsend(zc[i], "{\"op\":\"sub\",\"topic\":\"zipped\"}");
        char *ack = zrecv(zc[i], &zipped, &len);
        cr_assert_not_null(strstr(ack, "\"op\":\"sub\""), "%s", ack);
        free(ack);
    }
    bopen(&plain);
    bopen(&pub);
    bsend(&plain, "{\"op\":\"sub\",\"topic\":\"zipped\"}");
    expect_type(&plain, "ack", NULL);
    char data[4096], req[8192];
    size_t n = (size_t)snprintf(data, sizeof(data), "\"");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(data + n, sizeof(data) - n, "row %d of the same table; ", i % 4);
    snprintf(data + n, sizeof(data) - n, "\"");
    cr_assert_gt(wsc_herald_pub(req, sizeof(req), "zipped", data, NULL), 0);
    bsend(&pub, req);
    expect_type(&pub, "ack", NULL);

    struct wsc_frame fp, fz;
    cr_assert_eq(wsc_recv(&plain, &fp, 20000), 0);
    cr_assert_not(fp.rsv1);
    char *s = zrecv(&small, &zipped, &len);
    cr_assert_not(zipped, "a smaller window cannot take the shared frame");
    cr_assert_eq(len, fp.len);
    cr_assert_eq(memcmp(s, fp.data, fp.len), 0);
    free(s);
    cr_assert_eq(wsc_recv(&z, &fz, 20000), 0);
    cr_assert(fz.rsv1, "compressed");
    cr_assert_lt(fz.len, fp.len / 4, "%zu vs %zu bytes", fz.len, fp.len);
    char *t = frame_text(&fz, &len);
    cr_assert_eq(len, fp.len);
    cr_assert_eq(memcmp(t, fp.data, fp.len), 0, "the same delivery, offset included");
    free(t);
    wsc_frame_free(&fp);
    wsc_frame_free(&fz);
    wsc_close(&z);
    wsc_close(&small);
    wsc_close(&plain);
    wsc_close(&pub);
}

/* Stopping the server with presence members connected: destroying each connection sends a leave
 * to the others, whose wake-ups nobody serves any more; they must neither leak nor outlive the
 * connections they name (the sanitizer builds check both when the server stops). */
Test(broker, shutdown_with_presence_members_connected)
{
    struct herald_proc p;
    herald_start(&p, NULL);
    struct wsc m[4];
    for (int i = 0; i < 4; i++) {
        bopen_port(&m[i], p.port);
        bsend(&m[i], "{\"op\":\"sub\",\"topic\":\"room\",\"presence\":true}");
        expect_type(&m[i], "ack", NULL);
    }
    expect_type(&m[0], "join", NULL); /* the others arrived after it */
    char *log = herald_stop(&p);
    free(log);
    for (int i = 0; i < 4; i++)
        wsc_close(&m[i]);
}

/* herald_ws_messages_received_total from GET /metrics. */
static long messages_received(int port)
{
    struct client *h = malloc(sizeof(*h));
    client_open(h, port);
    send_str(h->fd, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    struct http_resp r;
    cr_assert_eq(read_response(h, &r, 0), 0);
    const char *at = strstr(r.body, "\nherald_ws_messages_received_total ");
    cr_assert_not_null(at);
    long n = atol(at + strlen("\nherald_ws_messages_received_total "));
    resp_free(&r);
    client_close(h);
    free(h);
    return n;
}

/* Requests pipelined by a client that does not read: the server stops taking them once their
 * replies pile up (256 KiB), checked after every request, and takes the rest as the client reads,
 * every one answered in order. It used to check after each buffer of input, which could take a
 * whole buffer of requests past the mark; here that build took 163 against 154 now, both within
 * the bound, so this test guards the bound rather than reproducing that overshoot. */
Test(broker, pipelined_requests_wait_while_their_replies_pile_up)
{
    struct wsc m[100];
    char sub[400];
    snprintf(sub, sizeof(sub),
             "{\"op\":\"sub\",\"topic\":\"big\",\"presence\":{\"info\":{\"pad\":\"%0200d\"}}}", 0);
    for (int i = 0; i < 100; i++) {
        bopen(&m[i]);
        bsend(&m[i], sub);
    }
    for (int i = 0; i < 100; i++)
        expect_type(&m[i], "ack", NULL);
    struct wsc c;
    bopen(&c);
    /* This machine lets a receive buffer grow to 32 MB: all the answers would fit in ours. */
    int rcvbuf = 65536;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    enum { N = 1000 };
    /* All of them in one write. */
    size_t cap = N * 64, len = 0;
    uint8_t *wire = malloc(cap);
    const char *q = "{\"op\":\"presence\",\"topic\":\"big\",\"limit\":1000}";
    const uint8_t mask[4] = {9, 8, 7, 6};
    for (int i = 0; i < N; i++) {
        len += wsc_frame_header(wire + len, true, 0, WS_OP_TEXT, strlen(q), mask);
        memcpy(wire + len, q, strlen(q));
        ws_mask(wire + len, strlen(q), mask, 0);
        len += strlen(q);
    }
    long before = messages_received(srv.port);
    cr_assert_eq(wsc_send_raw(&c, wire, len), 0);
    free(wire);
    usleep(1000 * 1000);
    long taken = messages_received(srv.port) - before;
    /* What may be taken: answers for our receive buffer (the kernel doubles the figure), the
     * server's send buffer (at most tcp_wmem's maximum), the 256 KiB queue and the answer that
     * crossed it. The old per-buffer check took 327 here, against 154 now; this bound is 191. */
    long wmem_max = 4 << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        long lo, def;
        if (fscanf(f, "%ld %ld %ld", &lo, &def, &wmem_max) != 3)
            wmem_max = 4 << 20;
        fclose(f);
    }
    long answer = 25260; /* bytes of one answer: 100 members of 245 bytes and the envelope */
    long bound = (2 * rcvbuf + wmem_max + (256 << 10) + answer) / answer + 1;
    cr_log_info("%ld of %d requests taken while their answers were not read (bound %ld)", taken, N,
                bound);
    cr_assert_leq(taken, bound, "%ld of %d requests taken, bound %ld", taken, N, bound);
    for (int i = 0; i < N; i++) {
        struct wsc_frame fr;
        cr_assert_eq(wsc_recv(&c, &fr, 20000), 0, "answer %d", i);
        cr_assert_eq(fr.len, (size_t)answer, "answer %d is %zu bytes", i, fr.len);
        cJSON *j = cJSON_ParseWithLength((char *)fr.data, fr.len);
        cr_assert_str_eq(str(j, "op"), "presence", "answer %d", i);
        cr_assert_eq(num(j, "count"), 100);
        cJSON_Delete(j);
        wsc_frame_free(&fr);
    }
    wsc_close(&c);
    for (int i = 0; i < 100; i++)
        wsc_close(&m[i]);
}
