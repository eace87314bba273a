/*
 * utf8.c - the incremental UTF-8 validator (RFC 3629).
 *
 * A DFA in the manner of Bjoern Hoehrmann's decoder, with tables of our own: each byte is mapped
 * to one of 12 classes, and (state, class) gives the next state. The states below remember exactly
 * what the next byte may be, so every impossible sequence is rejected at the first byte that makes
 * it impossible: E0 must be followed by A0..BF (anything lower is overlong), ED by 80..9F (anything
 * higher is a surrogate), F0 by 90..BF (overlong) and F4 by 80..8F (above U+10FFFF).
 *
 * Text messages are mostly ASCII, so at a character boundary the validator skips ASCII eight bytes
 * at a time before it goes back to the table.
 */
#include "utf8.h"

#include <string.h>

/* DFA states; the whole validator state is one of these. ACCEPT must be 0 (see utf8_init). */
enum {
    S_ACCEPT, /* at a character boundary */
    S_REJECT, /* invalid; sticky */
    S_TAIL1,  /* one more 80..BF to come */
    S_TAIL2,  /* two more 80..BF */
    S_TAIL3,  /* three more 80..BF */
    S_E0,     /* after E0: A0..BF, then one more */
    S_ED,     /* after ED: 80..9F, then one more */
    S_F0,     /* after F0: 90..BF, then two more */
    S_F4,     /* after F4: 80..8F, then two more */
    S_COUNT
};

/* Byte classes. */
enum {
    C_ASCII, /* 00..7F */
    C_80,    /* 80..8F */
    C_90,    /* 90..9F */
    C_A0,    /* A0..BF */
    C_BAD,   /* C0, C1, F5..FF: never valid */
    C_L2,    /* C2..DF: lead of a 2-byte sequence */
    C_E0,    /* E0 */
    C_L3,    /* E1..EC, EE, EF: lead of a 3-byte sequence */
    C_ED,    /* ED */
    C_F0,    /* F0 */
    C_L4,    /* F1..F3: lead of a 4-byte sequence */
    C_F4,    /* F4 */
    C_COUNT
};

/* clang-format off */
static const uint8_t byte_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90..9F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0, C1 bad; C2..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0, E1..EC, ED, EE, EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0, F1..F3, F4, F5..FF bad */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* Short aliases, only for the table below. */
#define A_ S_ACCEPT
#define R_ S_REJECT
#define T1 S_TAIL1
#define T2 S_TAIL2
#define T3 S_TAIL3
static const uint8_t next_state[S_COUNT][C_COUNT] = {
    /*          ASCII 80  90  A0  BAD L2  E0    L3  ED    F0    L4  F4 */
    [S_ACCEPT] = {A_, R_, R_, R_, R_, T1, S_E0, T2, S_ED, S_F0, T3, S_F4},
    [S_REJECT] = {R_, R_, R_, R_, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_TAIL1]  = {R_, A_, A_, A_, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_TAIL2]  = {R_, T1, T1, T1, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_TAIL3]  = {R_, T2, T2, T2, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_E0]     = {R_, R_, R_, T1, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_ED]     = {R_, T1, T1, R_, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_F0]     = {R_, R_, T2, T2, R_, R_, R_,   R_, R_,   R_,   R_, R_},
    [S_F4]     = {R_, T2, R_, R_, R_, R_, R_,   R_, R_,   R_,   R_, R_},
};
#undef A_
#undef R_
#undef T1
#undef T2
#undef T3
/* clang-format on */

/* Returns the offset of the first non-ASCII byte in p[i..n), or n. Whole 8-byte words are loaded
 * only while they lie inside the input, so nothing past p[n-1] is ever read. */
static size_t skip_ascii(const uint8_t *p, size_t i, size_t n)
{
    uint64_t w;

    while (n - i >= 8) {
        memcpy(&w, p + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

int utf8_feed(struct utf8_state *s, const uint8_t *p, size_t n, size_t *bad_at)
{
    uint32_t st = s->state;
    size_t i = 0;

    if (st == S_REJECT) {
        /* Already invalid: nothing in this input is to blame, so point at its start. */
        if (bad_at)
            *bad_at = 0;
        return UTF8_INVALID;
    }
    while (i < n) {
        if (st == S_ACCEPT) {
            i = skip_ascii(p, i, n);
            if (i == n)
                break;
        }
        st = next_state[st][byte_class[p[i]]];
        if (st == S_REJECT) {
            s->state = st;
            if (bad_at)
                *bad_at = i;
            return UTF8_INVALID;
        }
        i++;
    }
    s->state = st;
    return st == S_ACCEPT ? UTF8_OK : UTF8_PARTIAL;
}

int utf8_valid(const uint8_t *p, size_t n)
{
    struct utf8_state s;

    utf8_init(&s);
    return utf8_feed(&s, p, n, NULL) == UTF8_OK;
}
