/*
 * test_ws_deflate.c - permessage-deflate negotiation, and the deflater and inflater.
 *
 * Negotiation is checked against a table of offers. Compression is checked by round trips through
 * ws_deflate_message and ws_inflate over several sizes, both kinds of data (incompressible and
 * compressible) and every window size, with the compressed message cut into several frames.
 * Client-side payloads (bombs, context takeover, BFINAL) are made with zlib directly.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dmsg.h"
#include "err.h"
#include "ws_deflate.h"

/* ---- negotiation ---- */

struct nego_case {
    const char *offers;
    int want_rc;
    const char *want_resp; /* when want_rc == 1 */
    int smwb, cmwb;        /* expected window bits when want_rc == 1 */
};

#define PMD "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static const struct nego_case nego_cases[] = {
    {"permessage-deflate", 1, PMD, 15, 15},
    {"permessage-deflate; server_no_context_takeover", 1, PMD, 15, 15},
    {"permessage-deflate; client_no_context_takeover", 1, PMD, 15, 15},
    {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1, PMD, 15, 15},
    {"permessage-deflate; server_max_window_bits=10", 1, PMD "; server_max_window_bits=10", 10, 15},
    {"permessage-deflate; server_max_window_bits=9", 1, PMD "; server_max_window_bits=9", 9, 15},
    {"permessage-deflate; server_max_window_bits=15", 1, PMD "; server_max_window_bits=15", 15, 15},
    {"permessage-deflate; client_max_window_bits", 1, PMD "; client_max_window_bits=15", 15, 15},
    {"permessage-deflate; client_max_window_bits=8", 1, PMD "; client_max_window_bits=8", 15, 8},
    {"permessage-deflate; client_max_window_bits=12", 1, PMD "; client_max_window_bits=12", 15, 12},
    {"permessage-deflate; client_max_window_bits=11; server_max_window_bits=13", 1,
     PMD "; server_max_window_bits=13; client_max_window_bits=11", 13, 11},
    /* Quoted-string values, unescaped before they are read. */
    {"permessage-deflate; server_max_window_bits=\"10\"", 1, PMD "; server_max_window_bits=10", 10,
     15},
    {"permessage-deflate; client_max_window_bits=\"1\\2\"", 1, PMD "; client_max_window_bits=12",
     15, 12},
    /* Whitespace, case, empty elements and other extensions. */
    {"  permessage-deflate ;client_max_window_bits = 10 ", 1, PMD "; client_max_window_bits=10", 15,
     10},
    {"Permessage-Deflate; Client_Max_Window_Bits=9", 1, PMD "; client_max_window_bits=9", 15, 9},
    {" , ,permessage-deflate", 1, PMD, 15, 15},
    {"x-webkit-deflate-frame, permessage-deflate", 1, PMD, 15, 15},
    {"foo; bar=\"a,b;c\", permessage-deflate", 1, PMD, 15, 15},
    /* Bad values. */
    {"permessage-deflate; server_max_window_bits=7", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=16", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=abc", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=010", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=+9", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"\"", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=100000000000000000009", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=8", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=7", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=16", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=abc", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=\"abc\"", 0, NULL, 0, 0},
    {"permessage-deflate; server_no_context_takeover=1", 0, NULL, 0, 0},
    {"permessage-deflate; client_no_context_takeover=\"\"", 0, NULL, 0, 0},
    /* Duplicates and unknown parameters. */
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, NULL, 0, 0},
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=9", 0, NULL, 0, 0},
    {"permessage-deflate; foo", 0, NULL, 0, 0},
    {"permessage-deflate; foo=1", 0, NULL, 0, 0},
    /* Malformed syntax. */
    {"permessage-deflate; client_max_window_bits=\"10", 0, NULL, 0, 0},
    {"permessage-deflate; ", 0, NULL, 0, 0},
    {"permessage-deflate x", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=", 0, NULL, 0, 0},
    {"\"permessage-deflate\"", 0, NULL, 0, 0},
    {"", 0, NULL, 0, 0},
    {" , ", 0, NULL, 0, 0},
    {"x-webkit-deflate-frame", 0, NULL, 0, 0},
    {"permessage-deflate-x", 0, NULL, 0, 0},
    /* A declined offer, then the client's fallback. */
    {"permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits", 1,
     PMD "; client_max_window_bits=15", 15, 15},
    {"permessage-deflate; foo, permessage-deflate; server_max_window_bits=12", 1,
     PMD "; server_max_window_bits=12", 12, 15},
    {"permessage-deflate; =3, permessage-deflate", 1, PMD, 15, 15},
    {"permessage-deflate; a=\"x,y\", permessage-deflate", 1, PMD, 15, 15},
    {"permessage-deflate; client_max_window_bits=\"9, permessage-deflate", 0, NULL, 0, 0},
};

