/*
 * Integration: the WebSocket layer against the real binary's echo endpoint, grouped like the
 * Autobahn fuzzingclient sections: handshake, framing, ping/pong, reserved bits, opcodes,
 * fragmentation, UTF-8, close handling, limits, compression, keepalive.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "wsc.h"
#include "wsc_wire.h"

static struct herald_proc srv;

static void setup(void)
{
    const char *args[] = {"--threads",     "2",        "--echo-path", "/echo",
                          "--max-message", "16777216", NULL};
    herald_start(&srv, args);
}

static void teardown(void)
{
    free(herald_stop(&srv));
}

TestSuite(ws, .init = setup, .fini = teardown, .timeout = 120);

static void ws_open(struct wsc *c, const char *extra)
{
    char head[2048];
    int st = wsc_connect(c, srv.port, "/echo", extra, head, sizeof(head));
    cr_assert_eq(st, 101, "handshake: %d\n%s", st, head);
}

static void expect_message(struct wsc *c, uint8_t opcode, const void *data, size_t len)
{
    struct wsc_frame f;
    int rc = wsc_recv_message(c, &f, 20000);
    cr_assert_eq(rc, 0, "no message (rc %d)", rc);
    cr_assert_eq(f.opcode, opcode, "opcode %d", f.opcode);
    cr_assert_eq(f.len, len, "length %zu, want %zu", f.len, len);
    cr_assert(len == 0 || memcmp(f.data, data, len) == 0, "payload differs");
    wsc_frame_free(&f);
}

/* The server closes with `code`, then closes TCP. */
static void expect_closed_with(struct wsc *c, int code)
{
    int got = wsc_expect_close(c, 10000);
    cr_assert_eq(got, code, "close code %d, want %d", got, code);
    cr_assert(wsc_wait_eof(c, 10000), "TCP not closed after the close frame");
    wsc_close(c);
}

/* ---- handshake ---- */

