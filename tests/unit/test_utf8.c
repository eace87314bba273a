/*
 * test_utf8.c - the incremental UTF-8 validator.
 *
 * Every case is fed whole, one byte at a time, split in two at every position and split at
 * pseudo-random points (fixed seed); each way must give the same result and, for invalid input,
 * the same offset of the first offending byte (fail fast). Each piece is copied so that it ends
 * right before a PROT_NONE page, so reading past the input (the 8-byte ASCII path) crashes.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"
#include "utf8.h"

struct outcome {
    int rc;
    size_t bad_at; /* offset in the whole input; meaningful for UTF8_INVALID */
};

/* Feeds p[0..len) cut at cuts[] (sorted, may repeat: empty pieces are fed too). */
static struct outcome feed_cut(struct guard *g, const uint8_t *p, size_t len, const size_t *cuts,
                               size_t ncuts)
{
    struct utf8_state s;
    struct outcome o = {UTF8_OK, 0};
    size_t start = 0, k, bad;

    utf8_init(&s);
    for (k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;

        bad = (size_t)-1;
        o.rc = utf8_feed(&s, guard_put(g, p + start, end - start), end - start, &bad);
        if (o.rc == UTF8_INVALID) {
            cr_assert_lt(bad, end - start, "bad_at %zu outside a piece of %zu", bad, end - start);
            o.bad_at = start + bad;
            /* The state stays invalid. */
            cr_assert_eq(utf8_feed(&s, (const uint8_t *)"a", 1, NULL), UTF8_INVALID);
            break;
        }
        start = end;
    }
    return o;
}

static void check_split(struct guard *g, const uint8_t *p, size_t len, const size_t *cuts,
                        size_t ncuts, struct outcome want, const char *name)
{
    struct outcome o = feed_cut(g, p, len, cuts, ncuts);

    cr_assert_eq(o.rc, want.rc, "%s: %zu pieces: rc %d, want %d", name, ncuts + 1, o.rc, want.rc);
    if (want.rc == UTF8_INVALID)
        cr_assert_eq(o.bad_at, want.bad_at, "%s: %zu pieces: bad_at %zu, want %zu", name, ncuts + 1,
                     o.bad_at, want.bad_at);
}

