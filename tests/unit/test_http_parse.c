/*
 * test_http_parse.c - the request-head parser and the chunked decoder.
 *
 * Every input is fed whole, one byte at a time, split in two at every position and split at
 * pseudo-random points (fixed seed); each way must give the same result, the same consumed count
 * and the same parsed request. Each piece is copied so that it ends right before a PROT_NONE page
 * (the picohttpparser trick), so reading one byte past what the parser was given crashes.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"
#include "http_chunked.h"
#include "http_parse.h"

/* ---- request parsing helpers ---- */

struct outcome {
    int rc;
    size_t consumed;
};

static struct http_limits default_limits(void)
{
    struct http_limits lim;

    http_limits_default(&lim);
    return lim;
}

/* Feeds in[0..len) cut at cuts[] (sorted; 0 cuts = whole; len cuts meaning every byte). */
static struct outcome feed_cut(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                               const struct http_limits *lim, struct http_request *req)
{
    struct http_parser p;
    struct guard g = guard_new(len);
    struct outcome o = {HTTP_PARSE_AGAIN, 0};
    size_t start = 0, k;

    http_parser_init(&p, lim);
    for (k = 0; k <= ncuts && o.rc == HTTP_PARSE_AGAIN; k++) {
        size_t end = k < ncuts ? cuts[k] : len, used;

        o.rc = http_parse_feed(&p, req, guard_put(&g, in + start, end - start), end - start, &used);
        o.consumed += used;
        if (o.rc == HTTP_PARSE_AGAIN)
            cr_assert_eq(used, end - start);
        start = end;
    }
    guard_free(&g);
    return o;
}

static int span_eq(const struct http_request *r, uint32_t off, uint32_t len, const char *s)
{
    return s ? strlen(s) == len && memcmp(r->buf + off, s, len) == 0 : len == 0;
}

static void assert_same_span(const struct http_request *a, uint32_t aoff, uint32_t alen,
                             const struct http_request *b, uint32_t boff, uint32_t blen)
{
    cr_assert_eq(alen, blen);
    cr_assert(memcmp(a->buf + aoff, b->buf + boff, alen) == 0);
}

static void assert_same_request(const struct http_request *a, const struct http_request *b)
{
    unsigned i;

    cr_assert_eq(a->method, b->method);
    cr_assert_eq(a->form, b->form);
    cr_assert_eq(a->version_minor, b->version_minor);
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->content_length, b->content_length);
    assert_same_span(a, a->method_off, a->method_len, b, b->method_off, b->method_len);
    assert_same_span(a, a->target_off, a->target_len, b, b->target_off, b->target_len);
    assert_same_span(a, a->path_off, a->path_len, b, b->path_off, b->path_len);
    assert_same_span(a, a->query_off, a->query_len, b, b->query_off, b->query_len);
    assert_same_span(a, a->host_off, a->host_len, b, b->host_off, b->host_len);
    cr_assert_eq(a->nheaders, b->nheaders);
    for (i = 0; i < a->nheaders; i++) {
        const struct http_header *x = &a->headers[i], *y = &b->headers[i];

        assert_same_span(a, x->name_off, x->name_len, b, y->name_off, y->name_len);
        assert_same_span(a, x->value_off, x->value_len, b, y->value_off, y->value_len);
    }
}

static void check_split(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                        const struct http_limits *lim, const struct http_request *ref,
                        struct outcome want)
{
    struct http_request req;
    struct outcome o;

    http_request_init(&req);
    o = feed_cut(in, len, cuts, ncuts, lim, &req);
    cr_assert_eq(o.rc, want.rc, "split into %zu pieces: rc %d, want %d", ncuts + 1, o.rc, want.rc);
    cr_assert_eq(o.consumed, want.consumed, "split: consumed %zu, want %zu", o.consumed,
                 want.consumed);
    if (o.rc == HTTP_PARSE_DONE)
        assert_same_request(ref, &req);
    http_request_deinit(&req);
}

/* Parses in[0..len) into ref (whole), then every other way, all of which must agree. */
static struct outcome parse_ways(const char *in, size_t len, const struct http_limits *lim,
                                 struct http_request *ref)
{
    struct outcome want = feed_cut(in, len, NULL, 0, lim, ref);
    size_t *cuts = calloc(len + 8, sizeof(*cuts));
    size_t i, n;

    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    check_split(in, len, cuts, len ? len - 1 : 0, lim, ref, want); /* one byte at a time */
    for (i = 1; i < len; i++) {
        cuts[0] = i;
        check_split(in, len, cuts, 1, lim, ref, want);
    }
    for (i = 0; i < 20; i++) {
        n = random_cuts(len, cuts);
        check_split(in, len, cuts, n, lim, ref, want);
    }
    free(cuts);
    return want;
}

/* Parses a NUL-terminated request with default limits, checking every split. */
static int parse_str(const char *in, struct http_request *req)
{
    struct http_limits lim = default_limits();

    http_request_init(req);
    return parse_ways(in, strlen(in), &lim, req).rc;
}

static int status_of(const char *in)
{
    struct http_request req;
    int rc = parse_str(in, &req);

    http_request_deinit(&req);
    return rc;
}