Test(ws_deflate, negotiation_table)
{
    struct ws_deflate_config cfg = {.enabled = true};

    for (size_t i = 0; i < sizeof(nego_cases) / sizeof(nego_cases[0]); i++) {
        const struct nego_case *c = &nego_cases[i];
        struct ws_deflate_params p;
        char resp[160] = "";

        memset(&p, 0xaa, sizeof(p));
        int rc = ws_deflate_negotiate(c->offers, strlen(c->offers), &cfg, &p, resp, sizeof(resp));
        cr_assert_eq(rc, c->want_rc, "offer '%s': rc %d, want %d", c->offers, rc, c->want_rc);
        if (rc != 1)
            continue;
        cr_assert_str_eq(resp, c->want_resp, "offer '%s'", c->offers);
        cr_assert(p.server_no_context_takeover);
        cr_assert(p.client_no_context_takeover);
        cr_assert_eq(p.server_max_window_bits, c->smwb, "offer '%s'", c->offers);
        cr_assert_eq(p.client_max_window_bits, c->cmwb, "offer '%s'", c->offers);
    }
}

Test(ws_deflate, negotiation_reads_only_len_bytes)
{
    struct ws_deflate_config cfg = {.enabled = true};
    struct ws_deflate_params p;
    char resp[160];
    const char *s = "permessage-deflate; client_max_window_bits=10";

    /* Cut after "=1": the value reads as 1, which is invalid. */
    cr_assert_eq(ws_deflate_negotiate(s, strlen(s) - 1, &cfg, &p, resp, sizeof(resp)), 0);
    cr_assert_eq(ws_deflate_negotiate(s, 18, &cfg, &p, resp, sizeof(resp)), 1);
    cr_assert_eq(ws_deflate_negotiate(NULL, 0, &cfg, &p, resp, sizeof(resp)), 0);
}

Test(ws_deflate, negotiation_disabled)
{
    struct ws_deflate_config cfg = {.enabled = false};
    struct ws_deflate_params p;
    char resp[160];

    cr_assert_eq(ws_deflate_negotiate("permessage-deflate", 18, &cfg, &p, resp, sizeof(resp)), 0);
    cr_assert_eq(ws_deflate_negotiate("permessage-deflate", 18, NULL, &p, resp, sizeof(resp)), 0);
}

Test(ws_deflate, negotiation_allows_client_context_takeover)
{
    struct ws_deflate_config cfg = {.enabled = true, .allow_client_context_takeover = true};
    struct ws_deflate_params p;
    char resp[160];
    const char *s = "permessage-deflate; client_no_context_takeover; client_max_window_bits";

    cr_assert_eq(ws_deflate_negotiate(s, strlen(s), &cfg, &p, resp, sizeof(resp)), 1);
    cr_assert_str_eq(resp, "permessage-deflate; server_no_context_takeover; "
                           "client_max_window_bits=15");
    cr_assert(p.server_no_context_takeover);
    cr_assert(!p.client_no_context_takeover);
}

Test(ws_deflate, negotiation_response_too_small)
{
    struct ws_deflate_config cfg = {.enabled = true};
    struct ws_deflate_params p;
    char resp[160];
    size_t need = strlen(PMD) + 1;

    cr_assert_eq(ws_deflate_negotiate("permessage-deflate", 18, &cfg, &p, resp, need - 1),
                 HERALD_ELIMIT);
    cr_assert_eq(ws_deflate_negotiate("permessage-deflate", 18, &cfg, &p, resp, need), 1);
    cr_assert_str_eq(resp, PMD);
}

