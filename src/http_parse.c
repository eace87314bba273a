/*
 * http_parse.c - the resumable HTTP/1.x request-head parser (the chunked body decoder is in
 * http_chunked.c).
 *
 * The parser is a byte-driven state machines in the manner of nginx's ngx_http_parse.c: all
 * progress lives in the parser struct, so a request split at any byte gives the same result as the
 * request in one piece. Each byte goes through step(), which enforces the size limits first (so
 * nothing is ever buffered beyond them) and then hands the byte to the function of the current
 * state: request line (method, target, version), header fields, or end of head.
 *
 * A CR at the end of a line only sets p->cr; the following byte must be LF and is then handled by
 * the same state as a bare LF, so every state treats "\r\n" and "\n" alike.
 */
#include "http_parse.h"
#include "http_parse_internal.h"

#include <stdlib.h>
#include <string.h>

/* clang-format off */
const unsigned char http__cclass[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* . . . . . . . . */
    0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* . HT. . . . . . */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* . . . . . . . . */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* . . . . . . . . */
    0x20, 0x27, 0x20, 0x21, 0x27, 0x21, 0x27, 0x27, /* SP! " # $ % & ' */
    0x26, 0x26, 0x27, 0x37, 0x26, 0x37, 0x37, 0x20, /* ( ) * + , - . / */
    0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, /* 0 1 2 3 4 5 6 7 */
    0x7f, 0x7f, 0x22, 0x26, 0x20, 0x26, 0x20, 0x20, /* 8 9 : ; < = > ? */
    0x22, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xb7, /* @ A B C D E F G */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* H I J K L M N O */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* P Q R S T U V W */
    0xb7, 0xb7, 0xb7, 0x20, 0x20, 0x20, 0x21, 0x27, /* X Y Z [ \ ] ^ _ */
    0x21, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xb7, /* ` a b c d e f g */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* h i j k l m n o */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* p q r s t u v w */
    0xb7, 0xb7, 0xb7, 0x20, 0x21, 0x20, 0x27, 0x00, /* x y z { | } ~ DEL */
    [0x80 ... 0xff] = K_VALUE, /* obs-text */
};
/* clang-format on */

