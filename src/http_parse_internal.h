/*
 * http_parse_internal.h - what the request parser (http_parse.c), the interpretation of a finished
 * head (http_head.c) and the chunked decoder (http_chunked.c) share.
 */
#ifndef HERALD_HTTP_PARSE_INTERNAL_H
#define HERALD_HTTP_PARSE_INTERNAL_H

#include <stdbool.h>

/* Character classes of the bytes the grammars care about (RFC 9110, RFC 3986). */
#define K_TCHAR  0x01 /* token character */
#define K_PCHAR  0x02 /* unreserved / sub-delims / ":" / "@" (pchar without pct-encoded) */
#define K_REG    0x04 /* unreserved / sub-delims (reg-name, userinfo without ":") */
#define K_HEX    0x08
#define K_SCHEME 0x10 /* ALPHA / DIGIT / "+" / "-" / "." */
#define K_VALUE  0x20 /* field-value byte: VCHAR / obs-text / SP / HTAB */
#define K_DIGIT  0x40
#define K_ALPHA  0x80

extern const unsigned char http__cclass[256];

static inline int http__is(unsigned char c, unsigned k)
{
    return (http__cclass[c] & k) != 0;
}

struct http_request;

/* http__interpret - checks and interprets the finished head in req: the request form against the
 * method, Host (required in HTTP/1.1; a target with an authority overrides it when
 * `target_authority`), Content-Length, Transfer-Encoding, Connection, Upgrade and Expect, and the
 * body's framing; sets req's flags, host and content length. Returns 0, or -400 or -501 with
 * *reason a short static explanation. */
int http__interpret(struct http_request *req, bool target_authority, const char **reason);

#endif