static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;

    va_start(ap, f);
    cr_assert(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

/* ---- request-target table ---- */

struct target_case {
    const char *method;
    const char *target;
    int rc;
    enum http_target_form form;
    const char *path, *query, *host; /* NULL: empty span */
    int has_query;
};

#define OK   HTTP_PARSE_DONE
#define O    HTTP_FORM_ORIGIN
#define A    HTTP_FORM_ABSOLUTE
#define AU   HTTP_FORM_AUTHORITY
#define AST  HTTP_FORM_ASTERISK
#define HOST "h.test"

static const struct target_case targets[] = {
    /* origin-form */
    {"GET", "/", OK, O, "/", NULL, HOST, 0},
    {"GET", "/a/b/c", OK, O, "/a/b/c", NULL, HOST, 0},
    {"GET", "//double//slash", OK, O, "//double//slash", NULL, HOST, 0},
    {"GET", "/a%20b%2F%2f", OK, O, "/a%20b%2F%2f", NULL, HOST, 0},
    {"GET", "/~u/._-!$&'()*+,;=:@", OK, O, "/~u/._-!$&'()*+,;=:@", NULL, HOST, 0},
    {"GET", "/a?b=c", OK, O, "/a", "b=c", HOST, 1},
    {"GET", "/?", OK, O, "/", NULL, HOST, 1},
    {"GET", "/a?x/y?z", OK, O, "/a", "x/y?z", HOST, 1},
    {"GET", "/p?q=%41&r=:@!", OK, O, "/p", "q=%41&r=:@!", HOST, 1},
    {"GET", "/a#frag", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/#", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/a?b#c", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/%", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/%4", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/%zz", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/%4g", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/?%x1", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/a\"b", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/<>", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/a\\b", -400, O, NULL, NULL, NULL, 0},
    /* Not pchar, but browsers send them unescaped: taken, as nginx does. */
    {"GET", "/a^b", OK, O, "/a^b", NULL, HOST, 0},
    {"GET", "/a{b}", OK, O, "/a{b}", NULL, HOST, 0},
    {"GET", "/a|b[1]`", OK, O, "/a|b[1]`", NULL, HOST, 0},
    {"GET", "/p?ids[]=1&q={\"x\"}", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/p?ids[]=1&q={}|^`", OK, O, "/p", "ids[]=1&q={}|^`", HOST, 1},
    {"GET", "/\x7f", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/\x80", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/a\tb", -400, O, NULL, NULL, NULL, 0},
    {"GET", "/a b", -400, O, NULL, NULL, NULL, 0},
    {"GET", "", -400, O, NULL, NULL, NULL, 0},
    {"GET", "%41/", -400, O, NULL, NULL, NULL, 0},
    /* asterisk-form */
    {"OPTIONS", "*", OK, AST, NULL, NULL, HOST, 0},
    {"GET", "*", -400, AST, NULL, NULL, NULL, 0},
    {"OPTIONS", "**", -400, AST, NULL, NULL, NULL, 0},
    {"OPTIONS", "*/", -400, AST, NULL, NULL, NULL, 0},
    /* absolute-form */
    {"GET", "http://example.com", OK, A, "/", NULL, "example.com", 0},
    {"GET", "http://example.com/", OK, A, "/", NULL, "example.com", 0},
    {"GET", "http://example.com:8080/a?b", OK, A, "/a", "b", "example.com:8080", 1},
    {"GET", "http://example.com?q", OK, A, "/", "q", "example.com", 1},
    {"GET", "http://example.com:/", OK, A, "/", NULL, "example.com:", 0},
    {"GET", "http://user:pw@example.com/x", OK, A, "/x", NULL, "example.com", 0},
    {"GET", "http://u%41:12@h:1/", OK, A, "/", NULL, "h:1", 0},
    {"GET", "http://:x@h/", OK, A, "/", NULL, "h", 0},
    {"GET", "http://[::1]:80/", OK, A, "/", NULL, "[::1]:80", 0},
    {"GET", "http://[2001:db8::7]/", OK, A, "/", NULL, "[2001:db8::7]", 0},
    {"GET", "http://[::ffff:1.2.3.4]", OK, A, "/", NULL, "[::ffff:1.2.3.4]", 0},
    {"GET", "http://[v1.fe:x]/", OK, A, "/", NULL, "[v1.fe:x]", 0},
    {"GET", "https://a.b-c_d~e%41/p%20", OK, A, "/p%20", NULL, "a.b-c_d~e%41", 0},
    {"GET", "a+b-c.d://h/", OK, A, "/", NULL, "h", 0},
    {"GET", "x:/abs", OK, A, "/abs", NULL, HOST, 0},
    {"GET", "x:/?q", OK, A, "/", "q", HOST, 1},
    {"GET", "x:", OK, A, "/", NULL, HOST, 0},
    {"GET", "mailto:a@b", OK, A, "a@b", NULL, HOST, 0},
    {"GET", "urn:isbn:123?x", OK, A, "isbn:123", "x", HOST, 1},
    {"GET", "example.com:443", OK, A, "443", NULL, HOST, 0},
    {"GET", "1http://h/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "ht_tp://h/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http//h", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http:///p", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://:80/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://u@/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://[::1/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://[]/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://[::g]/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://[::1]x/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h:8a/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h:80:90/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://a@b@c/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h%zz/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h^/", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h/p%", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h/#f", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h#f", -400, A, NULL, NULL, NULL, 0},
    {"GET", "http://h/\xff", -400, A, NULL, NULL, NULL, 0},
    /* authority-form */
    {"CONNECT", "example.com:443", OK, AU, NULL, NULL, "example.com:443", 0},
    {"CONNECT", "[::1]:443", OK, AU, NULL, NULL, "[::1]:443", 0},
    {"CONNECT", "1.2.3.4:80", OK, AU, NULL, NULL, "1.2.3.4:80", 0},
    {"CONNECT", "example.com", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", "example.com:", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", ":443", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", "u@h:443", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", "h:443/", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", "h:44x", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", "/path", -400, AU, NULL, NULL, NULL, 0},
    {"CONNECT", "*", -400, AU, NULL, NULL, NULL, 0},
};

static void check_target(const struct target_case *tc)
{
    char *in = fmt("%s %s HTTP/1.1\r\nHost: " HOST "\r\n\r\n", tc->method, tc->target);
    struct http_request req;
    int rc = parse_str(in, &req);

    cr_assert_eq(rc, tc->rc, "%s %s: rc %d, want %d", tc->method, tc->target, rc, tc->rc);
    if (rc == OK) {
        cr_assert_eq(req.form, tc->form, "%s", tc->target);
        cr_assert(span_eq(&req, req.target_off, req.target_len, tc->target), "%s", tc->target);
        cr_assert(span_eq(&req, req.path_off, req.path_len, tc->path), "path of %s", tc->target);
        cr_assert(span_eq(&req, req.query_off, req.query_len, tc->query), "query of %s",
                  tc->target);
        cr_assert(span_eq(&req, req.host_off, req.host_len, tc->host), "host of %s", tc->target);
        cr_assert_eq(!!(req.flags & HTTP_F_QUERY), tc->has_query, "%s", tc->target);
        cr_assert_eq(req.method, tc->form == AU ? HTTP_CONNECT : req.method);
    }
    http_request_deinit(&req);
    free(in);
}

Test(http_parse, request_targets)
{
    size_t i, nvalid = 0;

    for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        check_target(&targets[i]);
        nvalid += targets[i].rc == OK;
    }
    cr_assert_geq(nvalid, 20);
    cr_assert_geq(i - nvalid, 20);
}

/* ---- request line table ---- */

struct line_case {
    const char *line;
    int rc;
};

static const struct line_case lines[] = {
    {"GET / HTTP/1.1", OK},
    {"HEAD / HTTP/1.1", OK},
    {"POST / HTTP/1.1", OK},
    {"PUT / HTTP/1.1", OK},
    {"DELETE / HTTP/1.1", OK},
    {"OPTIONS / HTTP/1.1", OK},
    {"TRACE / HTTP/1.1", OK},
    {"GET / HTTP/1.0", OK},
    {"get / HTTP/1.1", -501},
    {"FOO / HTTP/1.1", -501},
    {"GETS / HTTP/1.1", -501},
    {"PATCH / HTTP/1.1", -501},
    {"M-SEARCH! / HTTP/1.1", -501},
    {"G@T / HTTP/1.1", -400},
    {"GE(T / HTTP/1.1", -400},
    {"GET\t/ HTTP/1.1", -400},
    {" GET / HTTP/1.1", -400},
    {"GET  / HTTP/1.1", -400},
    {"GET /  HTTP/1.1", -400},
    {"GET / HTTP/1.1 ", -400},
    {"GET /", -400},
    {"GET / ", -400},
    {"GET", -400},
    {"GET / HTTP/2.0", -505},
    {"GET / HTTP/1.2", OK},
    {"GET / HTTP/1.9", OK},
    {"GET / HTTP/0.9", -505},
    {"GET / HTTP/9.9", -505},
    {"GET / http/1.1", -400},
    {"GET / HTTP/1", -400},
    {"GET / HTTP/1.", -400},
    {"GET / HTTP/1.10", -400},
    {"GET / HTTP/11", -400},
    {"GET / HTTP/1,1", -400},
    {"GET / HTTP/a.1", -400},
    {"GET / HTTPS/1.1", -400},
    {"GET / HTTP/1.1\r", -400},
};

Test(http_parse, request_lines)
{
    size_t i;

    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char *in = fmt("%s\r\nHost: h\r\n\r\n", lines[i].line);
        int rc = status_of(in);

        cr_assert_eq(rc, lines[i].rc, "\"%s\": rc %d, want %d", lines[i].line, rc, lines[i].rc);
        free(in);
    }
}

Test(http_parse, parses_simple_request)
{
    const char *in = "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nX-Empty:\r\nX-Pad: \t padded value \t \r\n\r\n";
    struct http_request req;
    size_t len;
    const char *v;

    cr_assert_eq(parse_str(in, &req), OK);
    cr_assert_eq(req.method, HTTP_GET);
    cr_assert_eq(req.version_minor, 1);
    cr_assert(span_eq(&req, req.method_off, req.method_len, "GET"));
    cr_assert(span_eq(&req, req.path_off, req.path_len, "/chat"));
    cr_assert(span_eq(&req, req.query_off, req.query_len, "x=1"));
    cr_assert(span_eq(&req, req.host_off, req.host_len, "example.com"));
    cr_assert_eq(req.flags, HTTP_F_HOST | HTTP_F_QUERY | HTTP_F_UPGRADE_WS | HTTP_F_CONN_UPGRADE);
    cr_assert_eq(req.nheaders, 5);
    cr_assert(span_eq(&req, req.headers[2].name_off, req.headers[2].name_len, "connection"));
    v = http_header_get(&req, "x-pad", &len);
    cr_assert(v && len == 12 && memcmp(v, "padded value", 12) == 0);
    v = http_header_get(&req, "x-empty", &len);
    cr_assert(v && len == 0);
    cr_assert_null(http_header_get(&req, "x-missing", &len));
    cr_assert_null(http_header_get(&req, "X-Pad", &len)); /* names are looked up lower-case */
    http_request_deinit(&req);
}

/* Empty lines before a request line are skipped and start no request; its first byte does. */
Test(http_parse, started_only_past_leading_empty_lines)
{
    struct http_limits lim = default_limits();
    struct http_parser p;
    struct http_request req;
    size_t used;
    http_parser_init(&p, &lim);
    http_request_init(&req);
    cr_assert_not(http_parse_started(&p));
    cr_assert_eq(http_parse_feed(&p, &req, "\r\n\n\r", 4, &used), HTTP_PARSE_AGAIN);
    cr_assert_not(http_parse_started(&p), "empty lines (and a CR) only");
    cr_assert_eq(http_parse_feed(&p, &req, "\nG", 2, &used), HTTP_PARSE_AGAIN);
    cr_assert(http_parse_started(&p));
    http_request_deinit(&req);
}

Test(http_parse, header_names_are_lowercased_and_first_wins)
{
    struct http_request req;
    size_t len;
    const char *v;

    cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHOST: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n", &req), OK);
    cr_assert(span_eq(&req, req.headers[0].name_off, req.headers[0].name_len, "host"));
    v = http_header_get(&req, "x-a", &len);
    cr_assert(v && len == 1 && v[0] == '1');
    http_request_deinit(&req);
}

Test(http_parse, header_next_visits_every_field_of_a_name_in_order)
{
    struct http_request req;
    size_t len;
    unsigned pos = 0;
    const char *v;

    cr_assert_eq(
        parse_str("GET / HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nx-a: 2, 3\r\nX-A:\r\n\r\n", &req), OK);
    v = http_header_next(&req, "x-a", &pos, &len);
    cr_assert(v && len == 1 && v[0] == '1');
    v = http_header_next(&req, "x-a", &pos, &len);
    cr_assert(v && len == 4 && memcmp(v, "2, 3", 4) == 0);
    v = http_header_next(&req, "x-a", &pos, &len);
    cr_assert(v && len == 0);
    cr_assert_null(http_header_next(&req, "x-a", &pos, &len));
    cr_assert_null(http_header_next(&req, "x-a", &pos, &len), "stays at the end");
    pos = 0;
    cr_assert_null(http_header_next(&req, "x-missing", &pos, &len));
    http_request_deinit(&req);
}

Test(http_parse, http10_needs_no_host)
{
    struct http_request req;

    cr_assert_eq(parse_str("GET / HTTP/1.0\r\n\r\n", &req), OK);
    cr_assert_eq(req.version_minor, 0);
    cr_assert_eq(req.host_len, 0);
    cr_assert_eq(req.nheaders, 0);
    http_request_deinit(&req);
}

/* RFC 9110 2.5: a later minor version of HTTP/1 is processed as the highest we implement, so it
 * gets HTTP/1.1's rules (Host required, persistent by default), not 505. */
Test(http_parse, later_http1_minor_version_is_read_as_1_1)
{
    struct http_request req;

    cr_assert_eq(parse_str("GET / HTTP/1.2\r\nHost: h\r\n\r\n", &req), OK);
    cr_assert_eq(req.version_minor, 1);
    http_request_deinit(&req);
    cr_assert_eq(status_of("GET / HTTP/1.9\r\n\r\n"), -400, "no Host: refused as in 1.1");
}

/* ---- header field syntax ---- */

Test(http_parse, rejects_space_before_colon)
{
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n"), -400);
}

Test(http_parse, rejects_obs_fold)
{
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), -400);
}

