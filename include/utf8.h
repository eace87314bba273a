/*
 * utf8.h - incremental UTF-8 validation (RFC 3629), for WebSocket text messages and close reasons.
 *
 * Pure code. The validator is a small DFA whose whole state is one integer, so a message can be
 * checked fragment by fragment, split at any byte, and a bad sequence is reported at the first
 * byte that makes it impossible (fail fast: overlong forms, surrogates U+D800..U+DFFF, code points
 * above U+10FFFF, bytes C0, C1, F5..FF, a continuation byte without a lead, a lead byte where a
 * continuation byte must come, all rejected as soon as they are seen).
 */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stddef.h>
#include <stdint.h>

struct utf8_state {
    uint32_t state; /* 0: at a character boundary */
};

#define UTF8_OK      0 /* valid, and the input ended at a character boundary */
#define UTF8_PARTIAL 1 /* valid so far, but the input ended inside a character */
#define UTF8_INVALID                                                                               \
    -1 /* invalid; *bad_at (if given) is the offset of the first offending byte                    \
        */

/* utf8_init - a validator at a character boundary. */
static inline void utf8_init(struct utf8_state *s)
{
    s->state = 0;
}

/* utf8_feed - validates n more bytes. Returns UTF8_OK, UTF8_PARTIAL or UTF8_INVALID (the state
 * then stays invalid). bad_at may be NULL. */
int utf8_feed(struct utf8_state *s, const uint8_t *p, size_t n, size_t *bad_at);

/* utf8_valid - 1 if p[0..n) is complete, valid UTF-8, else 0. */
int utf8_valid(const uint8_t *p, size_t n);

#endif