Test(ws, handshake_accepts_and_computes_the_key)
{
    struct wsc c;
    char head[2048];
    cr_assert_eq(wsc_connect(&c, srv.port, "/echo", "Sec-WebSocket-Protocol: chat, echo\r\n", head,
                             sizeof(head)),
                 101);
    cr_assert_not_null(strstr(head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
                       "%s", head);
    cr_assert_not_null(strstr(head, "\r\nSec-WebSocket-Protocol: echo\r\n"), "%s", head);
    cr_assert_not_null(strstr(head, "\r\nUpgrade: websocket\r\n"));
    wsc_send(&c, WS_OP_TEXT, "hi", 2);
    expect_message(&c, WS_OP_TEXT, "hi", 2);
    wsc_close(&c);
}

struct hs_case {
    const char *request;
    int status;
    const char *must_contain;
};

static const struct hs_case hs_cases[] = {
    {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
     426, "Sec-WebSocket-Version: 13"},
    /* RFC 9110 15.5.22: a 426 names the protocol to upgrade to. */
    {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
     426, "\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"},
    {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400, NULL},
    {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, NULL},
    {"GET /elsewhere HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     404, NULL},
    {"GET /echo HTTP/1.0\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, NULL},
    {"POST /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, NULL},
    /* Token lists, any case. */
    {"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     101, NULL},
};

Test(ws, handshake_faults_get_their_status)
{
    for (size_t i = 0; i < sizeof(hs_cases) / sizeof(hs_cases[0]); i++) {
        struct wsc c;
        char head[2048];
        int st = wsc_connect_raw(&c, srv.port, hs_cases[i].request, head, sizeof(head));
        cr_assert_eq(st, hs_cases[i].status, "case %zu: %d\n%s", i, st, head);
        if (hs_cases[i].must_contain)
            cr_assert_not_null(strstr(head, hs_cases[i].must_contain), "case %zu: %s", i, head);
        wsc_close(&c);
    }
}

Test(ws, frames_in_the_same_packet_as_the_handshake_are_not_lost)
{
    uint8_t frame[32];
    uint8_t mask[4] = {1, 2, 3, 4};
    size_t hl = ws_frame_header_encode(frame, true, false, WS_OP_TEXT, 5, mask);
    memcpy(frame + hl, "early", 5);
    ws_mask(frame + hl, 5, mask, 0);
    char req[1024];
    int n =
        snprintf(req, sizeof(req),
                 "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "\r\n");
    memcpy(req + n, frame, hl + 5);
    req[n + hl + 5] = '\0';
    struct wsc c;
    char head[2048];
    cr_assert_eq(wsc_connect_raw(&c, srv.port, req, head, sizeof(head)), 101);
    expect_message(&c, WS_OP_TEXT, "early", 5);
    wsc_close(&c);
}

/* ---- framing, ping/pong ---- */

Test(ws, echoes_every_length_form)
{
    struct wsc c;
    ws_open(&c, NULL);
    size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 300000};
    uint8_t *data = malloc(300000);
    for (size_t i = 0; i < 300000; i++)
        data[i] = (uint8_t)(i * 7);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        wsc_send(&c, WS_OP_BINARY, data, sizes[k]);
        expect_message(&c, WS_OP_BINARY, data, sizes[k]);
    }
    wsc_send(&c, WS_OP_TEXT, "text", 4);
    expect_message(&c, WS_OP_TEXT, "text", 4);
    free(data);
    wsc_close(&c);
}

/* Between messages an upgraded connection stays armed edge-triggered, so a round trip costs no
 * EPOLL_CTL_MOD. With --ws-oneshot (the Makefile runs this suite a second time with it) every
 * event re-arms the fd. /metrics counts the re-arms; each scrape is a new HTTP connection and
 * adds a few of its own. */
Test(ws, round_trips_rearm_the_fd_only_in_oneshot_mode)
{
    int oneshot = extra_args_have("--ws-oneshot");
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_TEXT, "warm", 4);
    expect_message(&c, WS_OP_TEXT, "warm", 4);
    double before = scrape_metric(srv.port, "herald_epoll_rearms_total");
    cr_assert_geq(before, 0, "herald_epoll_rearms_total missing");
    enum { ROUND_TRIPS = 300 };
    for (int i = 0; i < ROUND_TRIPS; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "m%d", i);
        cr_assert_eq(wsc_send(&c, WS_OP_TEXT, msg, (size_t)n), 0);
        expect_message(&c, WS_OP_TEXT, msg, (size_t)n);
    }
    double rearms = scrape_metric(srv.port, "herald_epoll_rearms_total") - before;
    if (oneshot)
        cr_assert_geq(rearms, ROUND_TRIPS, "one-shot: %.0f re-arms for %d round trips", rearms,
                      ROUND_TRIPS);
    else
        cr_assert_lt(rearms, 20, "edge-triggered: %.0f re-arms for %d round trips", rearms,
                     ROUND_TRIPS);
    wsc_close(&c);
}

/* The replies to the events of one epoll_wait go out together in one io_uring submission
 * (conn_batch.h): many clients sending at once give the server several events per wait. With
 * --no-uring (the Makefile runs this suite again with it) every reply is its own sendmsg. */
Test(ws, echo_replies_to_many_clients_are_batched_unless_no_uring)
{
    int batching = server_batches_sends();
    enum { CLIENTS = 32, ROUNDS = 50 };
    struct wsc c[CLIENTS];
    for (int k = 0; k < CLIENTS; k++)
        ws_open(&c[k], NULL);
    double before = scrape_metric(srv.port, "herald_batched_sends_total");
    double subs_before = scrape_metric(srv.port, "herald_batch_submissions_total");
    cr_assert(before >= 0 && subs_before >= 0, "batching metrics missing");
    for (int r = 0; r < ROUNDS; r++) {
        char msg[32];
        for (int k = 0; k < CLIENTS; k++) {
            int n = snprintf(msg, sizeof(msg), "r%d c%d", r, k);
            cr_assert_eq(wsc_send(&c[k], WS_OP_TEXT, msg, (size_t)n), 0);
        }
        for (int k = 0; k < CLIENTS; k++) {
            int n = snprintf(msg, sizeof(msg), "r%d c%d", r, k);
            expect_message(&c[k], WS_OP_TEXT, msg, (size_t)n);
        }
    }
    double batched = scrape_metric(srv.port, "herald_batched_sends_total") - before;
    double submissions = scrape_metric(srv.port, "herald_batch_submissions_total") - subs_before;
    /* How many replies share a submission depends on how the sends meet the workers' waits;
     * some always do when 32 clients send at once, 50 times over. */
    if (batching)
        cr_assert(batched >= 2 && submissions >= 1 && batched >= 2 * submissions,
                  "%.0f replies sent in %.0f submissions", batched, submissions);
    else
        cr_assert(batched == 0 && submissions == 0, "--no-uring: %.0f sends in %.0f submissions",
                  batched, submissions);
    for (int k = 0; k < CLIENTS; k++)
        wsc_close(&c[k]);
}

/* A kernel or sandbox that makes io_uring rings but refuses to send through them (before Linux
 * 5.3, or rings restricted to a few operations): the server finds out when it makes its rings and
 * sends the ordinary way. Before that check every upgraded connection was closed without a word:
 * its 101 failed in the ring. tests/shim/uring_refuse.c restricts every ring the server makes to
 * IORING_OP_NOP. Plain build only: a sanitizer's runtime must be the first library loaded. */
Test(ws, a_ring_that_cannot_send_is_refused_and_sends_are_ordinary)
{
    if (under_sanitizer())
        cr_skip_test("LD_PRELOAD shim: plain build only");
    if (!kernel_has_io_uring())
        cr_skip_test("no io_uring here: nothing to refuse");
    if (extra_args_have("--no-uring"))
        cr_skip_test("--no-uring: the server makes no ring");
    const char *bin = getenv("HERALD_BIN");
    char shim[4096];
    snprintf(shim, sizeof(shim), "%.*s/tests/uring_refuse.so",
             bin && strrchr(bin, '/') ? (int)(strrchr(bin, '/') - bin) : 5, bin ? bin : "build");
    cr_assert_eq(access(shim, R_OK), 0, "%s not built (make integration builds it)", shim);
    setenv("LD_PRELOAD", shim, 1);
    struct herald_proc p;
    const char *args[] = {"--threads", "2", "--echo-path", "/echo", NULL};
    herald_start(&p, args);
    unsetenv("LD_PRELOAD");
    enum { CLIENTS = 16 };
    struct wsc c[CLIENTS];
    for (int k = 0; k < CLIENTS; k++) {
        char head[2048];
        int st = wsc_connect(&c[k], p.port, "/echo", NULL, head, sizeof(head));
        cr_assert_eq(st, 101, "handshake: %d\n%s", st, head);
    }
    for (int r = 0; r < 20; r++) {
        for (int k = 0; k < CLIENTS; k++)
            cr_assert_eq(wsc_send(&c[k], WS_OP_TEXT, "still here", 10), 0);
        for (int k = 0; k < CLIENTS; k++)
            expect_message(&c[k], WS_OP_TEXT, "still here", 10);
    }
    cr_assert_eq(scrape_metric(p.port, "herald_batched_sends_total"), 0);
    for (int k = 0; k < CLIENTS; k++)
        wsc_close(&c[k]);
    char *log = herald_stop(&p);
    cr_assert_not_null(strstr(log, "no io_uring (Permission denied)"), "log:\n%s", log);
    free(log);
}

Test(ws, ping_gets_pong_with_same_payload_and_pongs_are_ignored)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_PONG, "unsolicited", 11);
    wsc_send(&c, WS_OP_PING, "payload-1", 9);
    expect_message(&c, WS_OP_PONG, "payload-1", 9);
    uint8_t big[125];
    memset(big, 'p', sizeof(big));
    wsc_send(&c, WS_OP_PING, big, sizeof(big));
    expect_message(&c, WS_OP_PONG, big, sizeof(big));
    wsc_send(&c, WS_OP_PING, NULL, 0);
    expect_message(&c, WS_OP_PONG, NULL, 0);
    wsc_close(&c);
}