Test(ws_deflate, longest_response_fits_handshake_buffer)
{
    struct ws_deflate_config cfg = {.enabled = true};
    struct ws_deflate_params p;
    char resp[160];
    const char *s = "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10";

    cr_assert_eq(ws_deflate_negotiate(s, strlen(s), &cfg, &p, resp, sizeof(resp)), 1);
}

/* ---- data ---- */

static unsigned long long rng_state = 88172645463325252ull;

static uint8_t rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)rng_state;
}

/* Incompressible bytes, or JSON-like text that compresses well. */
static uint8_t *make_data(size_t len, bool compressible)
{
    uint8_t *d = malloc(len + 1);
    size_t i = 0;

    cr_assert(d);
    while (i < len) {
        if (!compressible) {
            d[i++] = rng_byte();
            continue;
        }
        char chunk[96];
        int n = snprintf(chunk, sizeof(chunk), "{\"topic\":\"prices\",\"seq\":%zu,\"v\":%u},", i,
                         rng_byte() % 16);
        for (int k = 0; k < n && i < len; k++)
            d[i++] = (uint8_t)chunk[k];
    }
    return d;
}

/* The content of a dmsg, malloc'ed. */
static uint8_t *dmsg_bytes(const struct dmsg *dm)
{
    uint8_t *b = malloc(dmsg_len(dm) + 1);

    cr_assert(b);
    cr_assert_eq(dmsg_copy(dm, 0, b, dmsg_len(dm)), dmsg_len(dm));
    return b;
}

/* Compresses like a client would: raw deflate with Z_SYNC_FLUSH (or Z_FINISH), tail removed when
 * present. `zs` may carry context from earlier messages. Returns the length in out. */
static size_t zlib_compress(z_stream *zs, const uint8_t *in, size_t len, int flush, uint8_t *out,
                            size_t cap)
{
    zs->next_in = (Bytef *)in;
    zs->avail_in = (uInt)len;
    zs->next_out = out;
    zs->avail_out = (uInt)cap;
    int rc = deflate(zs, flush);
    cr_assert(rc == Z_OK || rc == Z_STREAM_END);
    cr_assert_eq(zs->avail_in, 0);
    cr_assert_gt(zs->avail_out, 0);
    size_t n = cap - zs->avail_out;
    if (n >= 4 && memcmp(out + n - 4, "\x00\x00\xff\xff", 4) == 0)
        n -= 4;
    return n;
}

