/* http_handler.c - static files, OPTIONS, 405 and error responses (see http_handler.h). */
#include "http_handler.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "path.h"
#include "static_cache.h"

#define ALLOW_METHODS "GET, HEAD, OPTIONS"
#define HEAD_CAP      640 /* room for the status line and every header this file writes */

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* The Date header changes once a second; each thread formats it once per second. date_at is the
 * time the text shows: a file's Last-Modified must not pass it (see serve_file). */
static __thread time_t date_at;
static __thread char date_text[32];

static const char *date_now(void)
{
    time_t now = time(NULL);
    if (now != date_at) {
        http_date(now, date_text);
        date_at = now;
    }
    return date_text;
}

struct obuf *http_response_start(int status, int keep_alive, size_t body_cap)
{
    struct obuf *b = obuf_new(HEAD_CAP + body_cap);
    if (!b)
        return NULL;
    obuf_puts(b, "HTTP/1.1 ");
    obuf_putu(b, (unsigned)status);
    obuf_puts(b, " ");
    obuf_puts(b, http_status_text(status));
    obuf_puts(b, "\r\nServer: herald/" HERALD_VERSION "\r\nDate: ");
    obuf_puts(b, date_now());
    static const char *const conn_lines[] = {"\r\nConnection: close\r\n", "\r\n",
                                             "\r\nConnection: keep-alive\r\n"};
    obuf_puts(b, conn_lines[keep_alive < 0 || keep_alive > 2 ? 0 : keep_alive]);
    return b;
}

static void put_header_u(struct obuf *b, const char *name, uint64_t v)
{
    obuf_puts(b, name);
    obuf_putu(b, v);
    obuf_puts(b, "\r\n");
}

int http_error(struct outq *out, int status, const char *reason, int keep_alive, int head_only)
{
    const char *text = http_status_text(status);
    size_t body_len = 3 + 1 + strlen(text) + (reason ? 2 + strlen(reason) : 0) + 1;
    struct obuf *b = http_response_start(status, keep_alive, body_len);
    if (!b)
        return -ENOMEM;
    obuf_puts(b, "Content-Type: text/plain; charset=utf-8\r\n");
    if (status == 405)
        obuf_puts(b, "Allow: " ALLOW_METHODS "\r\n");
    /* RFC 6455 4.4: the version the client should retry with; RFC 9110 15.5.22: a 426 names the
     * protocol in Upgrade, which is hop-by-hop, so also as a Connection option (7.8). */
    if (status == 426)
        obuf_puts(b, "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n");
    put_header_u(b, "Content-Length: ", body_len);
    obuf_puts(b, "\r\n");
    if (!head_only) {
        obuf_putu(b, (unsigned)status);
        obuf_puts(b, " ");
        obuf_puts(b, text);
        if (reason) {
            obuf_puts(b, ": ");
            obuf_puts(b, reason);
        }
        obuf_puts(b, "\n");
    }
    return outq_push_take(out, b);
}

int http_json_response(struct outq *out, int status, int keep_alive, const char *extra,
                       const char *body, size_t len, int head_only)
{
    size_t cap = (head_only ? 0 : len) + (extra ? strlen(extra) : 0);
    struct obuf *b = http_response_start(status, keep_alive, cap);
    if (!b)
        return -ENOMEM;
    obuf_puts(b, "Content-Type: application/json\r\nCache-Control: no-store\r\n");
    if (extra)
        obuf_puts(b, extra);
    put_header_u(b, "Content-Length: ", len);
    obuf_puts(b, "\r\n");
    if (!head_only)
        obuf_put(b, body, len);
    return outq_push_take(out, b);
}

int http_continue(struct outq *out)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct obuf *b = obuf_new(sizeof(line) - 1);
    if (!b)
        return -ENOMEM;
    obuf_put(b, line, sizeof(line) - 1);
    return outq_push_take(out, b);
}

static int handle_options(int keep_alive, struct outq *out)
{
    struct obuf *b = http_response_start(204, keep_alive, 0);
    if (!b)
        return -ENOMEM;
    /* No Content-Length: RFC 9110 8.6 forbids it in a 204, which has no content by definition. */
    obuf_puts(b, "Allow: " ALLOW_METHODS "\r\n\r\n");
    return outq_push_take(out, b);
}

