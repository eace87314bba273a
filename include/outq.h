/*
 * outq.h - a connection's outbound queue: shared buffers and file ranges, flushed with one
 * sendmsg per wake-up.
 *
 * struct obuf is an immutable-once-queued, reference-counted byte buffer. A response head, a small
 * file, or (later) one framed broker message lives in one obuf; any number of queues may hold a
 * reference to the same obuf, so a message fanned out to many subscribers exists once in memory.
 * The queue also holds file ranges, sent with sendfile for large static files.
 *
 * outq_flush gathers every queued buffer segment up to the next file range into one iovec array
 * and sends it with a single sendmsg (MSG_MORE when a file range follows, so the head and the file
 * leave without a Nagle or delayed-ACK stall). What was fully sent is released; a partly sent
 * segment stays with its offset.
 *
 * Ownership: push functions take over the caller's reference (_take). Thread safety: an outq
 * belongs to one connection and is used by the thread that owns it; obuf references may be taken
 * and dropped from any thread (atomic count, taken in bulk on threads with a reference cache).
 */
#ifndef HERALD_OUTQ_H
#define HERALD_OUTQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "dmsg.h"

struct obuf {
    atomic_uint refs;
    uint32_t start; /* content begins here: room left in front for a header sized later */
    uint32_t len;   /* content ends here (bytes written, from data[0]) */
    uint32_t cap;   /* bytes available in data */
    char data[];
};

/* obuf_new - a buffer of `cap` bytes with one reference and len 0; NULL when out of memory. */
struct obuf *obuf_new(size_t cap);
/* obuf_ref - adds a reference (from the calling thread's reference cache, if it has one: see
 * below); returns b. The caller must hold a reference to b. Any thread. */
struct obuf *obuf_ref(struct obuf *b);
/* obuf_unref - drops a reference, freeing the buffer with the last one. NULL is ignored. Any
 * thread. On a thread with a reference cache the buffer may live on until obuf_cache_flush. */
void obuf_unref(struct obuf *b);

/*
 * A thread's reference cache: with one open, obuf_ref takes references in bulk (one atomic add for
 * many) and hands them out one at a time, and obuf_unref of a buffer the cache holds returns its
 * reference to the cache, so a frame fanned out to many subscribers costs no atomic operation per
 * delivery. Buffers keep every reference the cache holds until obuf_cache_flush gives them back
 * (or another buffer needs the slot): a thread with a cache must flush before any wait of
 * unbounded length (a worker's epoll_wait), and close it before it ends. A reference taken on one
 * thread may be dropped on any other.
 *
 * obuf_cache_open - opens the calling thread's cache (no-op if open). Returns 0 or -ENOMEM (the
 * thread then goes on without one).
 * obuf_cache_flush - gives back every reference the calling thread's cache holds, freeing the
 * buffers nobody else holds. No-op without a cache.
 * obuf_cache_close - flushes and frees the calling thread's cache.
 */
int obuf_cache_open(void);
void obuf_cache_flush(void);
void obuf_cache_close(void);
/* obuf_put - appends n bytes; returns 0, or HERALD_ELIMIT (nothing written) when they do not fit.
 */
int obuf_put(struct obuf *b, const void *p, size_t n);
/* obuf_puts - appends a NUL-terminated string; as obuf_put. */
int obuf_puts(struct obuf *b, const char *s);
/* obuf_putu - appends an unsigned decimal; as obuf_put. */
int obuf_putu(struct obuf *b, uint64_t v);

enum outq_kind { OUTQ_BUF, OUTQ_FILE, OUTQ_DMSG };

struct outq_seg {
    enum outq_kind kind;
    bool joined; /* the rest of the previous segment's frame (outq_join_last) */
    union {
        struct {
            struct obuf *b;
            uint32_t off; /* bytes of b already sent */
        } buf;
        struct {
            int fd;
            off_t off;  /* next byte of the file to send */
            size_t len; /* bytes left to send */
        } file;
        struct dmsg *dm; /* owned; its unconsumed bytes are sent, consumed as they go */
    };
};

struct outq {
    struct outq_seg *segs; /* ring of cap entries */
    uint32_t head, count, cap;
    size_t bytes; /* unsent bytes over all segments */
};

