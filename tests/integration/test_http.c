/* Integration: the HTTP/1.1 request cycle against the real binary. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct herald_proc srv;
static char *root;

static void setup(void)
{
    root = make_temp_dir();
    write_file(root, "index.html", "<h1>home</h1>\n", 0);
    write_file(root, "a.txt", "alpha\n", 0);
    write_file(root, "b.txt", "bravo\n", 0);
    const char *args[] = {"--threads", "2", "--root", root, NULL};
    herald_start(&srv, args);
}

static void teardown(void)
{
    free(herald_stop(&srv));
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
    free(root);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

Test(http, keep_alive_serves_several_requests_on_one_connection)
{
    struct client c;
    client_open(&c, srv.port);
    for (int i = 0; i < 3; i++) {
        send_str(c.fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, 0), 0);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "alpha\n");
        char v[64];
        cr_assert_eq(resp_header(&r, "Connection", v, sizeof(v)), -1, "no Connection header");
        cr_assert_eq(resp_header(&r, "Content-Type", v, sizeof(v)), 0);
        cr_assert_str_eq(v, "text/plain; charset=utf-8");
        cr_assert_eq(resp_header(&r, "Date", v, sizeof(v)), 0);
        cr_assert_eq(resp_header(&r, "Server", v, sizeof(v)), 0);
        resp_free(&r);
    }
    client_close(&c);
}

Test(http, root_serves_index_html)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "<h1>home</h1>\n");
    char v[64];
    resp_header(&r, "Content-Type", v, sizeof(v));
    cr_assert_str_eq(v, "text/html; charset=utf-8");
    resp_free(&r);
}

Test(http, connection_close_is_honoured_and_announced)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char buf[4096];
    ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 5000);
    cr_assert_gt(n, 0, "the server closes after the response");
    buf[n] = '\0';
    cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    cr_assert_not_null(strstr(buf, "\r\nConnection: close\r\n"));
    cr_assert_not_null(strstr(buf, "\r\n\r\nalpha\n"));
    close(fd);
}

Test(http, http10_closes_unless_keep_alive_requested)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "GET /a.txt HTTP/1.0\r\n\r\n");
    char buf[4096];
    ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 5000);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "Connection: close"));
    close(fd);

    struct client c;
    client_open(&c, srv.port);
    for (int i = 0; i < 2; i++) {
        send_str(c.fd, "GET /b.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, 0), 0);
        char v[64];
        cr_assert_eq(resp_header(&r, "Connection", v, sizeof(v)), 0);
        cr_assert_str_eq(v, "keep-alive");
        cr_assert_str_eq(r.body, "bravo\n");
        resp_free(&r);
    }
    client_close(&c);
}

Test(http, pipelined_requests_are_answered_in_order)
{
    struct client c;
    client_open(&c, srv.port);
    send_str(c.fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                   "HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *bodies[] = {"alpha\n", "bravo\n", "", NULL, "alpha\n"};
    int statuses[] = {200, 200, 200, 404, 200};
    for (int i = 0; i < 5; i++) {
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, i == 2), 0, "response %d", i);
        cr_assert_eq(r.status, statuses[i], "response %d", i);
        if (bodies[i])
            cr_assert_str_eq(r.body, bodies[i], "response %d", i);
        resp_free(&r);
    }
    client_close(&c);
}

Test(http, many_pipelined_requests_in_one_write)
{
    struct client c;
    client_open(&c, srv.port);
    const char *one = "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t n = 500, len = strlen(one);
    char *all = malloc(n * len);
    for (size_t i = 0; i < n; i++)
        memcpy(all + i * len, one, len);
    send_all(c.fd, all, n * len);
    free(all);
    for (size_t i = 0; i < n; i++) {
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, 0), 0, "response %zu", i);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "bravo\n");
        resp_free(&r);
    }
    client_close(&c);
}

Test(http, request_split_across_reads)
{
    struct client c;
    client_open(&c, srv.port);
    /* Headers arrive in a later read than the request line. */
    send_str(c.fd, "GET /a.txt HTTP/1.1\r\n");
    usleep(150000);
    send_str(c.fd, "Host: t\r\n");
    usleep(150000);
    send_str(c.fd, "\r\n");
    struct http_resp r;
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    /* One byte at a time. */
    const char *req = "GET /b.txt HTTP/1.1\r\nHost: t\r\nX-Long-Header: 0123456789abcdef\r\n\r\n";
    for (const char *p = req; *p; p++) {
        send_all(c.fd, p, 1);
        usleep(2000);
    }
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "bravo\n");
    resp_free(&r);
    client_close(&c);
}

