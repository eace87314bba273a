/*
 * test_ws_frame.c - the WebSocket frame decoder, encoder, masking and close payloads.
 *
 * Every decoder input is fed whole, one byte at a time, split in two at every position (or, for
 * long inputs, at every position near either end and at a stride) and split at pseudo-random
 * points (fixed seed). Each way must produce the same event trace: the headers, the payload bytes
 * (consecutive spans merged), the ends of frames, and the error with the total consumed when it
 * was reported. Each piece is copied so that it ends right before a PROT_NONE page, so reading or
 * unmasking one byte past what the decoder was given crashes.
 *
 * Traces are written as text, so a test states the expected events in one string:
 *   H<op>[+][r][/<message op>]:<len>   a header (+: FIN clear, r: RSV1; message op on data frames)
 *   '<bytes>' or [<n>]                  payload bytes (quoted if short, else their count)
 *   E                                   end of a frame's payload
 *   !<code>@<consumed>                  an error and the total bytes consumed when it came
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"
#include "utf8.h"
#include "ws_frame.h"

/* ---- event traces ---- */

struct settings {
    bool require_mask, allow_rsv1;
    uint64_t max_message;
};

static const struct settings server = {true, false, 0};
static const struct settings server_deflate = {true, true, 0};
static const struct settings client = {false, false, 0};

struct trace {
    char *text;
    size_t tlen, tcap;
    uint8_t *data; /* every payload byte, in order */
    size_t dlen;
    size_t pending;  /* payload bytes since the last other event */
    size_t consumed; /* total bytes consumed */
    int err;         /* 0 or the negative close code */
};

static void trace_init(struct trace *t, size_t input_len)
{
    memset(t, 0, sizeof(*t));
    t->tcap = 256;
    t->text = calloc(1, t->tcap);
    t->data = malloc(input_len + 1);
}

static void trace_free(struct trace *t)
{
    free(t->text);
    free(t->data);
}

__attribute__((format(printf, 2, 3))) static void trace_add(struct trace *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->text + t->tlen, t->tcap - t->tlen, fmt, ap);
        va_end(ap);
        cr_assert(n >= 0);
        if ((size_t)n < t->tcap - t->tlen)
            break;
        t->tcap *= 2;
        t->text = realloc(t->text, t->tcap);
    }
    t->tlen += (size_t)n;
}

/* Writes the payload bytes seen since the last other event as one token. */
static void flush_payload(struct trace *t)
{
    const uint8_t *p = t->data + t->dlen - t->pending;
    size_t i;

    if (t->pending == 0)
        return;
    if (t->pending > 32) {
        trace_add(t, "[%zu] ", t->pending);
    } else {
        trace_add(t, "'");
        for (i = 0; i < t->pending; i++) {
            if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
                trace_add(t, "%c", p[i]);
            else
                trace_add(t, "\\x%02x", p[i]);
        }
        trace_add(t, "' ");
    }
    t->pending = 0;
}

static void record(struct trace *t, const struct ws_decoder *d, int rc, const uint8_t *out,
                   size_t out_len)
{
    const struct ws_frame_header *f = &d->frame;

    if (rc == WS_DEC_PAYLOAD) {
        memcpy(t->data + t->dlen, out, out_len);
        t->dlen += out_len;
        t->pending += out_len;
        return;
    }
    flush_payload(t);
    if (rc == WS_DEC_HEADER) {
        trace_add(t, "H%x%s%s", f->opcode, f->fin ? "" : "+", f->rsv1 ? "r" : "");
        if (f->opcode < 0x8)
            trace_add(t, "/%x", d->message_opcode);
        trace_add(t, ":%llu ", (unsigned long long)f->len);
    } else if (rc == WS_DEC_END) {
        trace_add(t, "E ");
    } else {
        cr_assert_lt(rc, 0, "unexpected return %d", rc);
        cr_assert_not_null(d->reason, "no reason for error %d", rc);
        trace_add(t, "!%d@%zu ", -rc, t->consumed);
        t->err = rc;
    }
}

