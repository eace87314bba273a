/*
 * http_chunked.h - the chunked transfer coding decoder (RFC 9112 7.1).
 *
 * Pure code like http_parse.h, and resumable the same way: feed it the body bytes in order, split
 * anywhere. It copies nothing: body data comes back as spans of the caller's input. Chunk
 * extensions are skipped and trailer fields parsed and dropped, each line bounded, and the trailer
 * section to four lines' worth of bytes.
 */
#ifndef HERALD_HTTP_CHUNKED_H
#define HERALD_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "http_parse.h" /* HTTP_PARSE_* return codes */

/* Chunked transfer coding decoder (RFC 9112 7.1); trailers are parsed and dropped. */
struct http_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t line_len;    /* bytes of the current size/extension/trailer line */
    size_t trailer_len; /* bytes of the trailer section so far (at most 4 * max_line) */
    size_t max_line;    /* longest chunk-size line or trailer line accepted */
    const char *reason;
    int cr; /* private: a CR was seen; the next byte must be LF */
};

/* http_chunked_init - decoder at the start of a chunked body; `max_line` bounds each size line
 * and trailer line (0 means 4096). */
void http_chunked_init(struct http_chunked *c, size_t max_line);

/*
 * http_chunked_feed - decodes from `data`. Sets *consumed and returns:
 *   HTTP_PARSE_AGAIN  all input used, body not finished
 *   HTTP_PARSE_DATA   *out, *out_len is a span of body data inside `data` (already counted in
 *                     *consumed); call again with the rest of the input
 *   HTTP_PARSE_DONE   the last chunk and trailers ended; *consumed includes the final LF
 *   -400              malformed chunk size, extension, line ending or trailer (c->reason)
 */
int http_chunked_feed(struct http_chunked *c, const char *data, size_t len, size_t *consumed,
                      const char **out, size_t *out_len);

#endif