Test(ws, unmasked_client_frame_is_1002)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send_frame(&c, true, 0, WS_OP_TEXT, "bare", 4, false);
    expect_closed_with(&c, 1002);
}

/* ---- reserved bits and opcodes ---- */

Test(ws, reserved_bits_without_extension_are_1002)
{
    for (unsigned rsv = 1; rsv <= 7; rsv++) {
        struct wsc c;
        ws_open(&c, NULL);
        wsc_send(&c, WS_OP_TEXT, "ok", 2);
        expect_message(&c, WS_OP_TEXT, "ok", 2);
        wsc_send_frame(&c, true, rsv, WS_OP_TEXT, "bad", 3, true);
        expect_closed_with(&c, 1002);
    }
}

Test(ws, reserved_opcodes_are_1002)
{
    uint8_t ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < sizeof(ops); i++) {
        struct wsc c;
        ws_open(&c, NULL);
        wsc_send_frame(&c, true, 0, ops[i], "x", 1, true);
        expect_closed_with(&c, 1002);
    }
}

/* ---- fragmentation ---- */

Test(ws, fragments_with_control_frames_between_are_one_message)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send_frame(&c, false, 0, WS_OP_TEXT, "frag", 4, true);
    wsc_send(&c, WS_OP_PING, "mid", 3);
    wsc_send_frame(&c, false, 0, WS_OP_CONT, "men", 3, true);
    wsc_send_frame(&c, true, 0, WS_OP_CONT, "ted", 3, true);
    /* The pong is answered at once, before the message completes. */
    expect_message(&c, WS_OP_PONG, "mid", 3);
    expect_message(&c, WS_OP_TEXT, "fragmented", 10);
    /* Empty fragments are fine too. */
    wsc_send_frame(&c, false, 0, WS_OP_BINARY, NULL, 0, true);
    wsc_send_frame(&c, true, 0, WS_OP_CONT, NULL, 0, true);
    expect_message(&c, WS_OP_BINARY, NULL, 0);
    wsc_close(&c);
}