Test(http, head_sends_headers_without_body)
{
    struct client c;
    client_open(&c, srv.port);
    send_str(c.fd, "HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    struct http_resp r;
    cr_assert_eq(read_response(&c, &r, 1), 0);
    cr_assert_eq(r.status, 200);
    char v[64];
    cr_assert_eq(resp_header(&r, "Content-Length", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "6");
    resp_free(&r);
    /* The next response starts right after the HEAD response's head: no body bytes between. */
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "bravo\n");
    resp_free(&r);
    client_close(&c);
}

Test(http, etag_and_last_modified_give_304)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    char etag[64], lm[64], req[512];
    cr_assert_eq(resp_header(&r, "ETag", etag, sizeof(etag)), 0);
    cr_assert_eq(resp_header(&r, "Last-Modified", lm, sizeof(lm)), 0);
    resp_free(&r);

    snprintf(req, sizeof(req), "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n", etag);
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 304);
    cr_assert_eq(r.body_len, 0);
    resp_free(&r);

    snprintf(req, sizeof(req),
             "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\", W/%s\r\n\r\n", etag);
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 304, "weak comparison matches a list member");
    resp_free(&r);

    cr_assert_eq(http_once(srv.port,
                           "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"nope\"\r\n\r\n", &r),
                 0);
    cr_assert_eq(r.status, 200);
    resp_free(&r);

    snprintf(req, sizeof(req), "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n",
             lm);
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 304);
    resp_free(&r);
}

/* RFC 9110 5.6.7: If-Modified-Since in the obsolete formats (rfc850-date, asctime-date) is
 * understood too; it used to be ignored (200). */
Test(http, if_modified_since_in_every_date_format)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    char lm[64], req[512];
    cr_assert_eq(resp_header(&r, "Last-Modified", lm, sizeof(lm)), 0);
    resp_free(&r);
    struct tm tm = {0};
    cr_assert_not_null(strptime(lm, "%a, %d %b %Y %H:%M:%S GMT", &tm), "%s", lm);
    char dates[2][64];
    char day_month[32]; /* rfc850-date; its two-digit year by hand (%y warns: -Wformat-y2k) */
    strftime(day_month, sizeof(day_month), "%A, %d-%b-", &tm);
    snprintf(dates[0], sizeof(dates[0]), "%s%02d %02d:%02d:%02d GMT", day_month, tm.tm_year % 100,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    strftime(dates[1], sizeof(dates[1]), "%a %b %e %H:%M:%S %Y", &tm); /* asctime-date */
    for (int i = 0; i < 2; i++) {
        snprintf(req, sizeof(req),
                 "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", dates[i]);
        cr_assert_eq(http_once(srv.port, req, &r), 0);
        cr_assert_eq(r.status, 304, "If-Modified-Since: %s", dates[i]);
        resp_free(&r);
    }
}

/* If-None-Match is a list that may come over several lines (RFC 9110 5.3); only the first used
 * to count, so a match on the second line got 200. */
Test(http, if_none_match_over_several_lines)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    char etag[64], req[512];
    cr_assert_eq(resp_header(&r, "ETag", etag, sizeof(etag)), 0);
    resp_free(&r);
    snprintf(req, sizeof(req),
             "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\", \"y\"\r\n"
             "If-None-Match: %s\r\n\r\n",
             etag);
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 304);
    resp_free(&r);
    /* Present but matching on no line: 200, and If-Modified-Since is not looked at (13.2.2). */
    cr_assert_eq(http_once(srv.port,
                           "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\"\r\n"
                           "If-None-Match: \"y\"\r\n"
                           "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n\r\n",
                           &r),
                 0);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

