/*
 * http_head.c - what a finished request head means: the fields the server acts on (Host,
 * Content-Length, Transfer-Encoding, Connection, Upgrade, Expect), the body's framing (RFC 9112
 * 6.1-6.3), and the list and lookup helpers http_parse.h exports. Pure: it reads the head the
 * byte parser in http_parse.c stored and sets the request's flags.
 */
#include "http_parse.h"
#include "http_parse_internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static int bad(const char **reason, int code, const char *why)
{
    *reason = why;
    return code;
}

/* Next non-empty element of a comma-separated list, trimmed of SP/HTAB; 0 at the end. */
static int list_next(const char *v, size_t len, size_t *pos, const char **el, size_t *el_len)
{
    while (*pos < len) {
        size_t start = *pos, end;

        while (*pos < len && v[*pos] != ',')
            (*pos)++;
        end = *pos;
        if (*pos < len)
            (*pos)++; /* skip the comma */
        while (start < end && (v[start] == ' ' || v[start] == '\t'))
            start++;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start) {
            *el = v + start;
            *el_len = end - start;
            return 1;
        }
    }
    return 0;
}

int http_token_list_has(const char *value, size_t len, const char *token)
{
    size_t pos = 0, tlen = strlen(token), el_len;
    const char *el;

    while (list_next(value, len, &pos, &el, &el_len))
        if (el_len == tlen && strncasecmp(el, token, tlen) == 0)
            return 1;
    return 0;
}

const char *http_header_get(const struct http_request *req, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    unsigned i;

    for (i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];

        if (h->name_len == nlen && memcmp(req->buf + h->name_off, name, nlen) == 0) {
            if (len)
                *len = h->value_len;
            return req->buf + h->value_off;
        }
    }
    return NULL;
}

const char *http_header_next(const struct http_request *req, const char *name, unsigned *pos,
                             size_t *len)
{
    size_t nlen = strlen(name);

    for (; *pos < req->nheaders; (*pos)++) {
        const struct http_header *h = &req->headers[*pos];

        if (h->name_len == nlen && memcmp(req->buf + h->name_off, name, nlen) == 0) {
            (*pos)++;
            *len = h->value_len;
            return req->buf + h->value_off;
        }
    }
    return NULL;
}

/* What the Transfer-Encoding fields (taken together as one list) say. */
struct te_state {
    unsigned fields, chunked, others;
    int last_chunked, bad;
};

static void te_scan(struct te_state *te, const char *v, size_t len)
{
    size_t pos = 0, el_len, n;
    const char *el;

    te->fields++;
    while (list_next(v, len, &pos, &el, &el_len)) {
        for (n = 0; n < el_len && http__is((unsigned char)el[n], K_TCHAR); n++)
            ;
        /* A coding name, then nothing or its parameters after ';' ("chunked foo" is neither). */
        size_t k = n;
        while (k < el_len && (el[k] == ' ' || el[k] == '\t'))
            k++;
        if (n == 0 || (k < el_len && el[k] != ';'))
            te->bad = 1;
        te->last_chunked = n == 7 && strncasecmp(el, "chunked", 7) == 0;
        if (te->last_chunked)
            te->chunked++;
        else
            te->others++;
    }
}

/* Content-Length = 1*DIGIT, nothing else; *cl is set or compared with an earlier value. */
static int content_length(struct http_request *req, const char *v, size_t len)
{
    uint64_t n = 0;
    size_t i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned char)v[i] - '0';

        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    if ((req->flags & HTTP_F_CONTENT_LENGTH) && req->content_length != n)
        return -1;
    req->flags |= HTTP_F_CONTENT_LENGTH;
    req->content_length = n;
    return 0;
}

/* Host = uri-host [ ":" port ], where uri-host is an IP-literal or a reg-name (may be empty). */
static int host_valid(const char *v, size_t len)
{
    size_t i = 0;

    if (len > 0 && v[0] == '[') {
        for (i = 1; i < len && v[i] != ']'; i++)
            if (!http__is((unsigned char)v[i], K_REG) && v[i] != ':')
                return 0;
        if (i == len || i == 1)
            return 0;
        i++;
    } else {
        for (; i < len && v[i] != ':'; i++) {
            if (v[i] == '%' && i + 2 < len && http__is((unsigned char)v[i + 1], K_HEX) &&
                http__is((unsigned char)v[i + 2], K_HEX))
                i += 2;
            else if (!http__is((unsigned char)v[i], K_REG))
                return 0;
        }
    }
    if (i < len && v[i++] != ':')
        return 0;
    for (; i < len; i++)
        if (!http__is((unsigned char)v[i], K_DIGIT))
            return 0;
    return 1;
}