Test(ws, fragmentation_violations_are_1002)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send_frame(&c, true, 0, WS_OP_CONT, "orphan", 6, true);
    expect_closed_with(&c, 1002);

    ws_open(&c, NULL);
    wsc_send_frame(&c, false, 0, WS_OP_TEXT, "one", 3, true);
    wsc_send_frame(&c, true, 0, WS_OP_TEXT, "two", 3, true);
    expect_closed_with(&c, 1002);

    ws_open(&c, NULL);
    wsc_send_frame(&c, false, 0, WS_OP_PING, "frag-ping", 9, true);
    expect_closed_with(&c, 1002);

    ws_open(&c, NULL);
    uint8_t big[126] = {0};
    wsc_send_frame(&c, true, 0, WS_OP_PING, big, sizeof(big), true);
    expect_closed_with(&c, 1002);
}

/* ---- UTF-8 ---- */

Test(ws, valid_utf8_split_across_fragments_is_echoed)
{
    struct wsc c;
    ws_open(&c, NULL);
    const char *s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80"; /* κόσμε 😀 */
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) /* one byte per fragment: every character split */
        wsc_send_frame(&c, i + 1 == n, 0, i == 0 ? WS_OP_TEXT : WS_OP_CONT, s + i, 1, true);
    expect_message(&c, WS_OP_TEXT, s, n);
    wsc_close(&c);
}

Test(ws, invalid_utf8_fails_fast_with_1007)
{
    struct wsc c;
    ws_open(&c, NULL);
    /* The message is not finished: the server must not wait for the rest. */
    wsc_send_frame(&c, false, 0, WS_OP_TEXT, "ok \xed\xa0\x80 surrogate", 16, true);
    expect_closed_with(&c, 1007);

    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_TEXT, "\xc0\xaf", 2); /* overlong '/' */
    expect_closed_with(&c, 1007);

    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_TEXT, "cut \xe2\x82", 6); /* ends inside a character */
    expect_closed_with(&c, 1007);

    ws_open(&c, NULL); /* binary messages are not UTF-8 checked */
    wsc_send(&c, WS_OP_BINARY, "\xff\xfe", 2);
    expect_message(&c, WS_OP_BINARY, "\xff\xfe", 2);
    wsc_close(&c);
}

/* ---- close handling ---- */

Test(ws, close_is_echoed_then_tcp_closes)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_CLOSE,
             "\x03\xe8"
             "bye",
             5);
    expect_closed_with(&c, 1000);

    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_CLOSE, NULL, 0);
    expect_closed_with(&c, 1005); /* an empty close is answered with an empty close */

    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_CLOSE, "\x0f\xa0", 2); /* 4000: an application code */
    expect_closed_with(&c, 4000);
}

Test(ws, nothing_is_read_after_close)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_CLOSE, "\x03\xe8", 2);
    wsc_send(&c, WS_OP_TEXT, "after close", 11);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(&c, &f, 5000), 0);
    cr_assert_eq(f.opcode, WS_OP_CLOSE, "the close comes back, not an echo");
    wsc_frame_free(&f);
    cr_assert(wsc_wait_eof(&c, 5000));
    wsc_close(&c);
}

