/*
 * http_handler.h - what the server answers to a complete HTTP request, and error responses.
 *
 * Builds responses into obufs and queues them on the connection's outq; performs no socket I/O.
 * GET and HEAD serve static files from the document root (index.html for directories,
 * conditional requests with ETag and Last-Modified: If-Match / If-Unmodified-Since give 412,
 * If-None-Match / If-Modified-Since give 304, in RFC 9110 13.2.2's order), OPTIONS
 * lists the allowed methods, every other known method gets 405 with Allow.
 *
 * Thread safety: called by the worker that owns the connection; the context is read-only.
 */
#ifndef HERALD_HTTP_HANDLER_H
#define HERALD_HTTP_HANDLER_H

#include <stddef.h>

#include "http_parse.h"
#include "outq.h"
#include "static_files.h"

/* Files up to this size are read into the response buffer so that head and body leave in one
 * writev and pipelined responses coalesce; larger ones go out with sendfile. */
#define HTTP_INLINE_FILE_MAX (32 * 1024)

struct http_api;

struct http_ctx {
    const struct static_root *root;
    const struct http_api *api; /* /api/... and /metrics; NULL: none */
    unsigned file_cache_ms;     /* small files are kept this long (static_cache.h); 0: never */
};

/* http_status_text - the reason phrase for a status ("Not Found"); "Unknown" when not listed. */
const char *http_status_text(int status);

/*
 * http_handle - answers `req` (whose body, if any, has been consumed), queueing the whole
 * response on `out`. `keep_alive` selects the Connection header: 0 the connection closes after
 * this response ("close"), 1 it persists by HTTP/1.1 default (no header), 2 an HTTP/1.0 client
 * asked for keep-alive ("keep-alive"). Returns 0, or -ENOMEM when the response could not be queued.
 */
int http_handle(const struct http_ctx *ctx, const struct http_request *req, int keep_alive,
                struct outq *out);

/*
 * http_error - queues an error response with a one-line text body "<status> <text>: <reason>"
 * (the reason, if given, is a static string chosen by Herald, never client data). `head_only`
 * omits the body (HEAD requests). Returns 0 or -ENOMEM.
 */
int http_error(struct outq *out, int status, const char *reason, int keep_alive, int head_only);

/* http_response_start - a response buffer with the status line, Server, Date and Connection
 * (keep_alive as for http_handle) written, room for HEAD_CAP more header bytes plus body_cap;
 * the caller adds its headers, the blank line and the body. NULL when out of memory. */
struct obuf *http_response_start(int status, int keep_alive, size_t body_cap);

/* http_json_response - queues a complete response with a JSON body; `extra` (may be NULL) holds
 * more header lines, each ending in CRLF; `head_only` sends the headers (Content-Length
 * included) without the body, for HEAD. Returns 0 or -ENOMEM. */
int http_json_response(struct outq *out, int status, int keep_alive, const char *extra,
                       const char *body, size_t len, int head_only);

/* http_continue - queues "100 Continue". Returns 0 or -ENOMEM. */
int http_continue(struct outq *out);

#endif
