/*
 * dmsg.c - geometrically growing scattered buffers (see dmsg.h for the growth rule and why).
 *
 * Invariants: buffers 0..nbufs-1 are allocated; every buffer before the last non-empty one is
 * full (iov_len equals its size); len is the sum of iov_len; off <= len.
 */
#include "dmsg.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Size of buffer i before trimming to the limit: 64, 64, 128, 256, ... */
static size_t buf_size(uint32_t i)
{
    return i == 0 ? DMSG_FIRST_SIZE : (size_t)DMSG_FIRST_SIZE << (i - 1);
}

/* Allocated size of buffer i: the last buffer may have been trimmed to the limit. */
static size_t buf_alloc_size(const struct dmsg *dm, uint32_t i)
{
    /* Buffers 0..i-1 hold 64 * 2^(i-1) bytes together (0 for i == 0), which is buf_size(i). */
    size_t before = i == 0 ? 0 : buf_size(i);
    if (i + 1 == dm->nbufs)
        return dm->cap - before;
    return buf_size(i);
}

void dmsg_init(struct dmsg *dm, size_t limit)
{
    memset(dm, 0, sizeof(*dm));
    dm->limit = limit < DMSG_FIRST_SIZE ? DMSG_FIRST_SIZE : limit;
}

void dmsg_deinit(struct dmsg *dm)
{
    for (uint32_t i = 0; i < dm->nbufs; i++)
        free(dm->iov[i].iov_base);
    free(dm->iov);
    size_t limit = dm->limit;
    memset(dm, 0, sizeof(*dm));
    dm->limit = limit;
}

/* Adds the next buffer to the chain, trimmed so that capacity stays within the limit. */
static int grow(struct dmsg *dm)
{
    if (dm->cap >= dm->limit)
        return HERALD_ELIMIT;
    if (dm->nbufs == dm->iov_cap) {
        uint32_t ncap = dm->iov_cap ? dm->iov_cap * 2 : 4;
        struct iovec *iov = realloc(dm->iov, ncap * sizeof(*iov));
        if (!iov)
            return -ENOMEM;
        dm->iov = iov;
        dm->iov_cap = ncap;
    }
    size_t size = buf_size(dm->nbufs);
    if (size > dm->limit - dm->cap)
        size = dm->limit - dm->cap;
    void *b = malloc(size);
    if (!b)
        return -ENOMEM;
    dm->iov[dm->nbufs].iov_base = b;
    dm->iov[dm->nbufs].iov_len = 0;
    dm->nbufs++;
    dm->cap += size;
    return 0;
}

/* Index of the buffer that receives the next byte, or nbufs when all are full. */
static uint32_t tail_index(const struct dmsg *dm)
{
    uint32_t i = 0;
    size_t seen = 0;
    while (i < dm->nbufs) {
        size_t size = buf_alloc_size(dm, i);
        if (dm->len < seen + size)
            return i;
        seen += size;
        i++;
    }
    return i;
}

int dmsg_space(struct dmsg *dm, struct iovec *iov, int max)
{
    if (max < 1)
        return HERALD_EBAD;
    if (dm->len == dm->cap) {
        int rc = grow(dm);
        if (rc < 0)
            return rc;
    }
    int n = 0;
    for (uint32_t i = tail_index(dm); i < dm->nbufs && n < max; i++) {
        size_t used = dm->iov[i].iov_len;
        iov[n].iov_base = (char *)dm->iov[i].iov_base + used;
        iov[n].iov_len = buf_alloc_size(dm, i) - used;
        n++;
    }
    return n;
}

void dmsg_commit(struct dmsg *dm, size_t n)
{
    uint32_t i = tail_index(dm);
    while (n > 0 && i < dm->nbufs) {
        size_t room = buf_alloc_size(dm, i) - dm->iov[i].iov_len;
        size_t take = n < room ? n : room;
        dm->iov[i].iov_len += take;
        dm->len += take;
        n -= take;
        i++;
    }
}

int dmsg_append(struct dmsg *dm, const void *data, size_t n)
{
    if (n > dm->limit - dm->len)
        return HERALD_ELIMIT;
    const char *p = data;
    while (n > 0) {
        struct iovec iov[8];
        int cnt = dmsg_space(dm, iov, 8);
        if (cnt < 0)
            return cnt; /* only -ENOMEM: the limit was checked above */
        for (int k = 0; k < cnt && n > 0; k++) {
            size_t take = n < iov[k].iov_len ? n : iov[k].iov_len;
            memcpy(iov[k].iov_base, p, take);
            dmsg_commit(dm, take);
            p += take;
            n -= take;
        }
    }
    return 0;
}