/* Validates p[0..len) every way and checks each against the expected outcome. */
static void check_ways(const uint8_t *p, size_t len, struct outcome want, const char *name)
{
    size_t *cuts = calloc(len + 8, sizeof(*cuts));
    struct guard g = guard_new(len);
    size_t i, n;

    check_split(&g, p, len, NULL, 0, want, name);
    for (i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    check_split(&g, p, len, cuts, len ? len - 1 : 0, want, name); /* one byte at a time */
    for (i = 0; i <= len; i++) {
        cuts[0] = i; /* includes an empty first or last piece */
        check_split(&g, p, len, cuts, 1, want, name);
    }
    for (i = 0; i < 20; i++) {
        n = random_cuts(len, cuts);
        check_split(&g, p, len, cuts, n, want, name);
    }
    free(cuts);
    guard_free(&g);
    cr_assert_eq(utf8_valid(p, len), want.rc == UTF8_OK, "%s: utf8_valid", name);
}

/* ---- the table ---- */

struct u8case {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
    int rc;
    size_t bad_at;
};

#define OK(name, s)                                                                                \
    {                                                                                              \
        name, s, 0, UTF8_OK, 0                                                                     \
    }
#define OKN(name, s, n)                                                                            \
    {                                                                                              \
        name, s, n, UTF8_OK, 0                                                                     \
    }
#define PART(name, s)                                                                              \
    {                                                                                              \
        name, s, 0, UTF8_PARTIAL, 0                                                                \
    }
#define BAD(name, s, at)                                                                           \
    {                                                                                              \
        name, s, 0, UTF8_INVALID, at                                                               \
    }
#define BADN(name, s, n, at)                                                                       \
    {                                                                                              \
        name, s, n, UTF8_INVALID, at                                                               \
    }

/* "κόσμε" */
#define KOSME "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

static const struct u8case cases[] = {
    /* boundary code points */
    OK("empty", ""),
    OKN("U+0000", "\x00", 1),
    OK("U+007F", "\x7f"),
    OK("U+0080", "\xc2\x80"),
    OK("U+07FF", "\xdf\xbf"),
    OK("U+0800", "\xe0\xa0\x80"),
    OK("U+D7FF", "\xed\x9f\xbf"),
    OK("U+E000", "\xee\x80\x80"),
    OK("U+FFFD", "\xef\xbf\xbd"),
    OK("U+FFFE noncharacter", "\xef\xbf\xbe"),
    OK("U+FFFF", "\xef\xbf\xbf"),
    OK("U+10000", "\xf0\x90\x80\x80"),
    OK("U+1FFFE noncharacter", "\xf0\x9f\xbf\xbe"),
    OK("U+FFFFF", "\xf3\xbf\xbf\xbf"),
    OK("U+100000", "\xf4\x80\x80\x80"),
    OK("U+10FFFF", "\xf4\x8f\xbf\xbf"),
    OKN("NULs",
        "a\x00"
        "b\x00\x00",
        5),

    /* Autobahn 6.x and Markus Kuhn's stress test: valid text */
    OK("Hello-u@ss...", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"),
    OK("kosme", KOSME),
    OK("kosme in ASCII", "The Greek word " KOSME " means world, more or less; long enough."),
    OK("emoji", "\xf0\x9f\x98\x80 smile \xf0\x9f\x8e\x89"),
    OK("CJK", "\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95"),

    /* kosme with bad bytes after it: the error is at the first impossible byte */
    BAD("kosme + surrogate",
        KOSME "\xed\xa0\x80"
              "edited",
        12),
    BAD("kosme + above U+10FFFF", KOSME "\xf4\x90\x80\x80", 12),
    BAD("kosme + lone continuation", KOSME "\x80", 11),

    /* bytes that are never valid */
    BAD("C0", "\xc0", 0),
    BAD("C1", "\xc1", 0),
    BAD("F5", "\xf5\x80\x80\x80", 0),
    BAD("F7 (4-byte lead above U+10FFFF)", "\xf7\xbf\xbf\xbf", 0),
    BAD("F8 (5-byte sequence)", "\xf8\x88\x80\x80\x80", 0),
    BAD("FC (6-byte sequence)", "\xfc\x84\x80\x80\x80\x80", 0),
    BAD("FE", "\xfe", 0),
    BAD("FF", "\xff", 0),
    BAD("FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    BAD("ASCII then FF", "abcdefghijk\xff", 11),

    /* continuation bytes with no lead */
    BAD("lone 80", "\x80", 0),
    BAD("lone BF", "\xbf", 0),
    BAD("80 BF", "\x80\xbf", 0),
    BAD("valid then lone continuation", "\xc2\x80\x80", 2),
    BAD("ASCII then continuation", "abc\xbf", 3),
    BAD("3-byte plus one continuation", "\xe2\x82\xac\x80", 3),

    /* lonely starts and truncated sequences followed by ASCII */
    BAD("C2 then space", "\xc2\x20", 1),
    BAD("E2 82 then A", "\xe2\x82\x41", 2),
    BAD("E1 then space", "\xe1 ", 1),
    BAD("F0 90 80 then A", "\xf0\x90\x80\x41", 3),
    BAD("F1 then A", "\xf1\x41", 1),

    /* a lead byte where a continuation is expected */
    BAD("C3 C3", "\xc3\xc3", 1),
    BAD("E2 E2", "\xe2\xe2\x82\xac", 1),
    BAD("E2 82 E2", "\xe2\x82\xe2\x82\xac", 2),
    BAD("F0 90 F0", "\xf0\x90\xf0", 2),
    BAD("F1 80 80 C2", "\xf1\x80\x80\xc2\x80", 3),
    BAD("DF then C0", "\xdf\xc0", 1),

    /* truncated at the end of the input */
    PART("DF", "\xdf"),
    PART("C2", "\xc2"),
    PART("E0", "\xe0"),
    PART("E0 A0", "\xe0\xa0"),
    PART("EF BF", "\xef\xbf"),
    PART("ED 9F", "\xed\x9f"),
    PART("F0 90 80", "\xf0\x90\x80"),
    PART("F4 8F BF", "\xf4\x8f\xbf"),
    PART("F4", "\xf4"),
    PART("kosme then CE", KOSME "\xce"),

    /* overlong forms, rejected at the first byte that proves it */
    BAD("overlong 2-byte / (C0 AF)", "\xc0\xaf", 0),
    BAD("overlong 3-byte / (E0 80 AF)", "\xe0\x80\xaf", 1),
    BAD("overlong 4-byte / (F0 80 80 AF)", "\xf0\x80\x80\xaf", 1),
    BAD("overlong 5-byte /", "\xf8\x80\x80\x80\xaf", 0),
    BAD("max overlong 2-byte (C1 BF)", "\xc1\xbf", 0),
    BAD("max overlong 3-byte (E0 9F BF)", "\xe0\x9f\xbf", 1),
    BAD("max overlong 4-byte (F0 8F BF BF)", "\xf0\x8f\xbf\xbf", 1),
    BAD("overlong NUL 2-byte", "\xc0\x80", 0),
    BAD("overlong NUL 3-byte", "\xe0\x80\x80", 1),
    BAD("overlong NUL 4-byte", "\xf0\x80\x80\x80", 1),

    /* UTF-16 surrogates */
    BAD("U+D800", "\xed\xa0\x80", 1),
    BAD("U+DB7F", "\xed\xad\xbf", 1),
    BAD("U+DB80", "\xed\xae\x80", 1),
    BAD("U+DBFF", "\xed\xaf\xbf", 1),
    BAD("U+DC00", "\xed\xb0\x80", 1),
    BAD("U+DF80", "\xed\xbe\x80", 1),
    BAD("U+DFFF", "\xed\xbf\xbf", 1),
    BAD("paired surrogates", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("surrogate after ASCII", "0123456789\xed\xbf\xbf", 11),

    /* above U+10FFFF */
    BAD("U+110000", "\xf4\x90\x80\x80", 1),
    BAD("U+13FFFF", "\xf4\xbf\xbf\xbf", 1),
    BAD("U+140000", "\xf5\x80\x80\x80", 0),
};

Test(utf8, table)
{
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct u8case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->bytes);
        struct outcome want = {c->rc, c->bad_at};

        check_ways((const uint8_t *)c->bytes, len, want, c->name);
    }
}

/* Markus Kuhn 3.1: all 64 continuation bytes in a row are each a lone continuation. */
Test(utf8, all_continuation_bytes)
{
    uint8_t p[64];
    struct outcome want = {UTF8_INVALID, 0};
    int i;

    for (i = 0; i < 64; i++)
        p[i] = (uint8_t)(0x80 + i);
    check_ways(p, sizeof(p), want, "80..BF");
}

/* Markus Kuhn 3.2: every lead byte followed by a space is invalid at the space (or at the lead
 * for C0, C1 and F5..FF). */
Test(utf8, lonely_start_characters)
{
    unsigned b;

    for (b = 0xC0; b <= 0xFF; b++) {
        uint8_t p[2] = {(uint8_t)b, ' '};
        struct outcome want = {UTF8_INVALID, (b <= 0xC1 || b >= 0xF5) ? 0 : 1};

        check_ways(p, sizeof(p), want, "lonely start");
    }
}

/* Every byte value as a one-byte input. */
Test(utf8, single_bytes)
{
    unsigned b;

    for (b = 0; b < 256; b++) {
        uint8_t p[1] = {(uint8_t)b};
        struct outcome want = {UTF8_OK, 0};

        if (b >= 0xC2 && b <= 0xF4)
            want.rc = UTF8_PARTIAL;
        else if (b >= 0x80)
            want.rc = UTF8_INVALID;
        check_ways(p, 1, want, "single byte");
    }
}

/* Encodes cp (no checks) and returns the length. */
static size_t encode(uint32_t cp, uint8_t *p)
{
    if (cp < 0x80) {
        p[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (uint8_t)(0xC0 | cp >> 6);
        p[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (uint8_t)(0xE0 | cp >> 12);
        p[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        p[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (uint8_t)(0xF0 | cp >> 18);
    p[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    p[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    p[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every code point's shortest encoding is valid except the surrogates; whole only, as this is
 * 1.1 million inputs. */
Test(utf8, every_code_point)
{
    uint8_t p[4];
    uint32_t cp;
    size_t n, bad;
    struct utf8_state s;
    int rc;

    for (cp = 0; cp <= 0x10FFFF; cp++) {
        n = encode(cp, p);
        utf8_init(&s);
        rc = utf8_feed(&s, p, n, &bad);
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            cr_assert_eq(rc, UTF8_INVALID, "U+%04X", cp);
            cr_assert_eq(bad, 1, "U+%04X", cp);
        } else {
            cr_assert_eq(rc, UTF8_OK, "U+%04X", cp);
        }
    }
}

/* Every overlong encoding of a code point in a longer form is rejected at byte 0 or 1. */
Test(utf8, overlong_forms)
{
    uint32_t cp;
    uint8_t p[4];
    size_t bad;
    struct utf8_state s;

    for (cp = 0; cp < 0x10000; cp++) {
        /* the 4-byte form of every cp below U+10000 */
        p[0] = 0xF0;
        p[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        p[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        p[3] = (uint8_t)(0x80 | (cp & 0x3F));
        utf8_init(&s);
        cr_assert_eq(utf8_feed(&s, p, 4, &bad), UTF8_INVALID);
        cr_assert_eq(bad, 1);
        if (cp >= 0x800)
            continue;
        /* the 3-byte form of every cp below U+0800 */
        p[0] = 0xE0;
        p[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        p[2] = (uint8_t)(0x80 | (cp & 0x3F));
        utf8_init(&s);
        cr_assert_eq(utf8_feed(&s, p, 3, &bad), UTF8_INVALID);
        cr_assert_eq(bad, 1);
        if (cp >= 0x80)
            continue;
        p[0] = (uint8_t)(0xC0 | cp >> 6);
        p[1] = (uint8_t)(0x80 | (cp & 0x3F));
        utf8_init(&s);
        cr_assert_eq(utf8_feed(&s, p, 2, &bad), UTF8_INVALID);
        cr_assert_eq(bad, 0);
    }
}

/* The 8-byte ASCII path: a bad byte or a multi-byte character at every offset and alignment of a
 * long ASCII run is found at the right place, and no run is misread. */
Test(utf8, ascii_fast_path)
{
    uint8_t p[80];
    size_t at, len;

    for (len = 0; len <= sizeof(p); len++) {
        struct outcome ok = {UTF8_OK, 0};

        memset(p, 'x', len);
        check_ways(p, len, ok, "ASCII run");
        for (at = 0; at < len; at++) {
            struct outcome bad = {UTF8_INVALID, at};

            memset(p, 'x', len);
            p[at] = 0xFF;
            check_ways(p, len, bad, "FF in an ASCII run");
            if (at + 2 <= len) {
                p[at] = 0xC3;
                p[at + 1] = 0xA9;
                check_ways(p, len, ok, "e-acute in an ASCII run");
            }
            if (at + 1 == len) {
                struct outcome part = {UTF8_PARTIAL, 0};

                p[at] = 0xE2;
                check_ways(p, len, part, "lead at the end of an ASCII run");
            }
        }
    }
}

/* Validating a long text fragment by fragment, as a message arrives. */
Test(utf8, long_mixed_text)
{
    static const char unit[] = "ASCII " KOSME " \xe4\xb8\xad \xf0\x9f\x98\x80 ";
    size_t ulen = strlen(unit), i, len = 0;
    uint8_t *p = malloc(ulen * 200 + 3);
    struct outcome ok = {UTF8_OK, 0}, bad;

    for (i = 0; i < 200; i++, len += ulen)
        memcpy(p + len, unit, ulen);
    check_ways(p, len, ok, "long text");
    memcpy(p + len, "\xed\xa0\x80", 3);
    bad.rc = UTF8_INVALID;
    bad.bad_at = len + 1;
    check_ways(p, len + 3, bad, "long text + surrogate");
    free(p);
}

Test(utf8, bad_at_may_be_null)
{
    struct utf8_state s;

    utf8_init(&s);
    cr_assert_eq(utf8_feed(&s, (const uint8_t *)"\xc0", 1, NULL), UTF8_INVALID);
    cr_assert_eq(utf8_feed(&s, (const uint8_t *)"", 0, NULL), UTF8_INVALID);
    utf8_init(&s);
    cr_assert_eq(utf8_feed(&s, NULL, 0, NULL), UTF8_OK);
    cr_assert_eq(utf8_feed(&s, (const uint8_t *)"\xe2", 1, NULL), UTF8_PARTIAL);
    cr_assert_eq(utf8_feed(&s, NULL, 0, NULL), UTF8_PARTIAL);
    cr_assert_eq(utf8_feed(&s, (const uint8_t *)"\x82\xac", 2, NULL), UTF8_OK);
}