/* Decodes one piece; returns false once the decoder has failed. */
static bool feed_piece(struct ws_decoder *d, uint8_t *piece, size_t plen, struct trace *t)
{
    size_t off = 0, used, out_len;
    uint8_t *out;
    int rc;

    for (;;) {
        rc = ws_decode(d, piece + off, plen - off, &used, &out, &out_len);
        cr_assert_leq(used, plen - off);
        if (rc == WS_DEC_PAYLOAD) {
            cr_assert(out == piece + off && out_len == used && used > 0);
        } else {
            cr_assert(out == NULL && out_len == 0);
            if (rc == WS_DEC_END)
                cr_assert_eq(used, 0);
        }
        off += used;
        t->consumed += used;
        if (rc == WS_DEC_AGAIN) {
            cr_assert_eq(off, plen, "AGAIN before the piece was used up");
            return true;
        }
        record(t, d, rc, out, out_len);
        if (rc < 0) {
            /* A failed decoder keeps failing the same way and consumes nothing. */
            cr_assert_eq(ws_decode(d, piece, plen, &used, &out, &out_len), rc);
            cr_assert_eq(used, 0);
            return false;
        }
    }
}

/* Decodes in[0..len) cut at cuts[] into t. */
static void feed_cut(struct guard *g, const uint8_t *in, size_t len, const size_t *cuts,
                     size_t ncuts, const struct settings *s, struct trace *t)
{
    struct ws_decoder d;
    size_t start = 0, k;

    trace_init(t, len);
    ws_decoder_init(&d, s->require_mask, s->allow_rsv1, s->max_message);
    for (k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;

        if (!feed_piece(&d, guard_put(g, in + start, end - start), end - start, t))
            break;
        start = end;
    }
    flush_payload(t);
    if (t->tlen && t->text[t->tlen - 1] == ' ')
        t->text[--t->tlen] = '\0';
}

static void check_split(struct guard *g, const uint8_t *in, size_t len, const size_t *cuts,
                        size_t ncuts, const struct settings *s, const struct trace *want)
{
    struct trace t;

    feed_cut(g, in, len, cuts, ncuts, s, &t);
    cr_assert_str_eq(t.text, want->text, "%zu pieces (first cut %zu)", ncuts + 1,
                     ncuts ? cuts[0] : len);
    cr_assert_eq(t.consumed, want->consumed);
    cr_assert_eq(t.dlen, want->dlen);
    cr_assert(memcmp(t.data, want->data, t.dlen) == 0, "payload differs");
    trace_free(&t);
}

/* Decodes in[0..len) whole into *want, then every other way, all of which must agree. */
static void decode_ways(const uint8_t *in, size_t len, const struct settings *s, struct trace *want)
{
    struct guard g = guard_new(len);
    size_t *cuts = calloc(len + 8, sizeof(*cuts));
    size_t i, n;

    feed_cut(&g, in, len, NULL, 0, s, want);
    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    check_split(&g, in, len, cuts, len ? len - 1 : 0, s, want); /* one byte at a time */
    for (i = 0; i <= len; i++) {
        /* Long inputs: every cut near the ends, then a stride through the payload. */
        if (len > 2048 && i > 64 && i + 64 < len && i % 509 != 0)
            continue;
        cuts[0] = i;
        check_split(&g, in, len, cuts, 1, s, want);
    }
    for (i = 0; i < 20; i++) {
        n = random_cuts(len, cuts);
        check_split(&g, in, len, cuts, n, s, want);
    }
    free(cuts);
    guard_free(&g);
}

/* Decodes every way and checks the trace text. */
static void expect_trace(const void *in, size_t len, const struct settings *s, const char *want,
                         const char *name)
{
    struct trace t;

    decode_ways(in, len, s, &t);
    cr_assert_str_eq(t.text, want, "%s", name);
    trace_free(&t);
}

/* ---- building input ---- */

struct wire {
    uint8_t *p;
    size_t n, cap;
};

static void wire_bytes(struct wire *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
    }
    memcpy(w->p + w->n, p, n);
    w->n += n;
}

/* A frame built with the encoder, payload masked with `mask` (NULL: unmasked). */
static void wire_frame(struct wire *w, bool fin, bool rsv1, uint8_t op, const void *payload,
                       size_t len, const uint8_t *mask)
{
    uint8_t hdr[14];
    size_t start;

    wire_bytes(w, hdr, ws_frame_header_encode(hdr, fin, rsv1, op, len, mask));
    start = w->n;
    wire_bytes(w, payload, len);
    if (mask)
        ws_mask(w->p + start, len, mask, 0);
}