Test(http_parse, rejects_bad_header_bytes)
{
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    struct http_limits lim = default_limits();
    struct http_request req;

    http_request_init(&req);
    cr_assert_eq(parse_ways(nul, sizeof(nul) - 1, &lim, &req).rc, -400);
    http_request_deinit(&req);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\n:v\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n"), -400);
}

Test(http_parse, accepts_obs_text_and_tabs_in_values)
{
    struct http_request req;
    size_t len;
    const char *v;

    cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9\tb\r\n\r\n", &req), OK);
    v = http_header_get(&req, "x-a", &len);
    cr_assert(v && len == 7 && memcmp(v, "caf\xc3\xa9\tb", 7) == 0);
    http_request_deinit(&req);
}

Test(http_parse, accepts_lf_only_lines)
{
    struct http_request req;
    const char *in = "GET /x HTTP/1.1\nHost: h\nX-A: 1 \n\n";

    cr_assert_eq(parse_str(in, &req), OK);
    cr_assert_eq(req.nheaders, 2);
    cr_assert(span_eq(&req, req.headers[1].value_off, req.headers[1].value_len, "1"));
    http_request_deinit(&req);
    cr_assert_eq(status_of("GET / HTTP/1.1\nHost: h\r\n\n"), OK);
}

Test(http_parse, skips_leading_empty_lines)
{
    const char *in = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_limits lim = default_limits();
    struct http_request req;
    struct outcome o;

    http_request_init(&req);
    o = parse_ways(in, strlen(in), &lim, &req);
    cr_assert_eq(o.rc, OK);
    cr_assert_eq(o.consumed, strlen(in));
    cr_assert_eq(req.method, HTTP_GET);
    http_request_deinit(&req);
    cr_assert_eq(status_of("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
}

/* ---- limits ---- */

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t plen = strlen(prefix), slen = strlen(suffix);
    char *s = malloc(plen + n + slen + 1);

    memcpy(s, prefix, plen);
    memset(s + plen, c, n);
    memcpy(s + plen + n, suffix, slen + 1);
    return s;
}

static struct outcome parse_lim(const char *in, size_t len, const struct http_limits *lim)
{
    struct http_request req;
    struct outcome o;

    http_request_init(&req);
    o = parse_ways(in, len, lim, &req);
    http_request_deinit(&req);
    return o;
}

Test(http_parse, rejects_long_request_line_before_it_ends)
{
    struct http_limits lim = {.max_request_line = 64, .max_head = 1024, .max_headers = 10};
    char *in = repeat("GET /", 'a', 300, "");
    struct outcome o = parse_lim(in, strlen(in), &lim);

    cr_assert_eq(o.rc, -414);
    cr_assert_eq(o.consumed, 64); /* stopped at the first byte over the limit */
    free(in);
    in = repeat("GET /", 'a', 59, " HTTP/1.1\r\nHost: h\r\n\r\n"); /* exactly 64 + 10 */
    cr_assert_eq(parse_lim(in, strlen(in), &lim).rc, -414);
    free(in);
    in = repeat("GET /", 'a', 50, " HTTP/1.1\r\nHost: h\r\n\r\n"); /* 64 exactly */
    cr_assert_eq(parse_lim(in, strlen(in), &lim).rc, OK);
    free(in);
    in = repeat("", 'G', 100, " / HTTP/1.1\r\n\r\n"); /* long method */
    cr_assert_eq(parse_lim(in, strlen(in), &lim).rc, -414);
    free(in);
}

Test(http_parse, rejects_large_head)
{
    struct http_limits lim = {.max_request_line = 64, .max_head = 200, .max_headers = 10};
    char *in = repeat("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'v', 300, "\r\n\r\n");
    struct outcome o = parse_lim(in, strlen(in), &lim);

    cr_assert_eq(o.rc, -431);
    cr_assert_eq(o.consumed, 200);
    free(in);
    in = repeat("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'v', 100, "\r\n\r\n");
    cr_assert_eq(parse_lim(in, strlen(in), &lim).rc, OK);
    free(in);
}

Test(http_parse, endless_empty_lines_hit_head_limit)
{
    struct http_limits lim = {.max_request_line = 64, .max_head = 100, .max_headers = 10};
    char *in = repeat("", '\n', 1000, "");
    struct outcome o = parse_lim(in, strlen(in), &lim);

    cr_assert_eq(o.rc, -431);
    cr_assert_eq(o.consumed, 100);
    free(in);
}

Test(http_parse, rejects_too_many_headers)
{
    struct http_limits lim = {.max_request_line = 64, .max_head = 4096, .max_headers = 3};
    const char *ok = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *bad = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    cr_assert_eq(parse_lim(ok, strlen(ok), &lim).rc, OK);
    cr_assert_eq(parse_lim(bad, strlen(bad), &lim).rc, -431);
}

Test(http_parse, many_headers_grow_the_arrays)
{
    struct http_limits lim = {.max_request_line = 64, .max_head = 65536, .max_headers = 500};
    struct http_request req;
    char *in = NULL, *tmp;
    size_t len;
    FILE *f = open_memstream(&in, &len);
    int i;

    fputs("GET / HTTP/1.1\r\nHost: h\r\n", f);
    for (i = 0; i < 400; i++)
        fprintf(f, "X-Header-%d: value number %d\r\n", i, i);
    fputs("\r\n", f);
    fclose(f);
    http_request_init(&req);
    cr_assert_eq(feed_cut(in, len, NULL, 0, &lim, &req).rc, OK);
    cr_assert_eq(req.nheaders, 401);
    cr_assert_leq(req.buf_cap, lim.max_head + 16);
    tmp = fmt("value number %d", 399);
    cr_assert(span_eq(&req, req.headers[400].value_off, req.headers[400].value_len, tmp));
    free(tmp);
    http_request_deinit(&req);
    free(in);
}

/* ---- interpretation ---- */

Test(http_parse, host_rules)
{
    struct http_request req;

    cr_assert_eq(status_of("GET / HTTP/1.1\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), OK);
    cr_assert_eq(status_of("GET / HTTP/1.1\r\nHost: a%41.b:8080\r\n\r\n"), OK);
    cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost:\r\n\r\n", &req), OK); /* empty is allowed */
    cr_assert(req.flags & HTTP_F_HOST);
    cr_assert_eq(req.host_len, 0);
    http_request_deinit(&req);
    /* The absolute-form authority takes precedence over Host, which is still required. */
    cr_assert_eq(parse_str("GET http://t.test/ HTTP/1.1\r\nHost: other\r\n\r\n", &req), OK);
    cr_assert(span_eq(&req, req.host_off, req.host_len, "t.test"));
    http_request_deinit(&req);
    cr_assert_eq(status_of("GET http://t.test/ HTTP/1.1\r\n\r\n"), -400);
    cr_assert_eq(status_of("GET http://t.test/ HTTP/1.0\r\n\r\n"), OK);
}

Test(http_parse, content_length_rules)
{
    struct http_request req;

    cr_assert_eq(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n", &req), OK);
    cr_assert(req.flags & HTTP_F_CONTENT_LENGTH);
    cr_assert_eq(req.content_length, 42);
    http_request_deinit(&req);
    cr_assert_eq(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615"
                           "\r\ncontent-length: 18446744073709551615\r\n\r\n",
                           &req),
                 OK);
    cr_assert_eq(req.content_length, UINT64_MAX);
    http_request_deinit(&req);
    cr_assert_eq(parse_str("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &req), OK);
    cr_assert(req.flags & HTTP_F_CONTENT_LENGTH);
    http_request_deinit(&req);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616"
                           "\r\n\r\n"),
                 -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999"
                           "\r\n\r\n"),
                 -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                           "Content-Length: 2\r\n\r\n"),
                 -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"), -400);
}

Test(http_parse, transfer_encoding_rules)
{
    struct http_request req;

    cr_assert_eq(
        parse_str("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", &req), OK);
    cr_assert(req.flags & HTTP_F_CHUNKED);
    cr_assert(!(req.flags & HTTP_F_CONTENT_LENGTH));
    http_request_deinit(&req);
    cr_assert_eq(
        status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -501);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n"),
                 -501);
    cr_assert_eq(
        status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,chunked\r\n"
                           "\r\n"),
                 -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                           "Content-Length: 5\r\n\r\n"),
                 -400);
    cr_assert_eq(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n"),
                 OK);
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"),
                 -400);
    /* A second word after the coding is not a parameter: it used to pass as "chunked". */
    cr_assert_eq(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked foo\r\n\r\n"),
                 -400);
    cr_assert_eq(
        status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked \t;x=1\r\n\r\n"), OK);
}

Test(http_parse, connection_tokens_across_fields)
{
    struct http_request req;

    cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, foo\r\n"
                           "X: close\r\nconnection: , UPGRADE ,close\r\n\r\n",
                           &req),
                 OK);
    cr_assert_eq(req.flags & (HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE | HTTP_F_CONN_UPGRADE),
                 HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE | HTTP_F_CONN_UPGRADE);
    http_request_deinit(&req);
    cr_assert_eq(
        parse_str("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, upgrades\r\n\r\n", &req), OK);
    cr_assert_eq(req.flags & (HTTP_F_CONN_CLOSE | HTTP_F_CONN_UPGRADE), 0);
    http_request_deinit(&req);
}