static void client_deflater(z_stream *zs, int bits, int level)
{
    memset(zs, 0, sizeof(*zs));
    cr_assert_eq(deflateInit2(zs, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
}

static struct ws_deflate_params params_for(int client_bits, bool no_context)
{
    struct ws_deflate_params p = {
        .server_no_context_takeover = true,
        .client_no_context_takeover = no_context,
        .server_max_window_bits = 15,
        .client_max_window_bits = (uint8_t)client_bits,
    };
    return p;
}

/* Inflates a message cut into `nframes` frames at pseudo-random points (frames may be empty). */
static int inflate_frames(struct ws_inflater *inf, const uint8_t *in, size_t len, int nframes,
                          struct dmsg *out, size_t max_out)
{
    size_t pos = 0;

    for (int f = 0; f < nframes; f++) {
        bool fin = f == nframes - 1;
        size_t n = fin ? len - pos : (len - pos) * (rng_byte() % 128) / 256;
        int rc = ws_inflate(inf, in + pos, n, fin, out, max_out);
        if (rc != 0)
            return rc;
        pos += n;
    }
    return 0;
}

/* ---- round trips ---- */

static void round_trip(size_t len, bool compressible, int bits, int nframes)
{
    uint8_t *in = make_data(len, compressible);
    size_t cap = len + len / 8 + 64, clen = 0;
    uint8_t *c = malloc(cap);
    struct ws_deflate_params p = params_for(bits, true);
    struct ws_inflater inf;
    struct dmsg out;

    cr_assert_eq(ws_deflate_message(in, len, bits, c, cap, &clen), 0, "len %zu bits %d", len, bits);
    if (compressible && len >= 1000)
        cr_assert_lt(clen, len / 2, "len %zu bits %d: %zu bytes", len, bits, clen);
    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 4u << 20);
    cr_assert_eq(inflate_frames(&inf, c, clen, nframes, &out, 2u << 20), 0, "len %zu bits %d", len,
                 bits);
    cr_assert_eq(dmsg_len(&out), len, "len %zu bits %d: got %zu", len, bits, dmsg_len(&out));
    uint8_t *back = dmsg_bytes(&out);
    cr_assert(memcmp(back, in, len) == 0, "len %zu bits %d", len, bits);
    cr_assert(!inf.ready);
    free(back);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    free(c);
    free(in);
}

Test(ws_deflate, round_trip_sizes_and_windows)
{
    static const size_t sizes[] = {0, 1, 100, 64 * 1024, 1024 * 1024};

    for (int bits = 9; bits <= 15; bits++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            round_trip(sizes[s], false, bits, 1);
            round_trip(sizes[s], true, bits, 4);
        }
    }
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, round_trip_byte_frames)
{
    uint8_t *in = make_data(3000, true);
    uint8_t c[4096];
    size_t clen;
    struct ws_deflate_params p = params_for(15, true);
    struct ws_inflater inf;
    struct dmsg out;

    cr_assert_eq(ws_deflate_message(in, 3000, 15, c, sizeof(c), &clen), 0);
    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    for (size_t i = 0; i < clen; i++)
        cr_assert_eq(ws_inflate(&inf, c + i, 1, false, &out, 1u << 20), 0);
    cr_assert_eq(ws_inflate(&inf, NULL, 0, true, &out, 1u << 20), 0);
    uint8_t *back = dmsg_bytes(&out);
    cr_assert_eq(dmsg_len(&out), 3000);
    cr_assert(memcmp(back, in, 3000) == 0);
    free(back);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, empty_message_is_one_byte)
{
    uint8_t c[16];
    size_t clen = 99;

    cr_assert_eq(ws_deflate_message((const uint8_t *)"", 0, 15, c, sizeof(c), &clen), 0);
    cr_assert_eq(clen, 1);
    cr_assert_eq(c[0], 0x00);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, window_8_compresses_with_9)
{
    uint8_t *in = make_data(20000, true);
    uint8_t c[20000];
    size_t clen;
    struct ws_deflate_params p = params_for(8, true);
    struct ws_inflater inf;
    struct dmsg out;

    cr_assert_eq(ws_deflate_message(in, 20000, 8, c, sizeof(c), &clen), 0);
    ws_inflater_init(&inf, &p);
    cr_assert_eq(inf.window_bits, 8);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(ws_inflate(&inf, c, clen, true, &out, 1u << 20), 0);
    cr_assert_eq(dmsg_len(&out), 20000);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, output_too_small_is_limit_then_deflater_recovers)
{
    uint8_t *in = make_data(10000, false);
    uint8_t c[12000];
    size_t clen;

    cr_assert_eq(ws_deflate_message(in, 10000, 15, c, 5000, &clen), HERALD_ELIMIT);
    cr_assert_eq(ws_deflate_message(in, 10000, 15, c, 0, &clen), HERALD_ELIMIT);
    /* The abandoned message must leave nothing behind in the cached deflater. */
    cr_assert_eq(ws_deflate_message(in, 100, 15, c, sizeof(c), &clen), 0);

    struct ws_deflate_params p = params_for(15, true);
    struct ws_inflater inf;
    struct dmsg out;
    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(ws_inflate(&inf, c, clen, true, &out, 1u << 20), 0);
    uint8_t *back = dmsg_bytes(&out);
    cr_assert_eq(dmsg_len(&out), 100);
    cr_assert(memcmp(back, in, 100) == 0);
    free(back);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
    /* Usable again after cleanup. */
    cr_assert_eq(ws_deflate_message((const uint8_t *)"abc", 3, 12, c, sizeof(c), &clen), 0);
    ws_deflate_thread_cleanup();
}