Test(ws, invalid_close_payloads_are_1002)
{
    const char *payloads[] = {"\x03",     "\x03\xe7", "\x03\xed",        "\x03\xee",
                              "\x03\xf7", "\x13\x88", "\x03\xe8\xff\xfe"};
    size_t lens[] = {1, 2, 2, 2, 2, 2, 4}; /* 1 byte, 999, 1005, 1006, 1015, 5000, bad UTF-8 */
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct wsc c;
        ws_open(&c, NULL);
        wsc_send(&c, WS_OP_CLOSE, payloads[i], lens[i]);
        expect_closed_with(&c, 1002);
    }
}

/* ---- limits ---- */

static void send_in_frames(struct wsc *c, const uint8_t *data, size_t len, size_t frame)
{
    for (size_t off = 0; off < len; off += frame) {
        size_t n = len - off < frame ? len - off : frame;
        cr_assert_eq(wsc_send_frame(c, off + n == len, 0, off == 0 ? WS_OP_BINARY : WS_OP_CONT,
                                    data + off, n, true),
                     0);
    }
}

/* A client's last frame and its FIN in one segment: the read that takes the frame is short, yet
 * the socket is not drained (the end of stream is still to be read). The server must see the
 * end at once, not at the next keepalive ping (25 s here), answer, and close. */
Test(ws, last_frame_and_fin_in_one_segment_end_the_connection_at_once)
{
    struct wsc c;
    ws_open(&c, NULL);
    wsc_send(&c, WS_OP_TEXT, "warm", 4); /* settle into the steady (edge-triggered) state */
    expect_message(&c, WS_OP_TEXT, "warm", 4);
    int one = 1, zero = 0;
    cr_assert_eq(setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)), 0);
    cr_assert_eq(wsc_send(&c, WS_OP_TEXT, "last", 4), 0);
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0); /* sent with the corked frame */
    setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
    long long t0 = now_ms();
    expect_message(&c, WS_OP_TEXT, "last", 4);
    cr_assert(wsc_wait_eof(&c, 5000), "the server did not close within 5 s of the FIN");
    cr_assert_lt(now_ms() - t0, 5000);
    wsc_close(&c);
}

/* Sends n messages of len bytes, each starting with its number (a thread: the test reads). */
struct flood {
    struct wsc *c;
    int n;
    size_t len;
    int rc;
};

static void *flood_send(void *arg)
{
    struct flood *fl = arg;
    uint8_t *msg = malloc(fl->len);
    for (int i = 0; i < fl->n && fl->rc == 0; i++) {
        memset(msg, 'a' + i % 26, fl->len);
        memcpy(msg, &i, sizeof(i));
        fl->rc = wsc_send(fl->c, WS_OP_BINARY, msg, fl->len);
    }
    free(msg);
    return NULL;
}

/* A client that sends far more than it reads: the server stops reading while its send queue is
 * over the high-water mark (leaving edge-triggered mode), the socket buffers fill, and everything
 * resumes when the client reads, with input waiting in the socket that no new edge announces.
 * Every message must come back, in order. */
Test(ws, a_client_that_stops_reading_gets_every_echo_once_it_reads)
{
    struct wsc c;
    ws_open(&c, NULL);
    struct flood fl = {.c = &c, .n = 2000, .len = 8192};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, flood_send, &fl), 0);
    usleep(1000 * 1000); /* 16 MB cannot all be in flight: the sender is blocked by now */
    for (int i = 0; i < fl.n; i++) {
        struct wsc_frame f;
        int rc = wsc_recv_message(&c, &f, 20000);
        cr_assert_eq(rc, 0, "message %d: rc %d", i, rc);
        cr_assert_eq(f.len, fl.len, "message %d: %zu bytes", i, f.len);
        int k;
        memcpy(&k, f.data, sizeof(k));
        cr_assert_eq(k, i, "message %d came back as %d", i, k);
        cr_assert_eq(f.data[fl.len - 1], 'a' + i % 26);
        wsc_frame_free(&f);
    }
    pthread_join(t, NULL);
    cr_assert_eq(fl.rc, 0, "send failed");
    wsc_close(&c);
}

