/*
 * fuzz_ws_deflate.c - libFuzzer driver for permessage-deflate: the bounded inflater and the
 * extension negotiation.
 *
 * The first byte picks the settings: the client's window bits (8..15), context takeover or not,
 * one of four output caps (the --max-message the inflater enforces), and whether the server
 * allows client context takeover in the negotiation. The second byte splits
 * the rest into frames. What must hold for any input:
 *  - ws_inflate returns 0, -1009, -1007 or -1011, and never holds more than the cap;
 *  - after an error the connection would close: nothing more is fed;
 *  - the same bytes compressed by the server's own deflater come back whole when inflated
 *    (the round trip), within the cap or -1009 exactly when they are longer than the cap;
 *  - ws_deflate_negotiate on the text as an offer list answers 0, 1 or HERALD_ELIMIT, and an
 *    accepted offer gives a NUL-terminated response and parameters within their ranges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsg.h"
#include "err.h"
#include "ws_deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static const size_t caps[4] = {0, 1, 200, 1 << 20};

/* Feeds in[0..len) as frames of `step` bytes (0: one frame) of one message. */
static int inflate_frames(struct ws_inflater *inf, const uint8_t *in, size_t len, size_t step,
                          struct dmsg *out, size_t cap)
{
    size_t pos = 0;
    do {
        size_t n = step && len - pos > step ? step : len - pos;
        bool fin = pos + n == len;
        int rc = ws_inflate(inf, in + pos, n, fin, out, cap);
        check(rc == 0 || rc == -1009 || rc == -1007 || rc == -1011);
        check(dmsg_len(out) <= cap);
        if (rc < 0)
            return rc;
        pos += n;
    } while (pos < len);
    return 0;
}

static void negotiate(const uint8_t *text, size_t len, bool takeover)
{
    struct ws_deflate_config cfg = {.enabled = true, .allow_client_context_takeover = takeover};
    struct ws_deflate_params p;
    char resp[128];
    int rc = ws_deflate_negotiate((const char *)text, len, &cfg, &p, resp, sizeof(resp));
    check(rc == 0 || rc == 1 || rc == HERALD_ELIMIT);
    if (rc == 1) {
        check(memchr(resp, '\0', sizeof(resp)) != NULL);
        check(strncmp(resp, "permessage-deflate", 18) == 0);
        check(p.server_max_window_bits >= 9 && p.server_max_window_bits <= 15);
        check(p.client_max_window_bits >= 8 && p.client_max_window_bits <= 15);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct ws_deflate_params p = {.client_max_window_bits = (uint8_t)(8 + (data[0] & 7)),
                                  .client_no_context_takeover = (data[0] >> 3) & 1,
                                  .server_max_window_bits = 15};
    size_t cap = caps[(data[0] >> 4) & 3];
    size_t step = data[1];
    const uint8_t *in = data + 2;
    size_t len = size - 2;

    /* Arbitrary bytes as a compressed message, then again on the same inflater (context). */
    struct ws_inflater inf;
    ws_inflater_init(&inf, &p);
    struct dmsg out;
    dmsg_init(&out, 1 << 21);
    int rc = inflate_frames(&inf, in, len, step, &out, cap);
    dmsg_deinit(&out);
    if (rc == 0) {
        dmsg_init(&out, 1 << 21);
        inflate_frames(&inf, in, len, step, &out, cap);
        dmsg_deinit(&out);
    }
    ws_inflater_deinit(&inf);

    /* The round trip through the server's deflater: what it sends must inflate to the input. */
    size_t zcap = len + len / 8 + 64, zlen = 0;
    uint8_t *z = malloc(zcap);
    int window = 9 + (data[0] & 7) % 7;
    if (ws_deflate_message(in, len, window, z, zcap, &zlen) == 0) {
        struct ws_deflate_params rp = {.client_max_window_bits = (uint8_t)window,
                                       .client_no_context_takeover = true};
        ws_inflater_init(&inf, &rp);
        dmsg_init(&out, 1 << 21);
        size_t big = 1 << 20;
        rc = inflate_frames(&inf, z, zlen, step, &out, big);
        check(rc == 0 && dmsg_len(&out) == len);
        uint8_t *back = malloc(len ? len : 1);
        check(dmsg_copy(&out, 0, back, len) == len && memcmp(back, in, len) == 0);
        free(back);
        dmsg_deinit(&out);
        ws_inflater_deinit(&inf);
    }
    free(z);

    negotiate(in, len, (data[0] >> 6) & 1);
    return 0;
}