static char lower(unsigned char c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

/* Parser states; S_START to S_VERSION make up the request line. */
enum {
    S_START, /* before the request line; empty lines are skipped */
    S_METHOD,
    S_TARGET, /* p->sub holds the T_* sub-state */
    S_VERSION,
    S_HDR_START, /* start of a header line, or the empty line ending the head */
    S_HDR_NAME,
    S_HDR_OWS, /* after ':', before the value */
    S_HDR_VALUE,
    S_DONE,
    S_ERROR,
};

/* Request-target sub-states. */
enum {
    T_FIRST,
    T_ASTERISK,
    T_PATH,
    T_QUERY,
    T_PCT1, /* after '%': two hex digits follow, then back to p->ret */
    T_PCT2,
    T_SCHEME,
    T_HIER,         /* after "scheme:" */
    T_HIER_SLASH,   /* after "scheme:/" */
    T_AUTH,         /* first byte of the host */
    T_REGNAME,      /* reg-name, or userinfo until ':' or '@' shows which */
    T_USER_OR_PORT, /* after "x:" and digits, before any '@': a port or a userinfo */
    T_USERINFO,
    T_IPLIT_FIRST, /* after '[' */
    T_IPLIT,
    T_IPVFUTURE,
    T_IPLIT_END, /* after ']' */
    T_PORT,
};

/* Private flags of the target parse (p->tflags). */
#define TF_CONNECT   0x01u /* authority-form: no userinfo, a port is required */
#define TF_AT        0x02u /* a userinfo '@' was seen */
#define TF_HOST      0x04u /* the host is not empty */
#define TF_PORTDIGIT 0x08u /* the port has a digit */
#define TF_PATH      0x10u /* a path was seen (else absolute-form gets "/") */
#define TF_QUERY     0x20u /* a '?' was seen */
#define TF_AUTHORITY 0x40u /* the target had an authority: it overrides the Host field */

#define ARENA_MIN   256u
#define HEADERS_MIN 8u

static int fail(struct http_parser *p, int code, const char *reason)
{
    p->state = S_ERROR;
    p->error = code;
    p->reason = reason;
    return code;
}

void http_limits_default(struct http_limits *lim)
{
    lim->max_request_line = 8192;
    lim->max_head = 16384;
    lim->max_headers = 100;
}

void http_request_init(struct http_request *req)
{
    memset(req, 0, sizeof(*req));
}

void http_request_reset(struct http_request *req)
{
    struct http_header *headers = req->headers;
    unsigned headers_cap = req->headers_cap;
    char *buf = req->buf;
    size_t buf_cap = req->buf_cap;

    memset(req, 0, sizeof(*req));
    req->headers = headers;
    req->headers_cap = headers_cap;
    req->buf = buf;
    req->buf_cap = buf_cap;
}

void http_request_deinit(struct http_request *req)
{
    free(req->headers);
    free(req->buf);
    memset(req, 0, sizeof(*req));
}

void http_parser_init(struct http_parser *p, const struct http_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = *lim;
    /* Spans are 32-bit offsets; the arena holds at most max_head bytes plus the "/" of an
     * absolute-form target without a path, so keep max_head well inside that range. */
    if (p->lim.max_head > UINT32_MAX / 2)
        p->lim.max_head = UINT32_MAX / 2;
    p->state = S_START;
}

/* Everything stored is a byte of the head, except one "/", so the arena never needs more than
 * max_head + 1 bytes: growth is capped just above that. */
static int arena_push(struct http_parser *p, struct http_request *req, char c)
{
    if (req->buf_len == req->buf_cap) {
        size_t limit = p->lim.max_head + 16;
        size_t cap = req->buf_cap ? req->buf_cap * 2 : ARENA_MIN;
        char *nbuf;

        if (cap > limit)
            cap = limit;
        if (cap <= req->buf_cap)
            return fail(p, -500, "request arena limit");
        nbuf = realloc(req->buf, cap);
        if (!nbuf)
            return fail(p, -500, "out of memory");
        req->buf = nbuf;
        req->buf_cap = cap;
    }
    req->buf[req->buf_len++] = c;
    return 0;
}

static int header_add(struct http_parser *p, struct http_request *req)
{
    struct http_header *h;

    if (req->nheaders >= p->lim.max_headers)
        return fail(p, -431, "too many header fields");
    if (req->nheaders == req->headers_cap) {
        unsigned cap = req->headers_cap ? req->headers_cap * 2 : HEADERS_MIN;
        struct http_header *nh;

        if (cap > p->lim.max_headers)
            cap = p->lim.max_headers;
        nh = realloc(req->headers, cap * sizeof(*nh));
        if (!nh)
            return fail(p, -500, "out of memory");
        req->headers = nh;
        req->headers_cap = cap;
    }
    p->cur_header = req->nheaders++;
    h = &req->headers[p->cur_header];
    memset(h, 0, sizeof(*h));
    h->name_off = (uint32_t)req->buf_len;
    return 0;
}

/* ---- request line ---- */

static const char *const method_names[] = {
    "UNKNOWN", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT",
};

const char *http_method_name(enum http_method m)
{
    if ((unsigned)m >= sizeof(method_names) / sizeof(method_names[0]))
        return method_names[0];
    return method_names[m];
}

static int method_end(struct http_parser *p, struct http_request *req)
{
    const char *m = req->buf + req->method_off;
    size_t len = req->buf_len - req->method_off;
    unsigned i;

    req->method_len = (uint32_t)len;
    for (i = HTTP_GET; i <= HTTP_CONNECT; i++) {
        if (strlen(method_names[i]) == len && memcmp(method_names[i], m, len) == 0) {
            req->method = (enum http_method)i;
            break;
        }
    }
    if (req->method == HTTP_M_UNKNOWN)
        return fail(p, -501, "method not implemented");
    req->target_off = (uint32_t)req->buf_len;
    p->state = S_TARGET;
    p->sub = T_FIRST;
    return 0;
}

/* The target ended at a SP: close the spans that are still open. */
static int target_end(struct http_parser *p, struct http_request *req)
{
    req->target_len = (uint32_t)(req->buf_len - req->target_off);
    if (p->tflags & TF_QUERY) {
        req->flags |= HTTP_F_QUERY;
        req->query_len = (uint32_t)(req->buf_len - req->query_off);
    } else if (p->tflags & TF_PATH) {
        req->path_len = (uint32_t)(req->buf_len - req->path_off);
    }
    if (req->form == HTTP_FORM_ABSOLUTE && !(p->tflags & TF_PATH)) {
        /* An absolute-form target without a path means "/" (RFC 9112 3.2.2). */
        req->path_off = (uint32_t)req->buf_len;
        req->path_len = 1;
        if (arena_push(p, req, '/') < 0)
            return p->error;
    }
    p->state = S_VERSION;
    p->sub = 0;
    return 0;
}

static void query_start(struct http_parser *p, struct http_request *req, size_t pos)
{
    p->tflags |= TF_QUERY;
    req->query_off = (uint32_t)(pos + 1);
    p->sub = T_QUERY;
}

/* Outside RFC 3986's pchar, but sent unescaped by browsers (the WHATWG URL standard leaves them
 * out of its percent-encode sets: "?ids[]=1", "/a|b", "?q={}") and accepted by nginx. They
 * delimit nothing in a request line, so taking them costs no safety. */
static int browser_char(unsigned char c)
{
    return c && memchr("[]{}|^`", c, 7) != NULL;
}

static int target_path(struct http_parser *p, struct http_request *req, unsigned char c, size_t pos)
{
    int in_query = p->sub == T_QUERY;

    if (http__is(c, K_PCHAR) || c == '/' || (in_query && c == '?') || browser_char(c))
        return 0;
    if (c == '%') {
        p->ret = p->sub;
        p->sub = T_PCT1;
        return 0;
    }
    if (c == '?') {
        req->path_len = (uint32_t)(pos - req->path_off);
        query_start(p, req, pos);
        return 0;
    }
    if (c == ' ')
        return target_end(p, req);
    return fail(p, -400, in_query ? "invalid character in query" : "invalid character in path");
}

/* After "scheme:": "//" authority, path-absolute, path-rootless or path-empty. */
static int target_hier(struct http_parser *p, struct http_request *req, unsigned char c, size_t pos)
{
    if (p->sub == T_SCHEME) {
        if (c == ':')
            p->sub = T_HIER;
        else if (!http__is(c, K_SCHEME))
            return fail(p, -400, "invalid scheme");
        return 0;
    }
    if (p->sub == T_HIER_SLASH) {
        if (c == '/') {
            p->sub = T_AUTH;
            p->host_start = (uint32_t)(pos + 1);
            return 0;
        }
        /* path-absolute: the path began at the previous '/'. */
        p->tflags |= TF_PATH;
        req->path_off = (uint32_t)(pos - 1);
        p->sub = T_PATH;
        return target_path(p, req, c, pos);
    }
    if (c == '/') {
        p->sub = T_HIER_SLASH;
        return 0;
    }
    if (c == '?') {
        query_start(p, req, pos);
        return 0;
    }
    if (c == ' ')
        return target_end(p, req);
    if (!http__is(c, K_PCHAR) && c != '%')
        return fail(p, -400, "invalid character in path");
    p->tflags |= TF_PATH; /* path-rootless, kept as written */
    req->path_off = (uint32_t)pos;
    p->sub = T_PATH;
    return target_path(p, req, c, pos);
}

/* The authority ended at c (SP, or '/' or '?' in absolute form). */
static int authority_end(struct http_parser *p, struct http_request *req, unsigned char c,
                         size_t pos)
{
    int connect = (p->tflags & TF_CONNECT) != 0;

    if (c != ' ' && (connect || (c != '/' && c != '?')))
        return fail(p, -400, "invalid character in authority");
    if (!(p->tflags & TF_HOST))
        return fail(p, -400, "empty host");
    if (connect && !(p->tflags & TF_PORTDIGIT))
        return fail(p, -400, "authority-form without a port");
    /* pos is the offset of c, stored or not, so the host ends there either way. */
    p->tflags |= TF_AUTHORITY;
    req->host_off = p->host_start;
    req->host_len = (uint32_t)(pos - p->host_start);
    if (c == ' ')
        return target_end(p, req);
    if (c == '?') {
        query_start(p, req, pos);
        return 0;
    }
    p->tflags |= TF_PATH;
    req->path_off = (uint32_t)pos;
    p->sub = T_PATH;
    return 0;
}

static int authority_at(struct http_parser *p, size_t pos)
{
    if (p->tflags & (TF_AT | TF_CONNECT))
        return fail(p, -400, "unexpected '@' in authority");
    p->tflags = (p->tflags | TF_AT) & ~(TF_HOST | TF_PORTDIGIT);
    p->host_start = (uint32_t)(pos + 1);
    p->sub = T_AUTH;
    return 0;
}

static int ip_literal(struct http_parser *p, unsigned char c)
{
    int ok;

    if (p->sub == T_IPLIT_FIRST) {
        p->tflags |= TF_HOST;
        p->sub = (c == 'v' || c == 'V') ? T_IPVFUTURE : T_IPLIT;
        ok = p->sub == T_IPVFUTURE || http__is(c, K_HEX) || c == ':';
    } else if (c == ']') {
        p->sub = T_IPLIT_END;
        ok = 1;
    } else if (p->sub == T_IPLIT) {
        ok = http__is(c, K_HEX) || c == ':' || c == '.';
    } else {
        ok = http__is(c, K_REG) || c == ':';
    }
    return ok ? 0 : fail(p, -400, "invalid IP literal");
}

/* Marked state machine: authority = [ userinfo "@" ] host [ ":" port ]. Without a '@' yet, "a:1"
 * may be host and port or the start of a userinfo, so T_USER_OR_PORT keeps both open. */
static int target_authority(struct http_parser *p, struct http_request *req, unsigned char c,
                            size_t pos)
{
    int port_next = (p->tflags & (TF_AT | TF_CONNECT)) != 0;

    if (p->sub == T_AUTH) {
        if (c == '[') {
            p->sub = T_IPLIT_FIRST;
            return 0;
        }
        p->sub = T_REGNAME;
    }
    switch (p->sub) {
    case T_REGNAME:
        if (http__is(c, K_REG) || c == '%') {
            p->tflags |= TF_HOST;
            if (c == '%') {
                p->ret = T_REGNAME;
                p->sub = T_PCT1;
            }
            return 0;
        }
        if (c == ':') {
            p->sub = port_next ? T_PORT : T_USER_OR_PORT;
            return 0;
        }
        return c == '@' ? authority_at(p, pos) : authority_end(p, req, c, pos);
    case T_USER_OR_PORT:
        if (http__is(c, K_DIGIT)) {
            p->tflags |= TF_PORTDIGIT;
            return 0;
        }
        if (http__is(c, K_REG) || c == ':' || c == '%') {
            p->sub = c == '%' ? T_PCT1 : T_USERINFO;
            p->ret = T_USERINFO;
            return 0;
        }
        return c == '@' ? authority_at(p, pos) : authority_end(p, req, c, pos);
    case T_USERINFO:
        if (c == '@')
            return authority_at(p, pos);
        if (c == '%') {
            p->ret = T_USERINFO;
            p->sub = T_PCT1;
        } else if (!http__is(c, K_REG) && c != ':') {
            return fail(p, -400, "invalid userinfo");
        }
        return 0;
    case T_IPLIT_END:
        if (c == ':') {
            p->sub = T_PORT;
            return 0;
        }
        return authority_end(p, req, c, pos);
    case T_PORT:
        if (http__is(c, K_DIGIT)) {
            p->tflags |= TF_PORTDIGIT;
            return 0;
        }
        return authority_end(p, req, c, pos);
    default:
        return ip_literal(p, c);
    }
}

/* The first byte decides the form (RFC 9112 3.2). */
static int target_first(struct http_parser *p, struct http_request *req, unsigned char c,
                        size_t pos)
{
    if (c == '/') {
        req->form = HTTP_FORM_ORIGIN;
        p->tflags |= TF_PATH;
        req->path_off = (uint32_t)pos;
        p->sub = T_PATH;
    } else if (c == '*') {
        req->form = HTTP_FORM_ASTERISK;
        p->sub = T_ASTERISK;
    } else if (req->method == HTTP_CONNECT) {
        req->form = HTTP_FORM_AUTHORITY;
        p->tflags |= TF_CONNECT;
        p->host_start = (uint32_t)pos;
        p->sub = T_AUTH;
        return target_authority(p, req, c, pos);
    } else if (http__is(c, K_ALPHA)) {
        req->form = HTTP_FORM_ABSOLUTE;
        p->sub = T_SCHEME;
    } else {
        return fail(p, -400, c == ' ' ? "extra space before target" : "invalid target");
    }
    return 0;
}

static int on_target(struct http_parser *p, struct http_request *req, unsigned char c)
{
    size_t pos = req->buf_len; /* where c is stored */

    if (c != ' ' && arena_push(p, req, (char)c) < 0)
        return p->error;
    switch (p->sub) {
    case T_FIRST:
        return target_first(p, req, c, pos);
    case T_ASTERISK:
        return c == ' ' ? target_end(p, req) : fail(p, -400, "invalid asterisk-form");
    case T_PCT1:
    case T_PCT2:
        if (!http__is(c, K_HEX))
            return fail(p, -400, "invalid percent-encoding");
        p->sub = p->sub == T_PCT1 ? T_PCT2 : p->ret;
        return 0;
    case T_PATH:
    case T_QUERY:
        return target_path(p, req, c, pos);
    case T_SCHEME:
    case T_HIER:
    case T_HIER_SLASH:
        return target_hier(p, req, c, pos);
    default:
        return target_authority(p, req, c, pos);
    }
}

/* "HTTP/" DIGIT "." DIGIT, then the line end; p->sub counts the bytes seen. */
static int on_version(struct http_parser *p, struct http_request *req, unsigned char c)
{
    static const char proto[] = "HTTP/";
    int at = p->sub++;

    if (at < 5) {
        if (c != (unsigned char)proto[at])
            return fail(p, -400, c == ' ' ? "extra space before version" : "invalid version");
    } else if (at == 5 || at == 7) {
        if (!http__is(c, K_DIGIT))
            return fail(p, -400, "invalid version");
        p->version = p->version * 10 + (c - '0');
    } else if (at == 6) {
        if (c != '.')
            return fail(p, -400, "invalid version");
    } else if (c == '\r') {
        p->cr = 1;
        p->sub--;
    } else if (c != '\n') {
        return fail(p, -400, "invalid version");
    } else if (p->version / 10 != 1) {
        return fail(p, -505, "HTTP version not supported");
    } else {
        /* A later HTTP/1 minor version is read as 1.1, the highest we implement (RFC 9110 2.5). */
        req->version_minor = p->version % 10 ? 1 : 0;
        p->state = S_HDR_START;
    }
    return 0;
}

/* ---- header fields ---- */

static int on_header(struct http_parser *p, struct http_request *req, unsigned char c)
{
    struct http_header *h = &req->headers[p->cur_header];

    if (p->state == S_HDR_NAME) {
        if (c == ':') {
            h->name_len = (uint32_t)(req->buf_len - h->name_off);
            h->value_off = p->mark = (uint32_t)req->buf_len;
            p->state = S_HDR_OWS;
            return 0;
        }
        if (!http__is(c, K_TCHAR))
            return fail(p, -400,
                        c == ' ' || c == '\t' ? "whitespace before colon" : "invalid header name");
        return arena_push(p, req, lower(c));
    }
    if (c == '\r') {
        p->cr = 1;
        return 0;
    }
    if (c == '\n') {
        /* Trailing whitespace was stored but is cut off here. */
        h->value_len = p->mark - h->value_off;
        req->buf_len = p->mark;
        p->state = S_HDR_START;
        return 0;
    }
    if (!http__is(c, K_VALUE))
        return fail(p, -400, "invalid character in header value");
    if (c == ' ' || c == '\t') {
        if (p->state == S_HDR_OWS)
            return 0;
    } else {
        p->state = S_HDR_VALUE;
        p->mark = (uint32_t)req->buf_len + 1;
    }
    return arena_push(p, req, (char)c);
}

static int on_header_start(struct http_parser *p, struct http_request *req, unsigned char c)
{
    if (c == '\r') {
        p->cr = 1;
        return 0;
    }
    if (c == '\n') {
        const char *reason = NULL;
        int rc = http__interpret(req, (p->tflags & TF_AUTHORITY) != 0, &reason);

        if (rc < 0)
            return fail(p, rc, reason);
        p->state = S_DONE;
        return HTTP_PARSE_DONE;
    }
    if (c == ' ' || c == '\t')
        return fail(p, -400, "obsolete line folding");
    if (!http__is(c, K_TCHAR))
        return fail(p, -400, "invalid header name");
    if (header_add(p, req) < 0)
        return p->error;
    p->state = S_HDR_NAME;
    return arena_push(p, req, lower(c));
}

bool http_parse_started(const struct http_parser *p)
{
    return p->state != S_START;
}

static int on_request_line(struct http_parser *p, struct http_request *req, unsigned char c)
{
    if (p->state == S_START) {
        if (c == '\r') {
            p->cr = 1;
            return 0;
        }
        if (c == '\n')
            return 0; /* an empty line before the request line (RFC 9112 2.2) */
        if (!http__is(c, K_TCHAR))
            return fail(p, -400, "invalid method");
        req->method_off = (uint32_t)req->buf_len;
        p->state = S_METHOD;
        return arena_push(p, req, (char)c);
    }
    if (c == ' ')
        return method_end(p, req);
    if (!http__is(c, K_TCHAR))
        return fail(p, -400, "invalid method");
    return arena_push(p, req, (char)c);
}

/* One byte: limits first, so the result never depends on how the input was split. */
static int step(struct http_parser *p, struct http_request *req, unsigned char c)
{
    if (p->cr) {
        if (c != '\n')
            return fail(p, -400, "CR not followed by LF");
        p->cr = 0;
    }
    if (p->state <= S_VERSION && c != '\r' && c != '\n' && ++p->line_len > p->lim.max_request_line)
        return fail(p, -414, "request line too long");
    if (++p->head_len > p->lim.max_head)
        return fail(p, -431, "request head too large");
    switch (p->state) {
    case S_START:
    case S_METHOD:
        return on_request_line(p, req, c);
    case S_TARGET:
        return on_target(p, req, c);
    case S_VERSION:
        return on_version(p, req, c);
    case S_HDR_START:
        return on_header_start(p, req, c);
    default:
        return on_header(p, req, c);
    }
}

int http_parse_feed(struct http_parser *p, struct http_request *req, const char *data, size_t len,
                    size_t *consumed)
{
    size_t i;

    *consumed = 0;
    if (p->state == S_ERROR)
        return p->error;
    if (p->state == S_DONE)
        return HTTP_PARSE_DONE;
    for (i = 0; i < len; i++) {
        int rc = step(p, req, (unsigned char)data[i]);

        if (rc == HTTP_PARSE_DONE) {
            *consumed = i + 1;
            return rc;
        }
        if (rc < 0) {
            *consumed = i;
            return rc;
        }
    }
    *consumed = len;
    return HTTP_PARSE_AGAIN;
}