static const uint8_t mask_a[4] = {0x37, 0xfa, 0x21, 0x3d};
static const uint8_t mask_b[4] = {0xde, 0xad, 0xbe, 0xef};

/* A masked frame with a string payload. */
static void wire_str(struct wire *w, bool fin, uint8_t op, const char *s)
{
    wire_frame(w, fin, false, op, s, strlen(s), mask_a);
}

/* ---- the protocol-violation table ---- */

/* A zero mask keeps the payloads readable in the table; masking is tested separately. */
#define MZ   "\x00\x00\x00\x00"
#define B(s) s, sizeof(s) - 1

struct dec_case {
    const char *name;
    const char *in;
    size_t len;
    const struct settings *s;
    const char *trace;
};

static const struct settings max5 = {true, false, 5};
static const struct settings max5_deflate = {true, true, 5};

static const struct dec_case dec_cases[] = {
    {"masked text", B("\x81\x85" MZ "Hello"), &server, "H1/1:5 'Hello' E"},
    {"empty text", B("\x81\x80" MZ), &server, "H1/1:0 E"},
    {"empty text unmasked, client", B("\x81\x00"), &client, "H1/1:0 E"},
    {"unmasked text, client", B("\x81\x05Hello"), &client, "H1/1:5 'Hello' E"},
    {"masked text, client", B("\x81\x82" MZ "hi"), &client, "H1/1:2 'hi' E"},
    {"truncated header", B("\x81"), &server, ""},
    {"truncated mask", B("\x81\x85\x00\x00"), &server, ""},
    {"truncated payload", B("\x82\x85" MZ "Hel"), &server, "H2/2:5 'Hel'"},
    {"two frames", B("\x81\x81" MZ "a\x82\x81" MZ "b"), &server, "H1/1:1 'a' E H2/2:1 'b' E"},

    /* masking */
    {"unmasked client frame", B("\x81\x05Hello"), &server, "!1002@2"},
    {"unmasked control frame", B("\x89\x00"), &server, "!1002@2"},
    {"unmasked after a good frame", B("\x81\x80" MZ "\x81\x00"), &server, "H1/1:0 E !1002@8"},

    /* reserved bits */
    {"RSV2", B("\xa1\x80" MZ), &server, "!1002@1"},
    {"RSV3", B("\x91\x80" MZ), &server, "!1002@1"},
    {"RSV2 with deflate", B("\xa1\x80" MZ), &server_deflate, "!1002@1"},
    {"RSV1 without deflate", B("\xc1\x80" MZ), &server, "!1002@1"},
    {"RSV1 on a first frame", B("\xc1\x80" MZ), &server_deflate, "H1r/1:0 E"},
    {"RSV1 on a fragmented first frame", B("\x42\x81" MZ "a\x80\x81" MZ "b"), &server_deflate,
     "H2+r/2:1 'a' E H0/2:1 'b' E"},
    {"RSV1 on a continuation", B("\x41\x80" MZ "\xc0\x80" MZ), &server_deflate,
     "H1+r/1:0 E !1002@7"},
    {"RSV1 on a ping", B("\xc9\x80" MZ), &server_deflate, "!1002@1"},
    {"RSV1 on a close", B("\xc8\x80" MZ), &server_deflate, "!1002@1"},
    {"RSV1 on a ping inside a message", B("\x41\x80" MZ "\xc9\x80" MZ), &server_deflate,
     "H1+r/1:0 E !1002@7"},

    /* control frames */
    {"ping 125", B("\x89\xfd" MZ), &server, "H9:125"},
    {"ping 126", B("\x89\xfe\x00\x7e" MZ), &server, "!1002@2"},
    {"close 127", B("\x88\xff\x00\x00\x00\x00\x00\x01\x00\x00"), &server, "!1002@2"},
    {"fragmented ping", B("\x09\x80" MZ), &server, "!1002@1"},
    {"fragmented pong", B("\x0a\x80" MZ), &server, "!1002@1"},
    {"fragmented close", B("\x08\x80" MZ), &server, "!1002@1"},
    {"close with code", B("\x88\x82" MZ "\x03\xe8"), &server, "H8:2 '\\x03\\xe8' E"},
    {"pong", B("\x8a\x80" MZ), &server, "Ha:0 E"},

    /* lengths */
    {"16-bit length 125", B("\x82\xfe\x00\x7d" MZ), &server, "!1002@4"},
    {"16-bit length 0", B("\x82\xfe\x00\x00" MZ), &server, "!1002@4"},
    {"16-bit length 126", B("\x82\xfe\x00\x7e" MZ), &server, "H2/2:126"},
    {"64-bit length 0", B("\x82\xff\x00\x00\x00\x00\x00\x00\x00\x00" MZ), &server, "!1002@10"},
    {"64-bit length 125", B("\x82\xff\x00\x00\x00\x00\x00\x00\x00\x7d" MZ), &server, "!1002@10"},
    {"64-bit length 65535", B("\x82\xff\x00\x00\x00\x00\x00\x00\xff\xff" MZ), &server, "!1002@10"},
    {"64-bit length 65536", B("\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00" MZ), &server,
     "H2/2:65536"},
    {"64-bit length 2^32+5", B("\x82\xff\x00\x00\x00\x01\x00\x00\x00\x05" MZ "abc"), &server,
     "H2/2:4294967301 'abc'"},
    {"64-bit length 2^63-1", B("\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff" MZ), &server,
     "H2/2:9223372036854775807"},
    {"64-bit length 2^63", B("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" MZ), &server, "!1002@10"},
    {"64-bit length all ones", B("\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff" MZ), &server,
     "!1002@10"},

    /* fragmentation */
    {"continuation without a message", B("\x80\x80" MZ), &server, "!1002@1"},
    {"non-final continuation without a message", B("\x00\x80" MZ), &server, "!1002@1"},
    {"continuation after a finished message", B("\x81\x80" MZ "\x80\x80" MZ), &server,
     "H1/1:0 E !1002@7"},
    {"text inside a fragmented message", B("\x01\x81" MZ "a\x81\x81" MZ "b"), &server,
     "H1+/1:1 'a' E !1002@8"},
    {"binary inside a fragmented message", B("\x01\x81" MZ "a\x02\x81" MZ "b"), &server,
     "H1+/1:1 'a' E !1002@8"},
    {"three fragments", B("\x02\x81" MZ "a\x00\x81" MZ "b\x80\x81" MZ "c"), &server,
     "H2+/2:1 'a' E H0+/2:1 'b' E H0/2:1 'c' E"},
    {"controls between fragments",
     B("\x01\x81" MZ "a\x89\x82" MZ "hi\x8a\x80" MZ "\x88\x82" MZ "\x03\xe8\x80\x81" MZ "b"),
     &server, "H1+/1:1 'a' E H9:2 'hi' E Ha:0 E H8:2 '\\x03\\xe8' E H0/1:1 'b' E"},
    {"new message after a fragmented one", B("\x01\x81" MZ "a\x80\x81" MZ "b\x82\x81" MZ "c"),
     &server, "H1+/1:1 'a' E H0/1:1 'b' E H2/2:1 'c' E"},

    /* max_message */
    {"message of exactly max", B("\x81\x85" MZ "Hello"), &max5, "H1/1:5 'Hello' E"},
    {"message over max", B("\x81\x86" MZ "Hello!"), &max5, "!1009@6"},
    {"message over max, 16-bit length", B("\x82\xfe\x01\x00" MZ "abc"), &max5, "!1009@8"},
    {"message over max, 64-bit length", B("\x82\xff\x00\x00\x00\x01\x00\x00\x00\x00" MZ "abc"),
     &max5, "!1009@14"},
    {"fragments of exactly max", B("\x01\x83" MZ "abc\x80\x82" MZ "de"), &max5,
     "H1+/1:3 'abc' E H0/1:2 'de' E"},
    {"fragments over max", B("\x01\x83" MZ "abc\x80\x83" MZ "def"), &max5,
     "H1+/1:3 'abc' E !1009@15"},
    {"empty fragment then over max", B("\x01\x80" MZ "\x00\x85" MZ "abcde\x80\x81" MZ "f"), &max5,
     "H1+/1:0 E H0+/1:5 'abcde' E !1009@23"},
    {"controls do not count", B("\x01\x83" MZ "abc\x89\x85" MZ "pingy\x80\x82" MZ "de"), &max5,
     "H1+/1:3 'abc' E H9:5 'pingy' E H0/1:2 'de' E"},
    {"control longer than max", B("\x89\x8a" MZ "0123456789"), &max5, "H9:10 '0123456789' E"},
    {"each message counts alone", B("\x81\x85" MZ "Hello\x82\x85" MZ "World"), &max5,
     "H1/1:5 'Hello' E H2/2:5 'World' E"},
    {"compressed message over max", B("\xc1\x86" MZ "abcdef"), &max5_deflate, "!1009@6"},
};

