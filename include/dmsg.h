/*
 * dmsg.h - dynamic messages: geometrically growing scattered buffers.
 *
 * A dmsg stores a byte stream in a chain of heap buffers that are never moved or realloc'ed, so
 * data read from a socket lands in place and is never copied to make room. Buffers are allocated
 * lazily (an idle connection holds none) and the chain is exposed as an iovec array so the whole
 * content can leave in one writev.
 *
 * Growth: the first buffer holds DMSG_FIRST_SIZE (64) bytes, the second as much again, and every
 * later buffer twice the one before it (64, 64, 128, 256, ...), so each new buffer doubles the
 * total capacity. This is the seed's geometric chain with the second buffer equal to the first:
 * with 64, 128, 256, ... a 65-byte message would take 192 bytes (2.95x), while with this rule
 * allocation never exceeds twice the data for any message of 32 bytes or more. The last buffer is
 * trimmed so that total capacity never exceeds the dmsg's limit.
 *
 * The reader consumes from the front (dmsg_consume). When everything is consumed the chain is cut
 * back to its first buffer, so a keep-alive connection does not keep the memory of its largest
 * request. dmsg_compact moves a partial tail to the front when the consumed prefix outweighs it,
 * which keeps a pipelining client within the limit at an amortised cost of one copy per byte.
 *
 * Thread safety: none; a dmsg belongs to one connection, used by one thread at a time.
 */
#ifndef HERALD_DMSG_H
#define HERALD_DMSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define DMSG_FIRST_SIZE 64

struct dmsg {
    struct iovec *iov; /* iov[i].iov_base: buffer i; iov[i].iov_len: bytes filled in it */
    uint32_t nbufs;    /* buffers allocated */
    uint32_t iov_cap;  /* entries allocated in iov */
    size_t cap;        /* total bytes allocated over all buffers */
    size_t len;        /* bytes stored, including the consumed prefix */
    size_t off;        /* bytes consumed from the front */
    size_t limit;      /* most bytes that may ever be allocated */
};

/* dmsg_init - an empty dmsg that may allocate up to `limit` bytes (at least DMSG_FIRST_SIZE).
 * Allocates nothing. */
void dmsg_init(struct dmsg *dm, size_t limit);

/* dmsg_deinit - frees every buffer; the dmsg is empty and may be reused (same limit). */
void dmsg_deinit(struct dmsg *dm);

/* dmsg_len - unconsumed bytes stored. */
static inline size_t dmsg_len(const struct dmsg *dm)
{
    return dm->len - dm->off;
}

/* dmsg_allocated - bytes held in buffers (the iovec array itself not counted). */
static inline size_t dmsg_allocated(const struct dmsg *dm)
{
    return dm->cap;
}

/* dmsg_append - copies `n` bytes to the end. All or nothing: returns 0, HERALD_ELIMIT when the
 * data would not fit under the limit, or -ENOMEM. */
int dmsg_append(struct dmsg *dm, const void *data, size_t n);

/* dmsg_space - describes free space at the end of the stream, for readv: fills at most `max`
 * iovecs (max >= 1) and returns how many, allocating the next buffer when the last one is full.
 * Returns HERALD_ELIMIT when the limit leaves no space, or -ENOMEM. Follow with dmsg_commit. */
int dmsg_space(struct dmsg *dm, struct iovec *iov, int max);

/* dmsg_commit - records that the first `n` bytes of the space from dmsg_space were written.
 * `n` must not exceed that space. */
void dmsg_commit(struct dmsg *dm, size_t n);

/* dmsg_iov - describes unconsumed data starting `skip` bytes past the consumed prefix as at most
 * `max` iovecs pointing into the buffers; returns how many were filled. The iovecs stay valid until
 * the next call that changes the dmsg. */
int dmsg_iov(const struct dmsg *dm, size_t skip, struct iovec *iov, int max);

/* dmsg_copy - copies up to `n` unconsumed bytes, starting `skip` bytes in, to `out`; returns how
 * many were copied. */
size_t dmsg_copy(const struct dmsg *dm, size_t skip, void *out, size_t n);

/* dmsg_consume - drops `n` bytes (at most dmsg_len) from the front. When nothing is left, the chain
 * is cut back to its first buffer. */
void dmsg_consume(struct dmsg *dm, size_t n);

/* dmsg_compact - when the consumed prefix is larger than the unconsumed data, moves that data to
 * the front of the chain and frees buffers no longer needed. Returns 1 if it moved, else 0. */
int dmsg_compact(struct dmsg *dm);

#endif
