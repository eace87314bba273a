/*
 * fuzz_ws_frame.c - libFuzzer driver for the WebSocket frame decoder.
 *
 * The first byte of an input picks the settings (server or client, permessage-deflate, a small
 * max_message, so that every rule is reachable) and the rest is the frame stream. The decoder
 * promises that any split of the input gives the same events, so the stream is decoded whole and
 * split in two at a point taken from the first byte; both runs must agree on every event, the
 * header fields, the payload bytes and the bytes consumed. Each run also checks what the decoder
 * must guarantee on its own: payload spans lie inside the input, unmasking matches a byte-at-a-time
 * reference, every header it accepts re-encodes to exactly the bytes it came from (lengths are
 * minimal), and errors carry a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct event {
    int rc;
    struct ws_frame_header frame; /* HEADER events */
    uint8_t message_opcode;
};

struct run {
    struct event *ev; /* room for size + 2: a frame of n bytes makes at most n events */
    size_t cap;
    size_t nev;
    uint8_t *payload; /* every payload byte, in order */
    size_t plen;
    size_t consumed;
};

static void check(int cond)
{
    if (!cond)
        abort();
}

/* Adds an event; consecutive payload spans count as one, as their split is arbitrary. */
static void add_event(struct run *r, const struct ws_decoder *d, int rc)
{
    struct event *e;

    if (rc == WS_DEC_PAYLOAD && r->nev && r->ev[r->nev - 1].rc == WS_DEC_PAYLOAD)
        return;
    check(r->nev < r->cap);
    e = &r->ev[r->nev++];
    memset(e, 0, sizeof(*e));
    e->rc = rc;
    if (rc == WS_DEC_HEADER) {
        e->frame = d->frame;
        e->message_opcode = d->message_opcode;
    }
}

static int same_event(const struct event *a, const struct event *b)
{
    const struct ws_frame_header *x = &a->frame, *y = &b->frame;

    return a->rc == b->rc && a->message_opcode == b->message_opcode && x->fin == y->fin &&
           x->rsv1 == y->rsv1 && x->opcode == y->opcode && x->masked == y->masked &&
           memcmp(x->mask, y->mask, 4) == 0 && x->len == y->len;
}

/* The header just decoded, re-encoded, must equal the bytes it was decoded from. */
static void check_header(const struct ws_decoder *d, const uint8_t *orig, size_t end)
{
    const struct ws_frame_header *f = &d->frame;
    size_t n = ws_frame_header_size(f->len, f->masked);
    uint8_t hdr[14];

    check(end >= n);
    check(ws_frame_header_encode(hdr, f->fin, f->rsv1, f->opcode, f->len,
                                 f->masked ? f->mask : NULL) == n);
    check(memcmp(hdr, orig + end - n, n) == 0);
    if (f->opcode >= 0x8)
        check(f->fin && !f->rsv1 && f->len <= 125);
    if (d->require_mask)
        check(f->masked);
}

/* Decodes one piece (buf[start..end), a copy of orig) into r; returns 0 once decoding failed. */
static int feed(struct ws_decoder *d, uint8_t *buf, const uint8_t *orig, size_t start, size_t end,
                struct run *r)
{
    size_t off = start, used, n, i;
    uint8_t *out;
    int rc;

    for (;;) {
        rc = ws_decode(d, buf + off, end - off, &used, &out, &n);
        check(used <= end - off);
        if (rc == WS_DEC_PAYLOAD) {
            check(out == buf + off && n == used && n > 0);
            for (i = 0; i < n; i++) {
                uint64_t pos = d->mask_pos - n + i;
                uint8_t m = d->frame.masked ? d->frame.mask[pos & 3] : 0;

                check(out[i] == (orig[off + i] ^ m));
            }
            memcpy(r->payload + r->plen, out, n);
            r->plen += n;
        }
        off += used;
        r->consumed += used;
        if (rc == WS_DEC_AGAIN) {
            check(off == end);
            return 1;
        }
        add_event(r, d, rc);
        if (rc == WS_DEC_HEADER)
            check_header(d, orig, off);
        if (rc < 0) {
            check(rc == -WS_CLOSE_PROTOCOL || rc == -WS_CLOSE_TOO_BIG);
            check(d->reason != NULL);
            return 0;
        }
    }
}

static void decode_split(const uint8_t *data, size_t size, size_t cut, uint8_t flags, struct run *r)
{
    struct ws_decoder d;
    uint8_t *buf = malloc(size + 1);

    memcpy(buf, data, size);
    r->nev = r->plen = r->consumed = 0;
    ws_decoder_init(&d, !(flags & 0x40), flags & 0x20, (flags & 0x10) ? (flags & 0x0f) * 50u : 0);
    if (feed(&d, buf, data, 0, cut, r))
        feed(&d, buf, data, cut, size, r);
    free(buf);
}

static void run_init(struct run *r, size_t size)
{
    r->cap = size + 2;
    r->ev = calloc(r->cap, sizeof(*r->ev));
    r->payload = malloc(size + 1);
}

static void run_free(struct run *r)
{
    free(r->ev);
    free(r->payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, split;
    uint8_t flags;
    size_t cut, i;

    if (size == 0)
        return 0;
    flags = data[0];
    data++;
    size--;
    cut = flags % (size + 1);
    run_init(&whole, size);
    run_init(&split, size);
    decode_split(data, size, size, flags, &whole);
    decode_split(data, size, cut, flags, &split);
    check(whole.nev == split.nev && whole.consumed == split.consumed);
    for (i = 0; i < whole.nev; i++)
        check(same_event(&whole.ev[i], &split.ev[i]));
    check(whole.plen == split.plen && memcmp(whole.payload, split.payload, whole.plen) == 0);
    run_free(&whole);
    run_free(&split);
    return 0;
}