Test(ws_frame, decoder_table)
{
    size_t i;

    for (i = 0; i < sizeof(dec_cases) / sizeof(dec_cases[0]); i++) {
        const struct dec_case *c = &dec_cases[i];

        expect_trace(c->in, c->len, c->s, c->trace, c->name);
    }
}

Test(ws_frame, rejects_reserved_opcodes)
{
    unsigned op;

    for (op = 0; op < 16; op++) {
        uint8_t in[6] = {(uint8_t)(0x80 | op), 0x80, 0, 0, 0, 0};
        bool reserved = (op >= 3 && op <= 7) || op >= 11;

        if (reserved) {
            expect_trace(in, sizeof(in), &server, "!1002@1", "reserved opcode");
        } else if (op != WS_OP_CONT) {
            char want[32];

            if (op < 8)
                snprintf(want, sizeof(want), "H%x/%x:0 E", op, op);
            else
                snprintf(want, sizeof(want), "H%x:0 E", op);
            expect_trace(in, sizeof(in), &server, want, "known opcode");
        }
    }
}

/* The reason for every error is set, short and static. */
Test(ws_frame, every_error_has_a_reason)
{
    static const uint8_t in[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    struct ws_decoder d;
    size_t used, n;
    uint8_t buf[sizeof(in)], *out;

    memcpy(buf, in, sizeof(in));
    ws_decoder_init(&d, true, false, 0);
    cr_assert_eq(ws_decode(&d, buf, sizeof(buf), &used, &out, &n), -WS_CLOSE_PROTOCOL);
    cr_assert_not_null(d.reason);
    cr_assert_gt(strlen(d.reason), 0);
    cr_assert_lt(strlen(d.reason), 64);
}

/* ---- lengths, masking, the encoder ---- */

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len + 1);
    size_t i;

    for (i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
    return p;
}