Test(http_parse, upgrade_and_expect)
{
    struct http_request req;

    cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, WebSocket\r\n"
                           "Expect: 100-Continue\r\n\r\n",
                           &req),
                 OK);
    cr_assert(req.flags & HTTP_F_UPGRADE_WS);
    cr_assert(req.flags & HTTP_F_EXPECT_CONTINUE);
    http_request_deinit(&req);
    cr_assert_eq(parse_str("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket/13, websockets\r\n"
                           "Expect: 200-ok\r\n\r\n",
                           &req),
                 OK);
    cr_assert_eq(req.flags & (HTTP_F_UPGRADE_WS | HTTP_F_EXPECT_CONTINUE), 0);
    cr_assert(req.flags & HTTP_F_EXPECT_OTHER);
    http_request_deinit(&req);
    /* 100-continue next to another expectation still expects something unknown (417). */
    cr_assert_eq(parse_str("POST / HTTP/1.1\r\nHost: h\r\nExpect: foo, 100-continue\r\n\r\n", &req),
                 OK);
    cr_assert(req.flags & HTTP_F_EXPECT_CONTINUE);
    cr_assert(req.flags & HTTP_F_EXPECT_OTHER);
    http_request_deinit(&req);
    cr_assert_eq(parse_str("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue ,\r\n\r\n", &req),
                 OK);
    cr_assert_eq(req.flags & HTTP_F_EXPECT_OTHER, 0);
    http_request_deinit(&req);
}

