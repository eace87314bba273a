/*
 * http_parse_internal.h - the byte classes shared by the request parser and the chunked decoder.
 */
#ifndef HERALD_HTTP_PARSE_INTERNAL_H
#define HERALD_HTTP_PARSE_INTERNAL_H

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

#endif