/* outq_init - an empty queue owning no memory. */
void outq_init(struct outq *q);
/* outq_deinit - drops every reference and closes every queued file. */
void outq_deinit(struct outq *q);
/* outq_bytes - unsent bytes queued. */
static inline size_t outq_bytes(const struct outq *q)
{
    return q->bytes;
}

/* What one queued segment costs beyond its payload: its slot, and the allocation a small owned
 * buffer needs. Bounds on a queue use outq_cost, so that a peer cannot pile up many tiny frames
 * whose memory is far larger than their byte count. */
#define OUTQ_SEG_COST 64

/* outq_cost - memory a queue holds on its connection's behalf (an upper estimate). */
static inline size_t outq_cost(const struct outq *q)
{
    return q->bytes + (size_t)q->count * OUTQ_SEG_COST;
}
/* outq_push_take - queues b->data[start..len) taking over the caller's reference (also on failure,
 * when it is dropped). Returns 0 or -ENOMEM. Empty buffers are dropped at once. */
int outq_push_take(struct outq *q, struct obuf *b);
/* outq_push_dmsg_take - queues the unconsumed bytes of `dm`, taking over its buffers: the struct is
 * copied into the queue and `dm` is left empty (re-initialised with its limit), so a message
 * received in scattered buffers goes out without a copy. Returns 0 or -ENOMEM (dm unchanged). */
int outq_push_dmsg_take(struct outq *q, struct dmsg *dm);
/* outq_push_file_take - queues `len` bytes of file `fd` from `off`, taking over the descriptor
 * (closed when sent, on deinit, or on failure). Returns 0 or -ENOMEM. */
int outq_push_file_take(struct outq *q, int fd, off_t off, size_t len);

/* outq_drop_last - drops the last queued segment, which has not started to go out: undoes a push
 * that only made sense with the next one (a frame's header whose payload could not be queued).
 * No-op on an empty queue. */
void outq_drop_last(struct outq *q);

/* outq_join_last - marks the last queued segment as the rest of the frame the one before it
 * starts (a frame queued as its header and a payload of its own), so that outq_drop_unsent keeps
 * or drops the two together. No-op on an empty queue. */
void outq_join_last(struct outq *q);

/* outq_drop_unsent - drops every queued segment that has not started to go out. A partly sent
 * front segment stays, and with it the segments joined to it; so does a front segment whose
 * frame's head has gone out: the peer never sees half a frame. Returns the bytes dropped. */
size_t outq_drop_unsent(struct outq *q);

/* iovecs one send gathers at most: enough to coalesce many pipelined responses or broker frames.
 */
#define OUTQ_IOV 64
/* Most bytes copied into one piece by outq_prepare (see outq.c: when copying beats the kernel's
 * per-iovec work). */
#define OUTQ_GATHER_MAX 16384

/*
 * outq_prepare - describes the next send: the run of memory segments at the front (up to the
 * first file range), as at most `room` iovecs into iov. When it has many small pieces that fit
 * in `stage_len` bytes (at most OUTQ_GATHER_MAX are worth it), they are copied into `stage`
 * and described by iov[0] alone; stage may be NULL. *more is set when something follows what
 * iov describes (pass MSG_MORE). Returns the iovecs used, 0 if the queue is empty or starts with
 * a file range. The queue is not changed: after the send, report what went with outq_sent.
 */
int outq_prepare(struct outq *q, struct iovec *iov, int room, char *stage, size_t stage_len,
                 int *more);

/* outq_sent - marks the first n bytes sent (n at most what outq_prepare described), releasing
 * what went out whole. */
void outq_sent(struct outq *q, size_t n);

/*
 * outq_flush - writes as much as the socket takes. Returns:
 *   0         the queue is empty
 *   -EAGAIN   the socket is full; data remains (wait for EPOLLOUT)
 *   -errno    the socket failed (EPIPE, ECONNRESET, ...): the connection is finished
 * Never raises SIGPIPE. *sent (may be NULL) is increased by the bytes written.
 */
int outq_flush(struct outq *q, int sockfd, size_t *sent);

#endif