/* One frame of each length form, masked by a client and decoded back to the same bytes. */
Test(ws_frame, length_forms_round_trip)
{
    static const size_t lens[] = {0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 70001};
    static const size_t hdr[] = {6, 6, 6, 6, 6, 6, 8, 8, 8, 8, 14, 14};
    size_t i;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct wire w = {0};
        uint8_t *payload = pattern(lens[i], (unsigned)i);
        struct trace t;
        char want[64];

        cr_assert_eq(ws_frame_header_size(lens[i], true), hdr[i]);
        cr_assert_eq(ws_frame_header_size(lens[i], false), hdr[i] - 4);
        wire_frame(&w, true, false, WS_OP_BINARY, payload, lens[i], mask_b);
        cr_assert_eq(w.n, hdr[i] + lens[i]);
        decode_ways(w.p, w.n, &server, &t);
        if (lens[i] == 0)
            snprintf(want, sizeof(want), "H2/2:0 E");
        else if (lens[i] <= 32)
            snprintf(want, sizeof(want), "H2/2:%zu '", lens[i]);
        else
            snprintf(want, sizeof(want), "H2/2:%zu [%zu] E", lens[i], lens[i]);
        cr_assert(strncmp(t.text, want, strlen(want)) == 0, "%s vs %s", t.text, want);
        cr_assert_eq(t.dlen, lens[i]);
        cr_assert(memcmp(t.data, payload, lens[i]) == 0, "length %zu: payload differs", lens[i]);
        trace_free(&t);
        free(payload);
        free(w.p);
    }
}