/* ---- limits and bad input ---- */

Test(ws_deflate, compression_bomb_stops_at_max_out)
{
    size_t big = 10u << 20, max_out = 1u << 20;
    uint8_t *zeros = calloc(1, big);
    uint8_t *c = malloc(64 * 1024);
    z_stream zs;

    client_deflater(&zs, 15, 9);
    size_t clen = zlib_compress(&zs, zeros, big, Z_SYNC_FLUSH, c, 64 * 1024);
    deflateEnd(&zs);
    cr_assert_lt(clen, 64 * 1024);

    for (int nframes = 1; nframes <= 3; nframes += 2) {
        struct ws_deflate_params p = params_for(15, true);
        struct ws_inflater inf;
        struct dmsg out;

        ws_inflater_init(&inf, &p);
        dmsg_init(&out, 64u << 20);
        cr_assert_eq(inflate_frames(&inf, c, clen, nframes, &out, max_out), -1009);
        cr_assert_leq(dmsg_len(&out), max_out);
        cr_assert(!inf.ready);
        dmsg_deinit(&out);
        ws_inflater_deinit(&inf);
    }
    free(c);
    free(zeros);
}

Test(ws_deflate, max_out_counts_existing_content)
{
    uint8_t *in = make_data(1000, true);
    uint8_t c[2000];
    size_t clen;
    struct ws_deflate_params p = params_for(15, true);
    struct ws_inflater inf;
    struct dmsg out;

    cr_assert_eq(ws_deflate_message(in, 1000, 15, c, sizeof(c), &clen), 0);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(dmsg_append(&out, "0123456789", 10), 0);
    ws_inflater_init(&inf, &p);
    cr_assert_eq(ws_inflate(&inf, c, clen, true, &out, 1009), -1009);
    cr_assert_leq(dmsg_len(&out), 1009);
    /* Exactly at the limit is fine. */
    dmsg_deinit(&out);
    cr_assert_eq(dmsg_append(&out, "0123456789", 10), 0);
    cr_assert_eq(ws_inflate(&inf, c, clen, true, &out, 1010), 0);
    cr_assert_eq(dmsg_len(&out), 1010);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, dmsg_limit_is_too_big)
{
    uint8_t *in = make_data(5000, true);
    uint8_t c[6000];
    size_t clen;
    struct ws_deflate_params p = params_for(15, true);
    struct ws_inflater inf;
    struct dmsg out;

    cr_assert_eq(ws_deflate_message(in, 5000, 15, c, sizeof(c), &clen), 0);
    dmsg_init(&out, 4096);
    ws_inflater_init(&inf, &p);
    cr_assert_eq(ws_inflate(&inf, c, clen, true, &out, 1u << 20), -1009);
    cr_assert_leq(dmsg_len(&out), 4096);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, corrupt_input)
{
    /* BFINAL 1, BTYPE 11: a reserved block type. */
    static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff};
    struct ws_deflate_params p = params_for(15, false);
    struct ws_inflater inf;
    struct dmsg out;

    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(ws_inflate(&inf, bad, sizeof(bad), false, &out, 1u << 20), -1007);
    cr_assert(!inf.ready);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
}

Test(ws_deflate, truncated_message_is_invalid)
{
    uint8_t *in = make_data(1000, false);
    uint8_t c[2000];
    size_t clen;
    struct ws_deflate_params p = params_for(15, true);
    struct ws_inflater inf;
    struct dmsg out;

    /* Random data goes into a stored block; cut in its middle, the tail is just more data. */
    cr_assert_eq(ws_deflate_message(in, 1000, 15, c, sizeof(c), &clen), 0);
    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(ws_inflate(&inf, c, clen / 2, true, &out, 1u << 20), -1007);
    cr_assert(!inf.ready);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, final_block_from_client)
{
    /* RFC 7692 7.2.3.4: a client may end its message with a BFINAL block (Z_FINISH) followed by
     * one 0x00 octet, the header of the empty stored block whose rest the receiver appends. */
    uint8_t *in = make_data(5000, true);
    uint8_t c[6000];
    z_stream zs;
    struct ws_deflate_params p = params_for(15, false);
    struct ws_inflater inf;
    struct dmsg out;

    client_deflater(&zs, 15, 6);
    size_t clen = zlib_compress(&zs, in, 5000, Z_FINISH, c, sizeof(c) - 1);
    deflateEnd(&zs);
    c[clen++] = 0x00;
    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ws_inflate(&inf, c, clen, true, &out, 1u << 20), 0);
        cr_assert_eq(dmsg_len(&out), 5000);
        uint8_t *back = dmsg_bytes(&out);
        cr_assert(memcmp(back, in, 5000) == 0);
        free(back);
        dmsg_consume(&out, 5000);
    }
    /* Without that octet the appended tail is not a whole block: the message is malformed. */
    cr_assert_eq(ws_inflate(&inf, c, clen - 1, true, &out, 1u << 20), -1007);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
}