int dmsg_iov(const struct dmsg *dm, size_t skip, struct iovec *iov, int max)
{
    size_t pos = 0, start = dm->off + skip;
    int n = 0;
    for (uint32_t i = 0; i < dm->nbufs && n < max; i++) {
        size_t used = dm->iov[i].iov_len;
        if (used == 0)
            break;
        if (start < pos + used) {
            size_t in = start > pos ? start - pos : 0;
            iov[n].iov_base = (char *)dm->iov[i].iov_base + in;
            iov[n].iov_len = used - in;
            n++;
        }
        pos += used;
    }
    return n;
}

size_t dmsg_copy(const struct dmsg *dm, size_t skip, void *out, size_t n)
{
    size_t done = 0, pos = 0, start = dm->off + skip;
    for (uint32_t i = 0; i < dm->nbufs && done < n; i++) {
        size_t used = dm->iov[i].iov_len;
        if (start + done < pos + used) {
            size_t in = start + done - pos;
            size_t take = used - in < n - done ? used - in : n - done;
            memcpy((char *)out + done, (char *)dm->iov[i].iov_base + in, take);
            done += take;
        }
        pos += used;
    }
    return done;
}

/* Frees buffers from index `keep` on, last first, so buf_alloc_size sees a consistent cap. */
static void truncate_chain(struct dmsg *dm, uint32_t keep)
{
    while (dm->nbufs > keep) {
        uint32_t i = dm->nbufs - 1;
        dm->cap -= buf_alloc_size(dm, i);
        free(dm->iov[i].iov_base);
        dm->nbufs--;
    }
}

void dmsg_consume(struct dmsg *dm, size_t n)
{
    size_t left = dm->len - dm->off;
    dm->off += n < left ? n : left;
    if (dm->off < dm->len)
        return;
    /* Everything consumed: keep only the first buffer for the next message. If the first buffer
     * was trimmed by a tiny limit it is still the right size to keep. */
    truncate_chain(dm, dm->nbufs > 0 ? 1 : 0);
    if (dm->nbufs)
        dm->iov[0].iov_len = 0;
    dm->len = dm->off = 0;
}

int dmsg_compact(struct dmsg *dm)
{
    size_t keep = dm->len - dm->off;
    if (dm->off == 0 || dm->off < keep)
        return 0;
    /* The destination [0, keep) lies entirely before the source [off, len) because off >= keep,
     * so a front-to-back copy never overwrites bytes it has yet to read. */
    size_t moved = 0;
    while (moved < keep) {
        struct iovec src[1];
        dmsg_iov(dm, moved, src, 1);
        size_t take = src[0].iov_len < keep - moved ? src[0].iov_len : keep - moved;
        /* Write `take` bytes at logical position `moved`, which may straddle buffers. */
        size_t done = 0, pos = 0;
        for (uint32_t i = 0; i < dm->nbufs && done < take; i++) {
            size_t size = buf_alloc_size(dm, i);
            if (moved + done < pos + size) {
                size_t in = moved + done - pos;
                size_t w = size - in < take - done ? size - in : take - done;
                memmove((char *)dm->iov[i].iov_base + in, (char *)src[0].iov_base + done, w);
                done += w;
            }
            pos += size;
        }
        moved += take;
    }
    /* Re-describe the fill of each buffer for the new length, then drop unused buffers. */
    size_t pos = 0;
    uint32_t used_bufs = 0;
    for (uint32_t i = 0; i < dm->nbufs; i++) {
        size_t size = buf_alloc_size(dm, i);
        size_t fill = keep > pos ? (keep - pos < size ? keep - pos : size) : 0;
        dm->iov[i].iov_len = fill;
        if (fill > 0 || i == 0)
            used_bufs = i + 1;
        pos += size;
    }
    /* Keep one empty buffer after the data when there is one, so the next read has room. */
    truncate_chain(dm, used_bufs + 1 < dm->nbufs ? used_bufs + 1 : dm->nbufs);
    dm->len = keep;
    dm->off = 0;
    return 1;
}
