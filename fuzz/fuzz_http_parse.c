/*
 * fuzz_http_parse.c - libFuzzer driver for the request-head parser and the chunked decoder.
 *
 * The parsers promise that any split of the input gives the same result, so each input is parsed
 * whole and split in two at a point taken from its first byte, and the two runs must agree on the
 * result, the bytes consumed and the parsed request. After a complete head the rest of the input
 * is parsed as pipelined requests. The same input then goes through the chunked decoder, again
 * whole and split, and every data span must lie inside the input it came from.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_chunked.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that the 414 and 431 paths are reachable by short inputs. */
static const struct http_limits fuzz_limits = {
    .max_request_line = 256,
    .max_head = 1024,
    .max_headers = 16,
};

struct result {
    int rc;
    size_t consumed;
};

static void check(int cond)
{
    if (!cond)
        abort();
}

static struct result parse_split(const char *in, size_t len, size_t cut, struct http_request *req)
{
    struct http_parser p;
    struct result r;
    size_t used;

    http_parser_init(&p, &fuzz_limits);
    r.rc = http_parse_feed(&p, req, in, cut, &used);
    r.consumed = used;
    if (r.rc == HTTP_PARSE_AGAIN) {
        check(used == cut);
        r.rc = http_parse_feed(&p, req, in + cut, len - cut, &used);
        r.consumed += used;
    }
    check(r.consumed <= len);
    if (r.rc == HTTP_PARSE_AGAIN)
        check(r.consumed == len);
    return r;
}

static int same_span(const struct http_request *a, uint32_t ao, uint32_t al,
                     const struct http_request *b, uint32_t bo, uint32_t bl)
{
    check(ao + (size_t)al <= a->buf_len && bo + (size_t)bl <= b->buf_len);
    return al == bl && memcmp(a->buf + ao, b->buf + bo, al) == 0;
}

static void check_same(const struct http_request *a, const struct http_request *b)
{
    unsigned i;

    check(a->method == b->method && a->form == b->form && a->flags == b->flags);
    check(a->version_minor == b->version_minor && a->content_length == b->content_length);
    check(same_span(a, a->target_off, a->target_len, b, b->target_off, b->target_len));
    check(same_span(a, a->path_off, a->path_len, b, b->path_off, b->path_len));
    check(same_span(a, a->query_off, a->query_len, b, b->query_off, b->query_len));
    check(same_span(a, a->host_off, a->host_len, b, b->host_off, b->host_len));
    check(a->nheaders == b->nheaders);
    for (i = 0; i < a->nheaders; i++) {
        const struct http_header *x = &a->headers[i], *y = &b->headers[i];

        check(same_span(a, x->name_off, x->name_len, b, y->name_off, y->name_len));
        check(same_span(a, x->value_off, x->value_len, b, y->value_off, y->value_len));
    }
    check(a->buf_len <= fuzz_limits.max_head + 1);
}

/* One request whole and split; returns the bytes the head took, or 0 when it did not finish. */
static size_t parse_one(const char *in, size_t len, size_t cut, struct http_request *whole,
                        struct http_request *split)
{
    struct result a, b;

    http_request_reset(whole);
    http_request_reset(split);
    a = parse_split(in, len, len, whole);
    b = parse_split(in, len, cut > len ? len : cut, split);
    check(a.rc == b.rc && a.consumed == b.consumed);
    if (a.rc != HTTP_PARSE_DONE)
        return 0;
    check(a.consumed > 0);
    check_same(whole, split);
    return a.consumed;
}

struct chunk_result {
    int rc;
    size_t consumed, data_len;
    uint32_t hash;
};

static struct chunk_result chunked_split(const char *in, size_t len, size_t cut)
{
    struct chunk_result r = {HTTP_PARSE_AGAIN, 0, 0, 0};
    struct http_chunked c;
    size_t ends[2] = {cut, len}, k, used, n, i;
    const char *out;

    http_chunked_init(&c, 64);
    for (k = 0; k < 2 && r.rc == HTTP_PARSE_AGAIN; k++) {
        do {
            r.rc = http_chunked_feed(&c, in + r.consumed, ends[k] - r.consumed, &used, &out, &n);
            check(used <= ends[k] - r.consumed);
            if (r.rc == HTTP_PARSE_DATA) {
                check(n > 0 && out >= in + r.consumed && out + n <= in + r.consumed + used);
                for (i = 0; i < n; i++)
                    r.hash = r.hash * 31 + (unsigned char)out[i];
                r.data_len += n;
            }
            r.consumed += used;
        } while (r.rc == HTTP_PARSE_DATA);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t cut = size ? data[0] % (size + 1) : 0, off = 0, used;
    struct http_request whole, split;
    struct chunk_result a, b;

    http_request_init(&whole);
    http_request_init(&split);
    while (off < size && (used = parse_one(in + off, size - off, cut, &whole, &split)) > 0)
        off += used;
    http_request_deinit(&whole);
    http_request_deinit(&split);

    a = chunked_split(in, size, size);
    b = chunked_split(in, size, cut > size ? size : cut);
    check(a.rc == b.rc && a.consumed == b.consumed);
    check(a.data_len == b.data_len && a.hash == b.hash);
    return 0;
}