static int header_field(struct http_request *req, bool target_authority,
                        const struct http_header *h, struct te_state *te, const char **reason)
{
    const char *name = req->buf + h->name_off, *v = req->buf + h->value_off;
    size_t n = h->name_len, len = h->value_len;

    if (n == 4 && memcmp(name, "host", 4) == 0) {
        if (req->flags & HTTP_F_HOST)
            return bad(reason, -400, "duplicate Host");
        if (!host_valid(v, len))
            return bad(reason, -400, "invalid Host");
        req->flags |= HTTP_F_HOST;
        if (!target_authority) {
            req->host_off = h->value_off;
            req->host_len = h->value_len;
        }
    } else if (n == 14 && memcmp(name, "content-length", 14) == 0) {
        if (content_length(req, v, len) < 0)
            return bad(reason, -400, "invalid Content-Length");
    } else if (n == 17 && memcmp(name, "transfer-encoding", 17) == 0) {
        te_scan(te, v, len);
    } else if (n == 10 && memcmp(name, "connection", 10) == 0) {
        if (http_token_list_has(v, len, "close"))
            req->flags |= HTTP_F_CONN_CLOSE;
        if (http_token_list_has(v, len, "keep-alive"))
            req->flags |= HTTP_F_CONN_KEEPALIVE;
        if (http_token_list_has(v, len, "upgrade"))
            req->flags |= HTTP_F_CONN_UPGRADE;
    } else if (n == 7 && memcmp(name, "upgrade", 7) == 0) {
        if (http_token_list_has(v, len, "websocket"))
            req->flags |= HTTP_F_UPGRADE_WS;
    } else if (n == 6 && memcmp(name, "expect", 6) == 0) {
        size_t pos = 0, el_len;
        const char *el;
        int any = 0;
        while (list_next(v, len, &pos, &el, &el_len)) {
            any = 1;
            if (el_len == 12 && strncasecmp(el, "100-continue", 12) == 0)
                req->flags |= HTTP_F_EXPECT_CONTINUE;
            else
                req->flags |= HTTP_F_EXPECT_OTHER; /* RFC 9110 10.1.1: 417 */
        }
        if (!any)
            req->flags |= HTTP_F_EXPECT_OTHER; /* an empty Expect expects nothing we know */
    }
    return 0;
}

/* Body framing (RFC 9112 6.1-6.3): chunked must be the final coding, and it is the only one. */
static int framing(struct http_request *req, const struct te_state *te, const char **reason)
{
    if (te->fields == 0)
        return 0;
    if (req->version_minor == 0)
        return bad(reason, -400, "Transfer-Encoding in HTTP/1.0");
    if (req->flags & HTTP_F_CONTENT_LENGTH)
        return bad(reason, -400, "both Content-Length and Transfer-Encoding");
    if (te->bad || !te->last_chunked || te->chunked > 1)
        return bad(reason, -400, "chunked is not the final transfer coding");
    if (te->others)
        return bad(reason, -501, "transfer coding not implemented");
    req->flags |= HTTP_F_CHUNKED;
    return 0;
}

int http__interpret(struct http_request *req, bool target_authority, const char **reason)
{
    struct te_state te = {0};
    unsigned i;
    int rc;

    if (req->form == HTTP_FORM_ASTERISK && req->method != HTTP_OPTIONS)
        return bad(reason, -400, "asterisk-form without OPTIONS");
    if ((req->form == HTTP_FORM_AUTHORITY) != (req->method == HTTP_CONNECT))
        return bad(reason, -400, "CONNECT needs authority-form");
    for (i = 0; i < req->nheaders; i++)
        if ((rc = header_field(req, target_authority, &req->headers[i], &te, reason)) < 0)
            return rc;
    if (req->version_minor == 1 && !(req->flags & HTTP_F_HOST))
        return bad(reason, -400, "missing Host");
    return framing(req, &te, reason);
}