/* Copies tmpl to out with each "{E}" replaced by etag and each "{D}" by date. */
static void fill_template(const char *tmpl, const char *etag, const char *date, char *out,
                          size_t cap)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 1 < cap;) {
        const char *with = !strncmp(p, "{E}", 3) ? etag : !strncmp(p, "{D}", 3) ? date : NULL;
        if (with) {
            n += (size_t)snprintf(out + n, cap - n, "%s", with);
            p += 3;
        } else {
            out[n++] = *p++;
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* If-Match and If-Unmodified-Since on GET/HEAD: 412 when false (RFC 9110 13.1.1, 13.1.4),
 * evaluated before If-None-Match and If-Modified-Since (13.2.2). They used to be ignored. */
Test(http, if_match_and_if_unmodified_since_give_412_when_false)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    char etag[64], lm[64];
    cr_assert_eq(resp_header(&r, "ETag", etag, sizeof(etag)), 0);
    cr_assert_eq(resp_header(&r, "Last-Modified", lm, sizeof(lm)), 0);
    resp_free(&r);
    static const struct {
        const char *fields;
        int status;
    } cases[] = {
        {"If-Match: \"nope\"\r\n", 412},
        {"If-Match: {E}\r\n", 200},
        {"If-Match: *\r\n", 200},
        {"If-Match: W/{E}\r\n", 412}, /* strong comparison: a weak tag never matches */
        {"If-Match: \"nope\"\r\nIf-Match: {E}\r\n", 200}, /* a list over two lines */
        {"If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n", 412},
        {"If-Unmodified-Since: {D}\r\n", 200},
        {"If-Unmodified-Since: not a date\r\n", 200},
        /* If-Match present: If-Unmodified-Since is not looked at. */
        {"If-Match: {E}\r\nIf-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n", 200},
        /* 412 comes before 304. */
        {"If-Match: \"nope\"\r\nIf-None-Match: {E}\r\n", 412},
        {"If-Match: {E}\r\nIf-None-Match: {E}\r\n", 304},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char fields[512], req[1024];
        fill_template(cases[i].fields, etag, lm, fields, sizeof(fields));
        for (int head = 0; head < 2; head++) {
            snprintf(req, sizeof(req), "%s /b.txt HTTP/1.1\r\nHost: t\r\n%s\r\n",
                     head ? "HEAD" : "GET", fields);
            struct client c;
            client_open(&c, srv.port);
            send_str(c.fd, req);
            cr_assert_eq(read_response(&c, &r, head), 0);
            cr_assert_eq(r.status, cases[i].status, "%s%s", head ? "HEAD " : "", fields);
            static const char line412[] = "HTTP/1.1 412 Precondition Failed\r\n";
            if (r.status == 412)
                cr_assert_eq(strncmp(r.head, line412, sizeof(line412) - 1), 0, "%.40s", r.head);
            resp_free(&r);
            /* The connection goes on after a 412. */
            send_str(c.fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
            cr_assert_eq(read_response(&c, &r, 0), 0);
            cr_assert_eq(r.status, 200);
            resp_free(&r);
            client_close(&c);
        }
    }
}

struct status_case {
    const char *req;
    int status;
};

static const struct status_case status_cases[] = {
    {"GARBAGE\r\n\r\n", 400},
    {"GET /a.txt HTTP/1.1\r\n\r\n", 400}, /* HTTP/1.1 without Host */
    {"GET /a.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"GET /a.txt HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400},
    {"GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     400},
    {"GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400},
    {"GET /a.txt HTTP/2.0\r\nHost: t\r\n\r\n", 505},
    /* A later HTTP/1 minor version is served as 1.1 (RFC 9110 2.5); it used to be 505. */
    {"GET /a.txt HTTP/1.2\r\nHost: t\r\n\r\n", 200},
    {"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501},
    {"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n", 413},
    {"DELETE /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", 405},
    {"GET /a.txt HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n", 417},
    {"GET /a.txt HTTP/1.1\r\nHost: t\r\nExpect: tea, 100-continue\r\n\r\n", 417},
    {"GET /a.txt HTTP/1.1\r\nHost: t\r\nExpect:\r\n\r\n", 417},
    {"GET /nope.txt HTTP/1.1\r\nHost: t\r\n\r\n", 404},
    {"GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400},
    {"GET /a#frag HTTP/1.1\r\nHost: t\r\n\r\n", 400},
    /* What browsers leave unescaped in a query is taken (it used to be 400). */
    {"GET /a.txt?ids[]=1&q={}|^` HTTP/1.1\r\nHost: t\r\n\r\n", 200},
    {"GET /a.txt?q=<x> HTTP/1.1\r\nHost: t\r\n\r\n", 400},
    {"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
};

Test(http, each_error_gets_its_status)
{
    for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
        struct http_resp r;
        cr_assert_eq(http_once(srv.port, status_cases[i].req, &r), 0, "case %zu", i);
        cr_assert_eq(r.status, status_cases[i].status, "case %zu: got %d", i, r.status);
        if (r.status >= 400)
            cr_assert_eq(atoi(r.body), r.status, "the body names the status");
        resp_free(&r);
    }
}

Test(http, method_not_allowed_lists_allow_and_options_answers)
{
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "PUT /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 405);
    char v[64];
    cr_assert_eq(resp_header(&r, "Allow", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "GET, HEAD, OPTIONS");
    resp_free(&r);
    cr_assert_eq(http_once(srv.port, "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(resp_header(&r, "Allow", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "GET, HEAD, OPTIONS");
    /* RFC 9110 8.6: a 204 has no Content-Length. */
    cr_assert_neq(resp_header(&r, "Content-Length", v, sizeof(v)), 0, "Content-Length: %s", v);
    resp_free(&r);
}

Test(http, long_request_line_and_large_head)
{
    /* A 258-character path (the seed implementation overflowed a stack buffer here). */
    char req[20000];
    char path[300];
    memset(path, 'p', 258);
    path[258] = '\0';
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 404);
    resp_free(&r);

    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n", big);
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 414);
    resp_free(&r);

    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %s%s\r\n\r\n", big, big + 2000);
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 431);
    resp_free(&r);

    size_t n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: v\r\n", i);
    snprintf(req + n, sizeof(req) - n, "\r\n");
    cr_assert_eq(http_once(srv.port, req, &r), 0);
    cr_assert_eq(r.status, 431, "too many header fields");
    resp_free(&r);
}

Test(http, request_bodies_are_consumed_and_the_connection_continues)
{
    struct client c;
    client_open(&c, srv.port);
    send_str(c.fd, "POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"
                   "POST /a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
                   "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    int statuses[] = {405, 405, 200};
    for (int i = 0; i < 3; i++) {
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, 0), 0, "response %d", i);
        cr_assert_eq(r.status, statuses[i], "response %d: %d", i, r.status);
        resp_free(&r);
    }
    client_close(&c);
}

Test(http, expect_continue_gets_100_then_the_answer)
{
    struct client c;
    client_open(&c, srv.port);
    send_str(c.fd,
             "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    struct http_resp r;
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 100);
    resp_free(&r);
    send_str(c.fd, "body");
    cr_assert_eq(read_response(&c, &r, 0), 0);
    cr_assert_eq(r.status, 405);
    resp_free(&r);
    client_close(&c);
}

Test(http, bad_chunked_body_is_400_and_closes)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    char buf[2048];
    ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 5000);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "Connection: close"));
    close(fd);
}

/* A chunk larger than what --max-body leaves is refused at its size line: the server once read
 * 1 MiB of it first. No data follows the size line here, so only the early answer can come. */
Test(http, a_chunk_past_the_body_limit_is_413_at_its_size_line)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "10\r\n0123456789abcdef\r\n100000\r\n");
    char buf[2048];
    ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 3000);
    cr_assert_gt(n, 0, "no answer before the chunk's data");
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 413 ", 13) == 0, "%s", buf);
    close(fd);
}