/* ---- context ---- */

Test(ws_deflate, no_context_frees_state_after_fin)
{
    uint8_t c[64];
    size_t clen;
    struct ws_deflate_params p = params_for(15, true);
    struct ws_inflater inf;
    struct dmsg out;

    cr_assert_eq(ws_deflate_message((const uint8_t *)"hello hello", 11, 15, c, sizeof(c), &clen),
                 0);
    ws_inflater_init(&inf, &p);
    cr_assert(!inf.ready);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(ws_inflate(&inf, c, 2, false, &out, 1u << 20), 0);
    cr_assert(inf.ready);
    cr_assert_eq(ws_inflate(&inf, c + 2, clen - 2, true, &out, 1u << 20), 0);
    cr_assert(!inf.ready);
    cr_assert_eq(dmsg_len(&out), 11);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, messages_without_context_inflate_independently)
{
    uint8_t *m1 = make_data(4000, true), *m2 = make_data(4000, true);
    uint8_t c1[4000], c2[4000];
    size_t l1, l2;

    cr_assert_eq(ws_deflate_message(m1, 4000, 15, c1, sizeof(c1), &l1), 0);
    cr_assert_eq(ws_deflate_message(m2, 4000, 15, c2, sizeof(c2), &l2), 0);

    /* Message 2 alone, in a fresh inflater, then both through one inflater in either order. */
    for (int no_context = 0; no_context <= 1; no_context++) {
        struct ws_deflate_params p = params_for(15, no_context);
        struct ws_inflater inf;
        struct dmsg out;

        ws_inflater_init(&inf, &p);
        dmsg_init(&out, 1u << 20);
        cr_assert_eq(ws_inflate(&inf, c2, l2, true, &out, 1u << 20), 0);
        cr_assert_eq(ws_inflate(&inf, c1, l1, true, &out, 1u << 20), 0);
        cr_assert_eq(ws_inflate(&inf, c2, l2, true, &out, 1u << 20), 0);
        cr_assert_eq(inf.ready, !no_context);
        uint8_t *back = dmsg_bytes(&out);
        cr_assert_eq(dmsg_len(&out), 12000);
        cr_assert(memcmp(back, m2, 4000) == 0);
        cr_assert(memcmp(back + 4000, m1, 4000) == 0);
        cr_assert(memcmp(back + 8000, m2, 4000) == 0);
        free(back);
        dmsg_deinit(&out);
        ws_inflater_deinit(&inf);
    }
    free(m1);
    free(m2);
    ws_deflate_thread_cleanup();
}

Test(ws_deflate, client_context_takeover_kept_when_allowed)
{
    /* The second message refers back into the first; the inflater must keep its window. */
    const char *msg = "{\"topic\":\"prices\",\"payload\":\"the same text in both messages\"}";
    size_t len = strlen(msg);
    uint8_t c1[256], c2[256];
    z_stream zs;
    struct ws_deflate_params p = params_for(15, false);
    struct ws_inflater inf;
    struct dmsg out;

    client_deflater(&zs, 15, 6);
    size_t l1 = zlib_compress(&zs, (const uint8_t *)msg, len, Z_SYNC_FLUSH, c1, sizeof(c1));
    size_t l2 = zlib_compress(&zs, (const uint8_t *)msg, len, Z_SYNC_FLUSH, c2, sizeof(c2));
    deflateEnd(&zs);
    cr_assert_lt(l2, l1);

    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(ws_inflate(&inf, c1, l1, true, &out, 1u << 20), 0);
    cr_assert(inf.ready);
    cr_assert_eq(ws_inflate(&inf, c2, l2, true, &out, 1u << 20), 0);
    uint8_t *back = dmsg_bytes(&out);
    cr_assert_eq(dmsg_len(&out), 2 * len);
    cr_assert(memcmp(back, msg, len) == 0);
    cr_assert(memcmp(back + len, msg, len) == 0);
    free(back);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
    cr_assert(!inf.ready);
}

