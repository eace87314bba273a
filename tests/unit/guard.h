/*
 * guard.h - feeding decoders in the unit tests: inputs placed right before a PROT_NONE page (so
 * an over-read crashes, as picohttpparser's tests do) and pseudo-random cut points (so every
 * decoder is shown its input split in many ways). Header-only: each test program is one file.
 */
#ifndef HERALD_TEST_GUARD_H
#define HERALD_TEST_GUARD_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
    uint8_t *base;
    size_t size; /* readable bytes; a PROT_NONE page follows */
};

static inline struct guard guard_new(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct guard g;
    g.size = (len / page + 1) * page;
    g.base = mmap(NULL, g.size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g.base != MAP_FAILED);
    cr_assert_eq(mprotect(g.base + g.size, page, PROT_NONE), 0);
    return g;
}

static inline void guard_free(struct guard *g)
{
    munmap(g->base, g->size + (size_t)sysconf(_SC_PAGESIZE));
}

/* The last len bytes before the protected page. */
static inline void *guard_tail(struct guard *g, size_t len)
{
    return g->base + g->size - len;
}

/* Copies p so that it ends at the protected page; returns the copy. */
static inline void *guard_put(struct guard *g, const void *p, size_t len)
{
    void *at = guard_tail(g, len);
    if (len)
        memcpy(at, p, len);
    return at;
}

/* A fixed-seed generator: every run cuts the same way, so a failure reproduces. */
static unsigned rng_state = 12345;

static inline unsigned rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 16) & 0x7fff;
}

static inline int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Up to 5 sorted cut points in (0, len). */
static inline size_t random_cuts(size_t len, size_t *cuts)
{
    size_t n = 1 + rng() % 5;
    if (len < 2)
        return 0;
    for (size_t i = 0; i < n; i++)
        cuts[i] = 1 + (((size_t)rng() << 15 | rng()) % (len - 1));
    qsort(cuts, n, sizeof(cuts[0]), cmp_size);
    return n;
}

#endif