Test(http_parse, form_method_rules)
{
    cr_assert_eq(status_of("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), OK);
    cr_assert_eq(status_of("POST * HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    cr_assert_eq(status_of("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), OK);
    cr_assert_eq(status_of("CONNECT http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    cr_assert_eq(status_of("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    cr_assert_eq(status_of("OPTIONS h:1 HTTP/1.1\r\nHost: h\r\n\r\n"), OK); /* scheme "h" */
}

/* ---- pipelining ---- */

Test(http_parse, pipelined_requests)
{
    const char *in = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                     "\r\nPOST /two?q HTTP/1.0\nContent-Length: 3\n\nabc";
    size_t first = strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"), used;
    struct http_limits lim = default_limits();
    struct http_request req;
    struct http_parser p;
    struct guard g = guard_new(strlen(in));
    const char *at = guard_put(&g, in, strlen(in));

    http_request_init(&req);
    http_parser_init(&p, &lim);
    cr_assert_eq(http_parse_feed(&p, &req, at, strlen(in), &used), OK);
    cr_assert_eq(used, first);
    cr_assert(span_eq(&req, req.path_off, req.path_len, "/one"));
    /* A finished parser stays finished until it is re-initialised. */
    cr_assert_eq(http_parse_feed(&p, &req, at + used, strlen(in) - used, &used), OK);
    cr_assert_eq(used, 0);
    http_request_reset(&req);
    http_parser_init(&p, &lim);
    cr_assert_eq(http_parse_feed(&p, &req, at + first, strlen(in) - first, &used), OK);
    cr_assert_eq(used, strlen(in) - first - 3);
    cr_assert_eq(req.method, HTTP_POST);
    cr_assert(span_eq(&req, req.path_off, req.path_len, "/two"));
    cr_assert(span_eq(&req, req.query_off, req.query_len, "q"));
    cr_assert_eq(req.content_length, 3);
    cr_assert_eq(req.nheaders, 1);
    http_request_deinit(&req);
    guard_free(&g);
}

Test(http_parse, error_is_sticky)
{
    struct http_limits lim = default_limits();
    struct http_request req;
    struct http_parser p;
    size_t used;

    http_request_init(&req);
    http_parser_init(&p, &lim);
    cr_assert_eq(http_parse_feed(&p, &req, "GET /# ", 7, &used), -400);
    cr_assert_eq(used, 5);
    cr_assert_not_null(p.reason);
    cr_assert_eq(http_parse_feed(&p, &req, "x", 1, &used), -400);
    cr_assert_eq(used, 0);
    http_request_deinit(&req);
}

/* ---- helpers ---- */

Test(http_parse, token_list_has)
{
    cr_assert(http_token_list_has("close", 5, "close"));
    cr_assert(http_token_list_has(" a ,\tClose\t, b", 14, "close"));
    cr_assert(http_token_list_has(",,x,,", 5, "x"));
    cr_assert_not(http_token_list_has("closed", 6, "close"));
    cr_assert_not(http_token_list_has("clos", 4, "close"));
    cr_assert_not(http_token_list_has("", 0, "close"));
    cr_assert_not(http_token_list_has(" , ,", 4, "close"));
    cr_assert_not(http_token_list_has("close", 4, "close")); /* length bounds the value */
    cr_assert(http_token_list_has("a, upgrade", 10, "Upgrade"));
}

Test(http_parse, method_names)
{
    cr_assert_str_eq(http_method_name(HTTP_GET), "GET");
    cr_assert_str_eq(http_method_name(HTTP_CONNECT), "CONNECT");
    cr_assert_str_eq(http_method_name(HTTP_M_UNKNOWN), "UNKNOWN");
    cr_assert_str_eq(http_method_name((enum http_method)99), "UNKNOWN");
}

Test(http_parse, reset_reuses_memory)
{
    struct http_request req;
    char *buf;

    cr_assert_eq(parse_str("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", &req), OK);
    buf = req.buf;
    http_request_reset(&req);
    cr_assert_eq(req.buf, buf);
    cr_assert_eq(req.buf_len, 0);
    cr_assert_eq(req.nheaders, 0);
    cr_assert_eq(req.flags, 0);
    http_request_deinit(&req);
    cr_assert_null(req.buf);
}

/* ---- chunked ---- */

struct chunk_out {
    int rc;
    size_t consumed;
    char *data;
    size_t data_len;
};

static struct chunk_out chunk_cut(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                                  size_t max_line)
{
    struct http_chunked c;
    struct guard g = guard_new(len);
    struct chunk_out o = {HTTP_PARSE_AGAIN, 0, malloc(len + 1), 0};
    size_t start = 0, k;

    http_chunked_init(&c, max_line);
    for (k = 0; k <= ncuts && o.rc == HTTP_PARSE_AGAIN; k++) {
        size_t end = k < ncuts ? cuts[k] : len, used, n;
        const char *at = guard_put(&g, in + start, end - start), *out;

        for (;;) {
            o.rc = http_chunked_feed(&c, at, end - start, &used, &out, &n);
            o.consumed += used;
            start += used;
            at += used;
            if (o.rc != HTTP_PARSE_DATA)
                break;
            cr_assert(n > 0 && out >= at - used && out + n <= at);
            memcpy(o.data + o.data_len, out, n);
            o.data_len += n;
            o.rc = HTTP_PARSE_AGAIN;
        }
        if (o.rc == HTTP_PARSE_AGAIN)
            cr_assert_eq(start, end);
    }
    guard_free(&g);
    return o;
}

static void chunk_same(struct chunk_out *a, const struct chunk_out *want)
{
    cr_assert_eq(a->rc, want->rc);
    cr_assert_eq(a->consumed, want->consumed);
    cr_assert_eq(a->data_len, want->data_len);
    cr_assert(memcmp(a->data, want->data, a->data_len) == 0);
    free(a->data);
}

/* Decodes every way; returns the whole-input result (caller frees data). */
static struct chunk_out chunk_ways(const char *in, size_t len, size_t max_line)
{
    struct chunk_out want = chunk_cut(in, len, NULL, 0, max_line), o;
    size_t *cuts = calloc(len + 8, sizeof(*cuts));
    size_t i;

    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    o = chunk_cut(in, len, cuts, len ? len - 1 : 0, max_line);
    chunk_same(&o, &want);
    for (i = 1; i < len; i++) {
        cuts[0] = i;
        o = chunk_cut(in, len, cuts, 1, max_line);
        chunk_same(&o, &want);
    }
    for (i = 0; i < 20; i++) {
        size_t n = random_cuts(len, cuts);

        o = chunk_cut(in, len, cuts, n, max_line);
        chunk_same(&o, &want);
    }
    free(cuts);
    return want;
}

static int chunk_status(const char *in)
{
    struct chunk_out o = chunk_ways(in, strlen(in), 0);

    free(o.data);
    return o.rc;
}

Test(http_chunked, decodes_with_extensions_and_trailers)
{
    const char *in = "5;name=value;q=\"quoted; \\\"str\"\r\nhello\r\n"
                     "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                     "0 ; last\r\nX-Trailer: t\r\nOther:\r\n\r\nNEXT";
    struct chunk_out o = chunk_ways(in, strlen(in), 0);

    cr_assert_eq(o.rc, HTTP_PARSE_DONE);
    cr_assert_eq(o.consumed, strlen(in) - 4);
    cr_assert_eq(o.data_len, 31);
    cr_assert(memcmp(o.data, "helloabcdefghijklmnopqrstuvwxyz", 31) == 0);
    free(o.data);
}

Test(http_chunked, lf_only_and_empty_body)
{
    cr_assert_eq(chunk_status("3\nabc\n0\n\n"), HTTP_PARSE_DONE);
    cr_assert_eq(chunk_status("0\r\n\r\n"), HTTP_PARSE_DONE);
    cr_assert_eq(chunk_status("000\r\n\r\n"), HTTP_PARSE_DONE);
    cr_assert_eq(chunk_status("3\r\nab"), HTTP_PARSE_AGAIN);
    cr_assert_eq(chunk_status("ffffffffffffffff\r\nab"), HTTP_PARSE_AGAIN);
}

Test(http_chunked, rejects_bad_sizes)
{
    cr_assert_eq(chunk_status("\r\n"), -400);
    cr_assert_eq(chunk_status("g\r\n"), -400);
    cr_assert_eq(chunk_status("-1\r\n"), -400);
    cr_assert_eq(chunk_status(" 1\r\n"), -400);
    cr_assert_eq(chunk_status("0x1\r\n"), -400);
    cr_assert_eq(chunk_status("1 2\r\n"), -400);
    cr_assert_eq(chunk_status("10000000000000000\r\n"), -400);
    cr_assert_eq(chunk_status(";ext\r\n"), -400);
    cr_assert_eq(chunk_status("1\r\r\n"), -400);
    cr_assert_eq(chunk_status("1;a\x01\r\n"), -400);
}

Test(http_chunked, rejects_missing_crlf_after_data)
{
    cr_assert_eq(chunk_status("3\r\nabcX\r\n0\r\n\r\n"), -400);
    cr_assert_eq(chunk_status("3\r\nabc\rX"), -400);
    cr_assert_eq(chunk_status("3\r\nabc0\r\n\r\n"), -400);
}

Test(http_chunked, rejects_bad_trailers)
{
    cr_assert_eq(chunk_status("0\r\nNoColon\r\n\r\n"), -400);
    cr_assert_eq(chunk_status("0\r\nX: 1\r\n folded\r\n\r\n"), -400);
    cr_assert_eq(chunk_status("0\r\nX : 1\r\n\r\n"), -400);
    cr_assert_eq(chunk_status("0\r\nX: \x7f\r\n\r\n"), -400);
    cr_assert_eq(chunk_status("0\r\n\rX"), -400);
}

Test(http_chunked, bounds_line_length)
{
    char *in = repeat("1;", 'e', 100, "\r\nx\r\n0\r\n\r\n");
    struct chunk_out o = chunk_ways(in, strlen(in), 50);

    cr_assert_eq(o.rc, -400);
    cr_assert_eq(o.consumed, 50);
    free(o.data);
    o = chunk_ways(in, strlen(in), 200);
    cr_assert_eq(o.rc, HTTP_PARSE_DONE);
    free(o.data);
    free(in);
    in = repeat("0\r\nX: ", 'v', 100, "\r\n\r\n");
    o = chunk_ways(in, strlen(in), 50);
    cr_assert_eq(o.rc, -400);
    free(o.data);
    free(in);
    /* The trailer section as a whole: four lines' worth (it used to take any number of lines). */
    size_t cap = 40 * 1000 + 8, len = 0;
    in = malloc(cap);
    len += (size_t)sprintf(in, "0\r\n");
    for (int i = 0; i < 1000; i++)
        len += (size_t)sprintf(in + len, "X-%04d: 1234567890123456789012345\r\n", i);
    strcpy(in + len, "\r\n");
    o = chunk_ways(in, strlen(in), 50);
    cr_assert_eq(o.rc, -400, "1,000 short trailer lines against a 200-byte section");
    cr_assert_eq(o.consumed, 3 + 200);
    free(o.data);
    o = chunk_ways(in, 3 + 4 * 36, 50);
    cr_assert_eq(o.rc, HTTP_PARSE_AGAIN, "four lines of 36 bytes fit");
    free(o.data);
    free(in);
}

Test(http_chunked, done_and_error_are_sticky)
{
    struct http_chunked c;
    const char *out;
    size_t used, n;

    http_chunked_init(&c, 0);
    cr_assert_eq(c.max_line, 4096);
    cr_assert_eq(http_chunked_feed(&c, "0\r\n\r\nX", 6, &used, &out, &n), HTTP_PARSE_DONE);
    cr_assert_eq(used, 5);
    cr_assert_eq(http_chunked_feed(&c, "X", 1, &used, &out, &n), HTTP_PARSE_DONE);
    cr_assert_eq(used, 0);
    http_chunked_init(&c, 0);
    cr_assert_eq(http_chunked_feed(&c, "z", 1, &used, &out, &n), -400);
    cr_assert_not_null(c.reason);
    cr_assert_eq(http_chunked_feed(&c, "0", 1, &used, &out, &n), -400);
}
