/* http_chunked.c - the chunked transfer coding decoder (see http_chunked.h). */
#include "http_chunked.h"
#include "http_parse_internal.h"

#include <string.h>

enum {
    C_SIZE_FIRST,
    C_SIZE,
    C_SIZE_WS, /* whitespace after the size, tolerated before ';' or the line end */
    C_EXT,
    C_DATA,
    C_DATA_END, /* the CRLF after the data */
    C_TRAILER_START,
    C_TRAILER_NAME,
    C_TRAILER_VALUE,
    C_DONE,
    C_ERROR,
};

/* The trailer section may hold this many lines' worth of bytes (of max_line each). */
#define TRAILER_LINES 4

static int chunk_fail(struct http_chunked *c, const char *reason)
{
    c->state = C_ERROR;
    c->reason = reason;
    return -400;
}

void http_chunked_init(struct http_chunked *c, size_t max_line)
{
    memset(c, 0, sizeof(*c));
    c->max_line = max_line ? max_line : 4096;
    c->state = C_SIZE_FIRST;
}

static int hexval(unsigned char b)
{
    return b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;
}

/* The chunk-size line: 1*HEXDIG [ BWS ] *( ";" chunk-ext ) CRLF; extensions are skipped. */
static int chunk_size_line(struct http_chunked *c, unsigned char b)
{
    if (b == '\r') {
        c->cr = 1;
        return 0;
    }
    if (b == '\n') {
        c->line_len = 0;
        c->state = c->remaining ? C_DATA : C_TRAILER_START;
        return 0;
    }
    if (c->state != C_EXT && b == ';') {
        c->state = C_EXT;
        return 0;
    }
    if (c->state == C_EXT)
        return http__is(b, K_VALUE) ? 0 : chunk_fail(c, "invalid chunk extension");
    if (b == ' ' || b == '\t') {
        c->state = C_SIZE_WS;
        return 0;
    }
    if (c->state == C_SIZE_WS || !http__is(b, K_HEX))
        return chunk_fail(c, "invalid chunk size");
    if (c->remaining > (UINT64_MAX >> 4))
        return chunk_fail(c, "chunk size overflow");
    c->remaining = (c->remaining << 4) | (uint64_t)hexval(b);
    return 0;
}

static int chunk_trailer(struct http_chunked *c, unsigned char b)
{
    if (c->state == C_TRAILER_NAME) {
        if (b == ':')
            c->state = C_TRAILER_VALUE;
        else if (!http__is(b, K_TCHAR))
            return chunk_fail(c, "invalid trailer name");
        return 0;
    }
    if (b == '\r') {
        c->cr = 1;
        return 0;
    }
    if (b == '\n') {
        c->line_len = 0;
        if (c->state == C_TRAILER_START) {
            c->state = C_DONE;
            return HTTP_PARSE_DONE;
        }
        c->state = C_TRAILER_START;
        return 0;
    }
    if (c->state == C_TRAILER_VALUE)
        return http__is(b, K_VALUE) ? 0 : chunk_fail(c, "invalid trailer value");
    if (!http__is(b, K_TCHAR))
        return chunk_fail(c, "invalid trailer field");
    c->state = C_TRAILER_NAME;
    return 0;
}

static int chunk_step(struct http_chunked *c, unsigned char b)
{
    if (c->cr) {
        if (b != '\n')
            return chunk_fail(c, "CR not followed by LF");
        c->cr = 0;
    }
    if (c->state == C_DATA_END) {
        if (b == '\r') {
            c->cr = 1;
        } else if (b == '\n') {
            c->state = C_SIZE_FIRST;
        } else {
            return chunk_fail(c, "missing CRLF after chunk data");
        }
        return 0;
    }
    if (b != '\r' && b != '\n' && ++c->line_len > c->max_line)
        return chunk_fail(c, "chunk line too long");
    if (c->state == C_SIZE_FIRST) {
        if (!http__is(b, K_HEX))
            return chunk_fail(c, "invalid chunk size");
        c->state = C_SIZE;
    }
    if (c->state <= C_EXT)
        return chunk_size_line(c, b);
    /* Each trailer line is bounded, and so is their number: a client must not keep a request
     * open for ever with trailer lines nobody reads. */
    if (++c->trailer_len > TRAILER_LINES * c->max_line)
        return chunk_fail(c, "trailer section too large");
    return chunk_trailer(c, b);
}

int http_chunked_feed(struct http_chunked *c, const char *data, size_t len, size_t *consumed,
                      const char **out, size_t *out_len)
{
    size_t i;

    *consumed = 0;
    *out = NULL;
    *out_len = 0;
    if (c->state == C_ERROR)
        return -400;
    if (c->state == C_DONE)
        return HTTP_PARSE_DONE;
    for (i = 0; i < len; i++) {
        int rc;

        if (c->state == C_DATA) {
            size_t n = len - i < c->remaining ? len - i : (size_t)c->remaining;

            c->remaining -= n;
            if (c->remaining == 0)
                c->state = C_DATA_END;
            *out = data + i;
            *out_len = n;
            *consumed = i + n;
            return HTTP_PARSE_DATA;
        }
        rc = chunk_step(c, (unsigned char)data[i]);
        if (rc != 0) {
            *consumed = rc > 0 ? i + 1 : i;
            return rc;
        }
    }
    *consumed = len;
    return HTTP_PARSE_AGAIN;
}