Test(http, half_closed_client_still_gets_its_answers)
{
    int fd = tcp_connect(srv.port);
    send_str(fd, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    shutdown(fd, SHUT_WR);
    char buf[4096];
    ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 5000);
    cr_assert_gt(n, 0, "answered, then closed");
    buf[n] = '\0';
    char *second = strstr(buf + 1, "HTTP/1.1 200 OK");
    cr_assert_not_null(second, "both responses arrive: %s", buf);
    cr_assert_not_null(strstr(second, "bravo\n"));
    close(fd);
}

Test(http, error_response_survives_unread_request_data)
{
    /* A bad request followed by more bytes: the 400 must arrive, not a reset. */
    int fd = tcp_connect(srv.port);
    char junk[20000];
    memset(junk, 'j', sizeof(junk));
    send_str(fd, "GET /x HTTP/9.9\r\nHost: t\r\n\r\n");
    send_all(fd, junk, sizeof(junk));
    char buf[2048];
    ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 5000);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 505 ", 13) == 0, "%s", buf);
    close(fd);
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')') + 2; /* fields after the command name */
    long utime = 0, stime = 0;
    int field = 3;
    for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " "), field++) {
        if (field == 14)
            utime = atol(tok);
        if (field == 15) {
            stime = atol(tok);
            break;
        }
    }
    return utime + stime;
}

Test(http, a_stalled_pipelining_client_does_not_make_the_server_spin)
{
    /* A big response the client does not read, more requests behind it than the input window
     * holds, then a half-close: the server must wait quietly, not poll a full input buffer. */
    write_file(root, "big.bin", NULL, 8 * 1024 * 1024);
    int fd = tcp_connect(srv.port);
    int tiny = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
    send_str(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char more[100 * 1024];
    size_t n = 0;
    while (n + 40 < sizeof(more))
        n += (size_t)snprintf(more + n, sizeof(more) - n, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    send_all(fd, more, n);
    shutdown(fd, SHUT_WR);
    usleep(300000);
    long t0 = cpu_ticks(srv.pid);
    usleep(2000000);
    long used = cpu_ticks(srv.pid) - t0;
    cr_assert_lt(used, 20, "server used %ld ticks (1/100 s) in 2 s while the client stalled", used);
    close(fd);
}

Test(http, directory_redirect_is_not_an_open_redirect)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/evil.example", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    struct http_resp r;
    cr_assert_eq(http_once(srv.port, "GET //evil.example HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 301);
    char v[128];
    cr_assert_eq(resp_header(&r, "Location", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "/evil.example/");
    resp_free(&r);
}