/* 301 to the same path with a trailing '/', keeping the query. */
static int redirect_dir(const struct http_request *req, int keep_alive, struct outq *out)
{
    size_t need = req->path_len + 1 + (req->flags & HTTP_F_QUERY ? req->query_len + 1 : 0);
    struct obuf *b = http_response_start(301, keep_alive, need);
    if (!b)
        return -ENOMEM;
    /* Leading slashes collapse to one: "//evil.example" would otherwise send the browser to
     * another host (an open redirect). */
    const char *path = req->buf + req->path_off;
    size_t plen = req->path_len;
    while (plen > 1 && path[1] == '/') {
        path++;
        plen--;
    }
    obuf_puts(b, "Location: ");
    obuf_put(b, path, plen);
    obuf_puts(b, "/");
    if (req->flags & HTTP_F_QUERY) {
        obuf_puts(b, "?");
        obuf_put(b, req->buf + req->query_off, req->query_len);
    }
    obuf_puts(b, "\r\nContent-Length: 0\r\n\r\n");
    /* The Location value is part of the head, which HEAD_CAP does not cover: it was sized in. */
    return outq_push_take(out, b);
}

/* What an entity-tag list field says (RFC 9110 13.1.1, 13.1.2): absent, or whether one of its
 * tags matches `etag` (strongly or weakly). The list may come over several lines: all count. */
enum tag_cond { TAGS_ABSENT, TAGS_MATCH, TAGS_NO_MATCH };

static enum tag_cond tag_list(const struct http_request *req, const char *name, const char *etag,
                              int strong)
{
    size_t len;
    unsigned pos = 0;
    const char *v;
    enum tag_cond c = TAGS_ABSENT;
    while ((v = http_header_next(req, name, &pos, &len))) {
        if (static_etag_matches(v, len, etag, strong))
            return TAGS_MATCH;
        c = TAGS_NO_MATCH;
    }
    return c;
}

/* The date a field states, in *t: 1, or 0 when the field is absent or not a valid HTTP-date
 * (then ignored, RFC 9110 13.1.3, 13.1.4). */
static int header_date(const struct http_request *req, const char *name, time_t *t)
{
    size_t len;
    const char *v = http_header_get(req, name, &len);
    return v && http_date_parse(v, len, t) == 0;
}

/* 1 when a conditional header says the client's copy is current. If-None-Match wins over
 * If-Modified-Since (RFC 9110 13.2.2). `lm` is the Last-Modified time the response states (see
 * last_modified); NULL when it states none, and then If-Modified-Since has nothing to compare. */
static int not_modified(const struct http_request *req, const struct static_file *f,
                        const time_t *lm)
{
    enum tag_cond c = tag_list(req, "if-none-match", f->etag, 0);
    if (c != TAGS_ABSENT)
        return c == TAGS_MATCH;
    time_t t;
    return lm && header_date(req, "if-modified-since", &t) && *lm <= t;
}

/* 1 when If-Match, or else If-Unmodified-Since, is false: the client's copy is not the current
 * one (RFC 9110 13.1.1, 13.1.4, evaluated in the order of 13.2.2). If-Match compares strongly;
 * If-Unmodified-Since is ignored when the response states no Last-Modified (`lm` NULL). */
static int precondition_failed(const struct http_request *req, const struct static_file *f,
                               const time_t *lm)
{
    enum tag_cond c = tag_list(req, "if-match", f->etag, 1);
    if (c != TAGS_ABSENT)
        return c == TAGS_NO_MATCH;
    time_t t;
    return lm && header_date(req, "if-unmodified-since", &t) && *lm > t;
}

/* The file's Last-Modified, formatted into out (>= 32 bytes) with its time in *lm. Returns 1, or 0
 * when the response states none: an mtime whose year is outside 0..9999 is no date anyone can
 * use (RFC 9110 8.8.2.1: send one only when it "can be reasonably and consistently determined").
 * A time merely in the future (a file copied from a machine whose clock is ahead) MUST be
 * replaced by the response's Date (8.8.2.1); the Date is refreshed first, so the response
 * started next shows at least this time. */