Test(ws, large_messages_in_many_frame_sizes)
{
    size_t total = 16 * 1024 * 1024;
    uint8_t *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    struct {
        size_t len, frame;
    } cases[] = {
        {1 << 20, 64},
        {4 << 20, 4096},
        {total, 65536},
        {total, 1 << 20},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    if (under_sanitizer())
        ncases--; /* one 16 MiB message is enough there */
    for (size_t k = 0; k < ncases; k++) {
        struct wsc c;
        ws_open(&c, NULL);
        send_in_frames(&c, data, cases[k].len, cases[k].frame);
        expect_message(&c, WS_OP_BINARY, data, cases[k].len);
        wsc_close(&c);
    }
    free(data);
}

Test(ws, oversized_message_is_1009_before_its_payload)
{
    struct wsc c;
    ws_open(&c, NULL);
    /* Only the header announcing 17 MiB is sent: the server must refuse at once. */
    uint8_t hdr[14], mask[4] = {9, 9, 9, 9};
    size_t hl = ws_frame_header_encode(hdr, true, false, WS_OP_BINARY, 17u << 20, mask);
    wsc_send_raw(&c, hdr, hl);
    expect_closed_with(&c, 1009);

    /* Fragments that add up past the limit. */
    ws_open(&c, NULL);
    uint8_t *chunk = calloc(1, 8 << 20);
    wsc_send_frame(&c, false, 0, WS_OP_BINARY, chunk, 8 << 20, true);
    wsc_send_frame(&c, false, 0, WS_OP_CONT, chunk, 8 << 20, true);
    wsc_send_frame(&c, true, 0, WS_OP_CONT, chunk, 1, true);
    expect_closed_with(&c, 1009);
    free(chunk);
}

/* ---- compression ---- */

/* Raw-deflates `in` as a client would (RFC 7692 7.2.1: the 00 00 FF FF tail removed). */
static size_t client_deflate(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs = {0};
    cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (uint8_t *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    cr_assert_geq(n, 4);
    return n - 4;
}

Test(ws, permessage_deflate_round_trip)
{
    struct wsc c;
    char head[2048];
    cr_assert_eq(wsc_connect(&c, srv.port, "/echo",
                             "Sec-WebSocket-Extensions: permessage-deflate; "
                             "client_max_window_bits\r\n",
                             head, sizeof(head)),
                 101);
    cr_assert_not_null(strstr(head, "Sec-WebSocket-Extensions: permessage-deflate"), "%s", head);
    cr_assert_not_null(strstr(head, "server_no_context_takeover"));
    char text[4000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "herald broker "[i % 14];
    uint8_t z[8000];
    size_t zn = client_deflate((uint8_t *)text, sizeof(text), z, sizeof(z));
    cr_assert_eq(wsc_send_frame(&c, true, 4 /* RSV1 */, WS_OP_TEXT, z, zn, true), 0);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv_message(&c, &f, 10000), 0);
    cr_assert_eq(f.opcode, WS_OP_TEXT);
    cr_assert(f.rsv1, "a compressible echo comes back compressed");
    char *out;
    size_t on;
    cr_assert_eq(wsc_inflate(f.data, f.len, 8000, &out, &on), 0);
    cr_assert_eq(on, sizeof(text));
    cr_assert_eq(memcmp(out, text, on), 0);
    free(out);
    wsc_frame_free(&f);
    /* RSV1 on a continuation frame is still a protocol error. */
    wsc_send_frame(&c, false, 0, WS_OP_TEXT, "a", 1, true);
    wsc_send_frame(&c, true, 4, WS_OP_CONT, "b", 1, true);
    expect_closed_with(&c, 1002);
}

Test(ws, compression_bomb_is_1009)
{
    struct herald_proc p;
    const char *args[] = {"--echo-path", "/echo", "--max-message", "65536", NULL};
    herald_start(&p, args);
    struct wsc c;
    char head[2048];
    cr_assert_eq(wsc_connect(&c, p.port, "/echo",
                             "Sec-WebSocket-Extensions: permessage-deflate\r\n", head,
                             sizeof(head)),
                 101);
    size_t big = 8 << 20;
    uint8_t *zeros = calloc(1, big);
    uint8_t *z = malloc(big / 100);
    size_t zn = client_deflate(zeros, big, z, big / 100);
    cr_assert_lt(zn, 65536, "the compressed frame itself is under the limit");
    wsc_send_frame(&c, true, 4, WS_OP_BINARY, z, zn, true);
    int code = wsc_expect_close(&c, 10000);
    cr_assert_eq(code, 1009);
    wsc_close(&c);
    free(zeros);
    free(z);
    free(herald_stop(&p));
}

/* ---- keepalive ---- */

/* A server pinging after 1 s of silence and closing 1 s after an unanswered ping, and an echo
 * connection to it. */
static void keepalive_echo(struct herald_proc *p, struct wsc *c)
{
    const char *args[] = {"--echo-path", "/echo", "--ping-interval", "1", "--pong-timeout",
                          "1",           NULL};
    herald_start(p, args);
    char head[2048];
    cr_assert_eq(wsc_connect(c, p->port, "/echo", NULL, head, sizeof(head)), 101);
}

Test(ws, silent_peer_is_pinged_then_closed_without_pong)
{
    struct herald_proc p;
    struct wsc c;
    keepalive_echo(&p, &c);
    /* Answering pings keeps the connection open well past interval + timeout. */
    long long t0 = now_ms();
    int pings = 0;
    while (now_ms() - t0 < 5000) {
        struct wsc_frame f;
        if (wsc_recv(&c, &f, 500) == 0) {
            cr_assert_eq(f.opcode, WS_OP_PING);
            wsc_send(&c, WS_OP_PONG, f.data, f.len);
            pings++;
            wsc_frame_free(&f);
        }
    }
    cr_assert_geq(pings, 2, "%d pings in 5 s with a 1 s interval", pings);
    /* Now stay silent: the next ping goes unanswered and the server closes. */
    t0 = now_ms();
    cr_assert(wsc_wait_eof(&c, 6000), "not closed after an unanswered ping");
    long long dt = now_ms() - t0;
    cr_assert(dt >= 1000 && dt <= 5500, "closed after %lld ms", dt);
    wsc_close(&c);
    free(herald_stop(&p));
}

Test(ws, origin_allow_list)
{
    struct herald_proc p;
    const char *args[] = {"--echo-path", "/echo", "--allowed-origin", "https://good.example", NULL};
    herald_start(&p, args);
    struct wsc c;
    char head[2048];
    cr_assert_eq(
        wsc_connect(&c, p.port, "/echo", "Origin: https://good.example\r\n", head, sizeof(head)),
        101);
    wsc_close(&c);
    cr_assert_eq(
        wsc_connect(&c, p.port, "/echo", "Origin: https://evil.example\r\n", head, sizeof(head)),
        403);
    wsc_close(&c);
    free(herald_stop(&p));
}

Test(ws, a_client_that_does_not_read_cannot_grow_server_memory)
{
    struct wsc c;
    ws_open(&c, NULL);
    /* Shrink our receive window so the echoes back up into the server. */
    uint8_t *data = malloc(1 << 20);
    memset(data, 'z', 1 << 20);
    struct timeval tv = {2, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t sent = 0;
    for (int i = 0; i < 200; i++) { /* up to 200 MiB, stopped by backpressure */
        if (wsc_send(&c, WS_OP_BINARY, data, 1 << 20) < 0)
            break;
        sent++;
    }
    cr_assert_lt(sent, 200, "the server kept reading although its echoes were not read");
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", srv.pid);
    FILE *f = fopen(path, "r");
    long rss_kb = 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            rss_kb = atol(line + 6);
    fclose(f);
    cr_log_info("sent %zu MiB before backpressure; server RSS %ld KiB", sent, rss_kb);
    if (server_rss_meaningful())
        cr_assert_lt(rss_kb, 400 * 1024, "server RSS %ld KiB", rss_kb);
    free(data);
    wsc_close(&c);
}

Test(ws, shutdown_says_going_away)
{
    struct herald_proc p;
    const char *args[] = {"--echo-path", "/echo", NULL};
    herald_start(&p, args);
    struct wsc c;
    char head[2048];
    cr_assert_eq(wsc_connect(&c, p.port, "/echo", NULL, head, sizeof(head)), 101);
    wsc_send(&c, WS_OP_TEXT, "hi", 2);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(&c, &f, 5000), 0);
    wsc_frame_free(&f);
    free(herald_stop(&p)); /* SIGTERM: exits 0 with this connection open */
    cr_assert_eq(wsc_expect_close(&c, 5000), 1001);
    wsc_close(&c);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

Test(ws, a_flood_of_tiny_frames_cannot_grow_server_memory)
{
    /* Each echo of an empty message counts 2 bytes but costs an allocation: the queue's bound
     * must count that, or a client that never reads holds megabytes per connection. */
    struct wsc c;
    ws_open(&c, NULL);
    long before = rss_kb(srv.pid);
    struct timeval tv = {3, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int tiny = 4096; /* the echoes back up into the server instead of our receive buffer */
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
    uint8_t frames[6 * 1024];
    size_t n = 0;
    for (int i = 0; i < 1024; i++) { /* 1024 masked empty binary frames in one write */
        frames[n++] = 0x82;
        frames[n++] = 0x80;
        memset(frames + n, 0, 4);
        n += 4;
    }
    int writes = 0;
    /* The kernel alone takes about 4 MiB of echoes (2 M frames) before the server queues any. */
    while (writes < 6000 && wsc_send_raw(&c, frames, n) == 0) /* at most 6 M frames */
        writes++;
    long after = rss_kb(srv.pid);
    cr_log_info("%d x 1024 empty frames accepted before backpressure; RSS %ld -> %ld KiB", writes,
                before, after);
    cr_assert_lt(writes, 6000, "the server kept reading");
    if (server_rss_meaningful())
        cr_assert_lt(after - before, 4 * 1024, "server RSS grew by %ld KiB", after - before);
    wsc_close(&c);
}

/* A client that stops reading while it still sends is pinged out like a silent one: held back by
 * its unread echoes, the server reads nothing more from it, also at its deadline. (The deadline
 * used to read anyway, taking input past the high-water mark and counting it as proof of life;
 * this test passes against that build too, which closed such a client later.) */
Test(ws, a_client_that_sends_but_never_reads_is_pinged_out)
{
    struct herald_proc p;
    struct wsc c;
    keepalive_echo(&p, &c);
    int rcvbuf = 65536;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct timeval tv = {1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* Small messages: every one read is answered, so the input is used up when the server stops
     * (a full input buffer would hold reads back anyway). */
    uint8_t data[1024] = {0};
    int sent = 0;
    while (sent < 65536 && wsc_send(&c, WS_OP_BINARY, data, sizeof(data)) == 0)
        sent++; /* until the server stops reading and the buffers between us are full */
    cr_assert_lt(sent, 65536, "no backpressure");
    /* Our unsent bytes stay offered to the server; it must close within about interval +
     * timeout (2 s) of its last read. */
    long long t0 = now_ms();
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    do {
        usleep(100000);
        tl = sizeof(ti);
        cr_assert_eq(getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
    } while (ti.tcpi_state == TCP_ESTABLISHED && now_ms() - t0 < 10000);
    cr_log_info("%d KiB sent, closed %lld ms after backpressure", sent, now_ms() - t0);
    cr_assert_neq(ti.tcpi_state, TCP_ESTABLISHED, "still open %lld ms after backpressure",
                  now_ms() - t0);
    wsc_close(&c);
    free(herald_stop(&p));
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* A client application that handles signals without SA_RESTART (timers, SIGCHLD) must not see a
 * wait for a message cut short by them: the C client's waits go on until their deadline. Before,
 * a signal ended the wait at once as if it had timed out (seen as a flaky test under ASan). */
Test(ws, a_client_wait_interrupted_by_signals_goes_on)
{
    struct wsc c;
    ws_open(&c, NULL);
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGALRM, &sa, &old), 0); /* no SA_RESTART */
    struct itimerval every_5ms = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
    cr_assert_eq(setitimer(ITIMER_REAL, &every_5ms, NULL), 0);
    struct wsc_frame f;
    long long t0 = now_ms();
    int rc = wsc_recv(&c, &f, 300); /* nothing comes: it must wait the whole 300 ms */
    long long waited = now_ms() - t0;
    cr_assert_neq(rc, 0);
    cr_assert_eq(wsc_send(&c, WS_OP_TEXT, "still here", 10), 0);
    expect_message(&c, WS_OP_TEXT, "still here", 10);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    cr_assert_geq(waited, 250, "the wait ended after %lld ms", waited);
    wsc_close(&c);
}
