/*
 * http_parse.h - a resumable HTTP/1.x request-head parser and a chunked body decoder.
 *
 * Pure code: no I/O, no threads, no global state. The parser is a byte-driven state machine, so it
 * accepts any split of the input (byte by byte, headers in a later read, several requests back to
 * back) and gives the same result: feed it each piece as it arrives, in order. It validates the
 * request line (method, the request-target against the RFC 3986 / RFC 9112 grammar for the four
 * target forms, the version) and the header fields, and interprets the fields the server needs
 * (Host, Connection, Upgrade, Content-Length, Transfer-Encoding).
 *
 * Only the head is parsed: on HTTP_PARSE_DONE the caller learns how many bytes the head took and
 * how the body (if any) is framed; the body stays in the caller's buffer (see http_chunked.h for
 * chunked bodies).
 *
 * Storage: the request keeps its own copies of the request-target and the header names and values
 * in one growable arena (req->buf), bounded by limits.max_head, because the input usually arrives
 * scattered over several buffers. Header names are stored lower-cased; values with surrounding
 * whitespace removed. No fixed-size line buffers anywhere.
 */
#ifndef HERALD_HTTP_PARSE_H
#define HERALD_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http_method {
    HTTP_M_UNKNOWN = 0, /* a syntactically valid token that is none of the eight */
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
    HTTP_OPTIONS,
    HTTP_TRACE,
    HTTP_CONNECT,
};

enum http_target_form {
    HTTP_FORM_ORIGIN,    /* "/path?query" */
    HTTP_FORM_ABSOLUTE,  /* "http://host:port/path?query" (any scheme, validated generically) */
    HTTP_FORM_AUTHORITY, /* "host:port", only with CONNECT */
    HTTP_FORM_ASTERISK,  /* "*", only with OPTIONS */
};

/* Request flags (req->flags). */
#define HTTP_F_CONN_CLOSE      0x0001u /* Connection lists "close" */
#define HTTP_F_CONN_KEEPALIVE  0x0002u /* Connection lists "keep-alive" */
#define HTTP_F_CONN_UPGRADE    0x0004u /* Connection lists "upgrade" */
#define HTTP_F_UPGRADE_WS      0x0008u /* Upgrade lists "websocket" (case-insensitive) */
#define HTTP_F_HOST            0x0010u /* a Host field was present */
#define HTTP_F_CONTENT_LENGTH  0x0020u /* the body is framed by Content-Length */
#define HTTP_F_CHUNKED         0x0040u /* the body is framed by Transfer-Encoding: chunked */
#define HTTP_F_QUERY           0x0080u /* the target had a '?' (query may still be empty) */
#define HTTP_F_EXPECT_CONTINUE 0x0100u /* Expect: 100-continue */
#define HTTP_F_EXPECT_OTHER    0x0200u /* Expect lists something else (answered 417) */

struct http_header {
    uint32_t name_off, name_len;   /* into req->buf; lower-cased */
    uint32_t value_off, value_len; /* into req->buf; leading/trailing SP/HTAB removed */
};

struct http_limits {
    size_t max_request_line; /* longest request line (method SP target SP version) -> 414 */
    size_t max_head;         /* longest head, request line and headers and blank line -> 431 */
    unsigned max_headers;    /* most header fields -> 431 */
};

/* Defaults: 8 KiB request line, 16 KiB head, 100 headers. */
void http_limits_default(struct http_limits *lim);

struct http_request {
    enum http_method method;
    enum http_target_form form;
    int version_minor;       /* 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x) */
    unsigned flags;          /* HTTP_F_* */
    uint64_t content_length; /* when HTTP_F_CONTENT_LENGTH */

    /* Spans into buf. For origin and absolute form, path is the absolute path ("/" when an
     * absolute-form target has an empty path; an absolute-form target without an authority may
     * also have a path-rootless, e.g. "isbn:123" of "urn:isbn:123", kept as written) and query the
     * part after '?' (no '?', no fragment: a '#' is invalid in a request-target). For authority
     * form, host is the target. For absolute form with an authority, host is that authority's
     * host[:port] (without any userinfo); otherwise the Host header's value. All raw, not
     * percent-decoded. */
    uint32_t target_off, target_len;
    uint32_t method_off, method_len;
    uint32_t path_off, path_len;
    uint32_t query_off, query_len;
    uint32_t host_off, host_len;

    struct http_header *headers; /* nheaders entries, in arrival order */
    unsigned nheaders, headers_cap;

    char *buf; /* arena owned by the request */
    size_t buf_len, buf_cap;
};