static int last_modified(const struct static_file *f, char *out, time_t *lm)
{
    date_now();
    if (f->mtime.tv_sec > date_at && http_date(f->mtime.tv_sec, out) == 0)
        return 0;
    *lm = f->mtime.tv_sec < date_at ? f->mtime.tv_sec : date_at;
    return http_date(*lm, out) > 0;
}

/* Closes the file's descriptor, if it has one (a kept file has none: static_cache.h). */
static void file_done(struct static_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Answers with the file: its bytes from `body` when the cache kept it, else read from f->fd. */
static int serve_file(const struct http_request *req, struct static_file *f, const char *body,
                      int keep_alive, struct outq *out)
{
    int head_only = req->method == HTTP_HEAD;
    char date[32];
    time_t lm;
    int has_lm = last_modified(f, date, &lm);
    if (precondition_failed(req, f, has_lm ? &lm : NULL)) {
        file_done(f);
        return http_error(out, 412, NULL, keep_alive, head_only);
    }
    int notmod = not_modified(req, f, has_lm ? &lm : NULL);
    int inline_body = !head_only && !notmod && f->size <= HTTP_INLINE_FILE_MAX;
    struct obuf *b = http_response_start(notmod ? 304 : 200, keep_alive, inline_body ? f->size : 0);
    if (!b) {
        file_done(f);
        return -ENOMEM;
    }
    obuf_puts(b, "Content-Type: ");
    obuf_puts(b, f->content_type);
    if (has_lm) {
        obuf_puts(b, "\r\nLast-Modified: ");
        obuf_puts(b, date);
    }
    obuf_puts(b, "\r\nETag: ");
    obuf_puts(b, f->etag);
    obuf_puts(b, "\r\n");
    if (!notmod)
        put_header_u(b, "Content-Length: ", f->size);
    obuf_puts(b, "\r\n");
    if (inline_body) {
        if (body) {
            memcpy(b->data + b->len, body, f->size);
        } else {
            ssize_t r = pread(f->fd, b->data + b->len, f->size, 0);
            file_done(f);
            if (r != (ssize_t)f->size) {
                obuf_unref(b);
                return -EIO;
            }
        }
        b->len += (uint32_t)f->size;
        return outq_push_take(out, b);
    }
    int rc = outq_push_take(out, b);
    /* A kept file is at most HTTP_INLINE_FILE_MAX: only HEAD and 304 come here with one. */
    if (rc < 0 || head_only || notmod || f->fd < 0) {
        file_done(f);
        return rc;
    }
    return outq_push_file_take(out, f->fd, 0, f->size);
}

static int handle_get(const struct http_ctx *ctx, const struct http_request *req, int keep_alive,
                      struct outq *out)
{
    char rel[4096];
    int is_dir;
    int head_only = req->method == HTTP_HEAD;
    int rc = path_normalize(req->buf + req->path_off, req->path_len, rel, sizeof(rel), &is_dir);
    if (rc < 0)
        return http_error(out, -rc, rc == -404 ? NULL : "bad path", keep_alive, head_only);
    struct static_file f;
    const char *body;
    rc = static_cache_open(ctx->root, ctx->file_cache_ms, rel, is_dir, &f, &body);
    if (rc == STATIC_REDIRECT)
        return redirect_dir(req, keep_alive, out);
    if (rc == -EIO)
        return http_error(out, 500, "file read failed", keep_alive, head_only);
    if (rc < 0)
        return http_error(out, -rc, NULL, keep_alive, head_only);
    rc = serve_file(req, &f, body, keep_alive, out);
    /* A file that vanished or shrank between fstat and read is answered, not dropped. */
    return rc == -EIO ? http_error(out, 500, "file read failed", keep_alive, head_only) : rc;
}

int http_handle(const struct http_ctx *ctx, const struct http_request *req, int keep_alive,
                struct outq *out)
{
    switch (req->method) {
    case HTTP_GET:
    case HTTP_HEAD:
        return handle_get(ctx, req, keep_alive, out);
    case HTTP_OPTIONS:
        return handle_options(keep_alive, out);
    default:
        return http_error(out, 405, NULL, keep_alive, 0);
    }
}