/* Header fields survive encode then decode, for every opcode, FIN and RSV1 the decoder takes. */
Test(ws_frame, encoder_round_trip)
{
    static const uint8_t ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    static const uint64_t lens[] = {0, 5, 125, 126, 65535, 65536, (uint64_t)1 << 40};
    size_t i, j;
    int fin, rsv1;

    for (i = 0; i < sizeof(ops); i++)
        for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++)
            for (fin = 0; fin < 2; fin++)
                for (rsv1 = 0; rsv1 < 2; rsv1++) {
                    struct ws_decoder d;
                    uint8_t hdr[14], *out;
                    size_t n = ws_frame_header_encode(hdr, fin, rsv1, ops[i], lens[j], mask_a);
                    size_t used, out_len;
                    int rc;
                    bool ok = ops[i] < 8 || (fin && !rsv1 && lens[j] <= 125);

                    cr_assert_eq(n, ws_frame_header_size(lens[j], true));
                    ws_decoder_init(&d, true, true, 0);
                    rc = ws_decode(&d, hdr, n, &used, &out, &out_len);
                    if (!ok) {
                        cr_assert_eq(rc, -WS_CLOSE_PROTOCOL);
                        continue;
                    }
                    cr_assert_eq(rc, WS_DEC_HEADER);
                    cr_assert_eq(used, n);
                    cr_assert_eq(d.frame.fin, (bool)fin);
                    cr_assert_eq(d.frame.rsv1, (bool)rsv1);
                    cr_assert_eq(d.frame.opcode, ops[i]);
                    cr_assert(d.frame.masked && memcmp(d.frame.mask, mask_a, 4) == 0);
                    cr_assert_eq(d.frame.len, lens[j]);
                }
}