/* http_request_init - an empty request owning no memory. */
void http_request_init(struct http_request *req);
/* http_request_reset - empties the request for the next one, keeping its memory for reuse. */
void http_request_reset(struct http_request *req);
/* http_request_deinit - frees the request's memory. */
void http_request_deinit(struct http_request *req);

/* http_header_get - the value of the first header named `name` (lower-case, NUL-terminated),
 * with its length in *len; NULL when absent. Points into req->buf, valid until reset. */
const char *http_header_get(const struct http_request *req, const char *name, size_t *len);

/* http_header_next - every field named `name` (lower-case, NUL-terminated) in turn, for a list
 * field that may be split over several lines (RFC 9110 5.3: they form one comma-separated list).
 * Start with *pos = 0; returns the next such field's value (length in *len) and moves *pos past
 * it, or NULL when there is no other. Points into req->buf, valid until reset. */
const char *http_header_next(const struct http_request *req, const char *name, unsigned *pos,
                             size_t *len);

/* http_token_list_has - 1 if the comma-separated list value[0..len) contains `token`
 * (case-insensitive, surrounding whitespace ignored, empty elements skipped), else 0. */
int http_token_list_has(const char *value, size_t len, const char *token);

/* http_method_name - "GET" etc.; "UNKNOWN" for HTTP_M_UNKNOWN. */
const char *http_method_name(enum http_method m);

/* Return codes of http_parse_feed and http_chunked_feed. Errors are negative HTTP statuses. */
#define HTTP_PARSE_AGAIN 0 /* all input consumed; the head is not complete yet */
#define HTTP_PARSE_DONE  1 /* the head (or the chunked body) is complete */
#define HTTP_PARSE_DATA  2 /* (chunked only) a span of body data is returned */

struct http_parser {
    /* Private state; initialise with http_parser_init. */
    int state;
    int sub; /* request-target sub-state, or position inside "HTTP/x.y" */
    size_t line_len;
    size_t head_len;
    struct http_limits lim;
    const char *reason;  /* static text describing the last error */
    uint32_t cur_header; /* index of the field being parsed */
    uint32_t mark;       /* end of the header value without trailing whitespace */
    int cr;              /* a CR was seen; the next byte must be LF */
    int ret;             /* target sub-state to resume after a %XX escape */
    unsigned tflags;     /* private TF_* flags of the request-target parse */
    int version;         /* major * 10 + minor while the version is read */
    int error;           /* sticky result once an error was returned */
    uint32_t host_start; /* offset of the host in an absolute-form or authority-form target */
};

/* http_parser_init - ready to parse the first byte of a request with these limits (copied). */
void http_parser_init(struct http_parser *p, const struct http_limits *lim);

/*
 * http_parse_feed - parses `len` bytes of input into `req`.
 *
 * Sets *consumed to the bytes used and returns:
 *   HTTP_PARSE_AGAIN  every byte was used; call again with more input.
 *   HTTP_PARSE_DONE   the head ended inside this input; *consumed counts up to and including
 *                     its final LF. req is complete. Reset parser and request before the next.
 *   -400 malformed request line, target, header or framing (p->reason says which)
 *   -414 request line (or target) longer than max_request_line
 *   -431 head longer than max_head, or more than max_headers fields
 *   -501 method token that is none of the eight, or a Transfer-Encoding other than chunked
 *   -505 an HTTP version other than 1.x (1.2 to 1.9 are read as 1.1)
 *   -500 out of memory
 * After an error the parser must be re-initialised. Leading empty lines before a request line
 * are skipped (RFC 9112 2.2). Lines may end in CRLF or a bare LF; a CR not followed by LF is 400.
 *
 * Checks done when the head completes: HTTP/1.1 without Host -> 400; more than one Host -> 400;
 * Content-Length not a plain decimal, or several differing ones -> 400; both Content-Length and
 * Transfer-Encoding -> 400; Transfer-Encoding in HTTP/1.0 -> 400; Transfer-Encoding whose last
 * coding is not chunked -> 400 and any coding other than chunked -> 501; asterisk form with a
 * method other than OPTIONS, authority form with a method other than CONNECT, CONNECT with any
 * other form -> 400.
 */
int http_parse_feed(struct http_parser *p, struct http_request *req, const char *data, size_t len,
                    size_t *consumed);

/* http_parse_started - whether the parser has seen a byte of a request line, not only the empty
 * lines it skips before one: a connection that sent only those has no request in progress. */
bool http_parse_started(const struct http_parser *p);

#endif