Test(ws_deflate, client_small_window)
{
    /* A client that honours client_max_window_bits=9 produces a stream our inflater reads. */
    uint8_t *in = make_data(50000, true);
    uint8_t *c = malloc(50000);
    z_stream zs;
    struct ws_deflate_params p = params_for(9, true);
    struct ws_inflater inf;
    struct dmsg out;

    client_deflater(&zs, 9, 6);
    size_t clen = zlib_compress(&zs, in, 50000, Z_SYNC_FLUSH, c, 50000);
    deflateEnd(&zs);
    ws_inflater_init(&inf, &p);
    dmsg_init(&out, 1u << 20);
    cr_assert_eq(inflate_frames(&inf, c, clen, 5, &out, 1u << 20), 0);
    uint8_t *back = dmsg_bytes(&out);
    cr_assert_eq(dmsg_len(&out), 50000);
    cr_assert(memcmp(back, in, 50000) == 0);
    free(back);
    free(c);
    free(in);
    dmsg_deinit(&out);
    ws_inflater_deinit(&inf);
}

/* A message compressed in pieces (the broker's body, then its offset) inflates as one, and the
 * next message starts without context from it. */
Test(ws_deflate, message_in_parts)
{
    size_t sizes[][3] = {{200, 20, 1}, {5000, 1, 31}, {0, 0, 10}, {100000, 0, 3}};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t total = sizes[k][0] + sizes[k][1] + sizes[k][2];
        uint8_t *in = make_data(total, true);
        size_t cap = total + total / 8 + 256, clen = 0, n = 0;
        uint8_t *c = malloc(cap);
        size_t pos = 0;
        for (int part = 0; part < 3; part++) {
            cr_assert_eq(ws_deflate_part(in + pos, sizes[k][part], 15, part == 0, part == 2,
                                         c + clen, cap - clen, &n),
                         0);
            pos += sizes[k][part];
            clen += n;
        }
        struct ws_deflate_params p = params_for(15, true);
        struct ws_inflater inf;
        struct dmsg out;
        ws_inflater_init(&inf, &p);
        dmsg_init(&out, 4u << 20);
        cr_assert_eq(inflate_frames(&inf, c, clen, 2, &out, 2u << 20), 0, "case %zu", k);
        cr_assert_eq(dmsg_len(&out), total, "case %zu", k);
        uint8_t *back = dmsg_bytes(&out);
        cr_assert(memcmp(back, in, total) == 0, "case %zu", k);
        free(back);
        dmsg_deinit(&out);
        ws_inflater_deinit(&inf);
        /* A whole message right after: independent of the parts before it. */
        size_t alone = 0;
        cr_assert_eq(ws_deflate_message(in, total, 15, c, cap, &alone), 0);
        ws_inflater_init(&inf, &p);
        dmsg_init(&out, 4u << 20);
        cr_assert_eq(inflate_frames(&inf, c, alone, 1, &out, 2u << 20), 0);
        cr_assert_eq(dmsg_len(&out), total);
        dmsg_deinit(&out);
        ws_inflater_deinit(&inf);
        free(c);
        free(in);
    }
    uint8_t small[4];
    size_t n;
    uint8_t data[256];
    memset(data, 'x', sizeof(data));
    cr_assert_eq(ws_deflate_part(data, sizeof(data), 15, true, true, small, sizeof(small), &n),
                 HERALD_ELIMIT, "output too small");
}