/* RFC 6455 section 5.7 examples, byte for byte. */
Test(ws_frame, encoder_rfc_examples)
{
    uint8_t out[14];

    cr_assert_eq(ws_frame_header_encode(out, true, false, WS_OP_TEXT, 5, NULL), 2);
    cr_assert(memcmp(out, "\x81\x05", 2) == 0);
    cr_assert_eq(ws_frame_header_encode(out, true, false, WS_OP_TEXT, 5, mask_a), 6);
    cr_assert(memcmp(out, "\x81\x85\x37\xfa\x21\x3d", 6) == 0);
    cr_assert_eq(ws_frame_header_encode(out, false, false, WS_OP_TEXT, 3, NULL), 2);
    cr_assert(memcmp(out, "\x01\x03", 2) == 0);
    cr_assert_eq(ws_frame_header_encode(out, true, false, WS_OP_CONT, 2, NULL), 2);
    cr_assert(memcmp(out, "\x80\x02", 2) == 0);
    cr_assert_eq(ws_frame_header_encode(out, true, false, WS_OP_PING, 5, NULL), 2);
    cr_assert(memcmp(out, "\x89\x05", 2) == 0);
    cr_assert_eq(ws_frame_header_encode(out, true, false, WS_OP_BINARY, 256, NULL), 4);
    cr_assert(memcmp(out, "\x82\x7e\x01\x00", 4) == 0);
    cr_assert_eq(ws_frame_header_encode(out, true, false, WS_OP_BINARY, 65536, NULL), 10);
    cr_assert(memcmp(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
    cr_assert_eq(ws_frame_header_encode(out, true, true, WS_OP_TEXT, 0, NULL), 2);
    cr_assert(memcmp(out, "\xc1\x00", 2) == 0);
}

Test(ws_frame, rfc_masked_hello)
{
    uint8_t p[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};

    ws_mask(p, sizeof(p), mask_a, 0);
    cr_assert(memcmp(p, "Hello", 5) == 0);
    expect_trace("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11, &server, "H1/1:5 'Hello' E",
                 "RFC masked Hello");
}

/* ws_mask against a byte-at-a-time reference, at every alignment, offset and short length. */
Test(ws_frame, mask_matches_reference)
{
    uint8_t buf[96], ref[96];
    size_t align, len, i;
    uint64_t offset;

    for (align = 0; align < 8; align++)
        for (len = 0; len + align <= sizeof(buf); len++)
            for (offset = 0; offset < 6; offset++) {
                uint64_t off = offset == 5 ? ((uint64_t)1 << 33) + 3 : offset;

                for (i = 0; i < sizeof(buf); i++)
                    buf[i] = ref[i] = (uint8_t)(i * 13 + 1);
                for (i = 0; i < len; i++)
                    ref[align + i] ^= mask_b[(off + i) & 3];
                ws_mask(buf + align, len, mask_b, off);
                cr_assert(memcmp(buf, ref, sizeof(buf)) == 0, "align %zu len %zu off %llu", align,
                          len, (unsigned long long)off);
            }
}

/* Payload spans split anywhere reassemble to the original (the unmask offset is carried). */
Test(ws_frame, masked_payload_reassembles)
{
    size_t len;

    for (len = 0; len <= 70; len++) {
        uint8_t *payload = pattern(len, 99);
        struct wire w = {0};
        struct trace t;

        wire_frame(&w, true, false, WS_OP_BINARY, payload, len, mask_b);
        decode_ways(w.p, w.n, &server, &t);
        cr_assert_eq(t.dlen, len);
        cr_assert(memcmp(t.data, payload, len) == 0);
        trace_free(&t);
        free(payload);
        free(w.p);
    }
}

/* A random stream of valid messages (fragmented, with controls between the fragments, some
 * compressed) built with the encoder decodes to exactly the payload that went in. */
Test(ws_frame, random_valid_stream)
{
    struct wire w = {0}, expect = {0};
    uint8_t buf[300], mask[4];
    int msg, frag, nfrag, k;
    size_t len, i;
    struct trace t;

    for (msg = 0; msg < 12; msg++) {
        nfrag = 1 + (int)(rng() % 4);
        for (frag = 0; frag < nfrag; frag++) {
            len = rng() % (frag == 1 ? 300 : 40);
            for (i = 0; i < len; i++)
                buf[i] = (uint8_t)rng();
            for (k = 0; k < 4; k++)
                mask[k] = (uint8_t)rng();
            wire_frame(&w, frag == nfrag - 1, frag == 0 && msg % 3 == 0,
                       frag ? WS_OP_CONT : (msg & 1 ? WS_OP_TEXT : WS_OP_BINARY), buf, len, mask);
            wire_bytes(&expect, buf, len);
            if (rng() % 2) {
                wire_frame(&w, true, false, WS_OP_PING, "ping", 4, mask);
                wire_bytes(&expect, "ping", 4);
            }
        }
    }
    decode_ways(w.p, w.n, &server_deflate, &t);
    cr_assert_eq(t.err, 0, "%s", t.text);
    cr_assert_eq(t.consumed, w.n);
    cr_assert_eq(t.dlen, expect.n);
    cr_assert(memcmp(t.data, expect.p, expect.n) == 0);
    trace_free(&t);
    free(w.p);
    free(expect.p);
}

/* The message state follows a fragmented message through controls, as the connection sees it. */
Test(ws_frame, message_state_between_fragments)
{
    struct wire w = {0};
    struct trace t;

    wire_str(&w, false, WS_OP_TEXT, "Hel");
    wire_str(&w, true, WS_OP_PING, "p");
    wire_str(&w, false, WS_OP_CONT, "lo, ");
    wire_str(&w, true, WS_OP_PONG, "");
    wire_str(&w, true, WS_OP_CONT, "world");
    wire_str(&w, true, WS_OP_CLOSE, "\x03\xe8");
    decode_ways(w.p, w.n, &server, &t);
    cr_assert_str_eq(t.text, "H1+/1:3 'Hel' E H9:1 'p' E H0+/1:4 'lo, ' E Ha:0 E H0/1:5 'world' E "
                             "H8:2 '\\x03\\xe8' E");
    trace_free(&t);
    free(w.p);
}

/* max_message is checked before any payload of the offending frame is returned, and settings
 * may change between frames. */
Test(ws_frame, max_message_before_payload)
{
    struct ws_decoder d;
    uint8_t in[] = {0x82, 0xfe, 0x04, 0x00, 0, 0, 0, 0, 'x', 'x'};
    size_t used, n;
    uint8_t *out;

    ws_decoder_init(&d, true, false, 1023);
    cr_assert_eq(ws_decode(&d, in, sizeof(in), &used, &out, &n), -WS_CLOSE_TOO_BIG);
    cr_assert_eq(used, 8);
    cr_assert_null(out);
    cr_assert_not_null(d.reason);

    ws_decoder_init(&d, true, false, 1024);
    cr_assert_eq(ws_decode(&d, in, sizeof(in), &used, &out, &n), WS_DEC_HEADER);
    cr_assert_eq(d.message_len, 1024);
    d.max_message = 0; /* no limit from here on */
    cr_assert_eq(ws_decode(&d, in + used, sizeof(in) - used, &used, &out, &n), WS_DEC_PAYLOAD);
    cr_assert_eq(n, 2);
}

/* An empty input in any state reports nothing, except a pending end of frame. */
Test(ws_frame, empty_input)
{
    struct ws_decoder d;
    uint8_t in[] = {0x81, 0x80, 0, 0, 0, 0};
    size_t used, n;
    uint8_t *out;

    ws_decoder_init(&d, true, false, 0);
    cr_assert_eq(ws_decode(&d, NULL, 0, &used, &out, &n), WS_DEC_AGAIN);
    cr_assert_eq(ws_decode(&d, in, sizeof(in), &used, &out, &n), WS_DEC_HEADER);
    cr_assert_eq(ws_decode(&d, NULL, 0, &used, &out, &n), WS_DEC_END);
    cr_assert_eq(ws_decode(&d, NULL, 0, &used, &out, &n), WS_DEC_AGAIN);
}

/* ---- close frames ---- */

struct close_case {
    const char *name;
    const char *in;
    size_t len;
    int rc;
    unsigned code;
    const char *reason;
};

static const struct close_case close_cases[] = {
    {"empty", B(""), 0, WS_CLOSE_NO_STATUS, ""},
    {"one byte", B("\x03"), -WS_CLOSE_PROTOCOL, 0, NULL},
    {"1000", B("\x03\xe8"), 0, 1000, ""},
    {"1000 with reason",
     B("\x03\xe8"
       "bye"),
     0, 1000, "bye"},
    {"1001 with UTF-8 reason", B("\x03\xe9\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 0, 1001,
     "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"},
    {"4999 with 123-byte reason",
     B("\x13\x87"
       "0123456789012345678901234567890123456789012345678901234567890123456789"
       "01234567890123456789012345678901234567890123456789012"),
     0, 4999,
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "01234567890123456789012345678901234567890123456789012"},
    {"invalid UTF-8 reason", B("\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
     -WS_CLOSE_PROTOCOL, 0, NULL},
    {"truncated UTF-8 reason",
     B("\x03\xe8"
       "ab\xce"),
     -WS_CLOSE_PROTOCOL, 0, NULL},
    {"reason with FF", B("\x03\xe8\xff"), -WS_CLOSE_PROTOCOL, 0, NULL},
    {"valid code, NUL reason", B("\x03\xe8\x00"), 0, 1000, NULL},
};

Test(ws_frame, close_parse_table)
{
    size_t i;

    for (i = 0; i < sizeof(close_cases) / sizeof(close_cases[0]); i++) {
        const struct close_case *c = &close_cases[i];
        const uint8_t *reason = NULL;
        unsigned code = 0;
        size_t rlen = 99;
        int rc = ws_close_parse((const uint8_t *)c->in, c->len, &code, &reason, &rlen);

        cr_assert_eq(rc, c->rc, "%s: rc %d", c->name, rc);
        if (rc < 0)
            continue;
        cr_assert_eq(code, c->code, "%s: code %u", c->name, code);
        if (c->reason) {
            cr_assert_eq(rlen, strlen(c->reason), "%s", c->name);
            cr_assert(rlen == 0 || memcmp(reason, c->reason, rlen) == 0, "%s", c->name);
        } else {
            cr_assert_eq(rlen, c->len - 2, "%s", c->name);
            cr_assert(reason == (const uint8_t *)c->in + 2, "%s", c->name);
        }
    }
}

Test(ws_frame, close_codes)
{
    /* 1012-1014 are registered with IANA (service restart, try again later, bad gateway). */
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 65535};
    uint8_t p[4] = {0, 0, 'o', 'k'};
    const uint8_t *reason;
    unsigned code, c;
    size_t i, rlen;

    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        p[0] = (uint8_t)(valid[i] >> 8);
        p[1] = (uint8_t)valid[i];
        cr_assert(ws_close_code_valid(valid[i]), "%u", valid[i]);
        cr_assert_eq(ws_close_parse(p, 4, &code, &reason, &rlen), 0, "%u", valid[i]);
        cr_assert_eq(code, valid[i]);
        cr_assert(rlen == 2 && reason == p + 2);
    }
    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        p[0] = (uint8_t)(invalid[i] >> 8);
        p[1] = (uint8_t)invalid[i];
        cr_assert(!ws_close_code_valid(invalid[i]), "%u", invalid[i]);
        cr_assert_eq(ws_close_parse(p, 2, &code, &reason, &rlen), -WS_CLOSE_PROTOCOL, "%u",
                     invalid[i]);
    }
    /* The whole range against the documented sets. */
    for (c = 0; c < 70000; c++) {
        int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c < 5000);

        cr_assert_eq(ws_close_code_valid(c), want, "%u", c);
    }
}
