/* outq.c - refcounted buffers and the per-connection send queue (see outq.h). */
#include "outq.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "stats.h"

/* Many small pieces are copied into one stack buffer and go out as one iovec: the kernel's cost
 * per iovec (importing the array, kmalloc'd past 8 entries, and walking it while copying) is more
 * than a memcpy of a few KiB, and a subscriber's send is typically 16 broker frames of ~100 bytes.
 * Side by side (bench/pubsub.sh SIDE=1 against the scattered build) it cut one worker's server CPU
 * per delivery by 4.4-7.9% at 1,000 and 10,000 subscribers. A few pieces, or large ones, go as they
 * are: there the copy would cost what it saves. */
#define GATHER_MIN_IOV 5

struct obuf *obuf_new(size_t cap)
{
    if (cap > UINT32_MAX)
        return NULL;
    struct obuf *b = malloc(sizeof(*b) + cap);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->start = 0;
    b->len = 0;
    b->cap = (uint32_t)cap;
    return b;
}

/* ---- a worker's reference cache ----
 *
 * A broker frame fanned out to thousands of subscribers gets a reference per delivery and loses it
 * when the send went out: two atomic operations per delivery on a counter that every worker
 * serving the topic hits, the first of them under the topic's lock (broker.c), which made the two
 * workers of a fan-out collide there. A worker that opened its cache takes references in bulk
 * instead (CACHE_BULK at a time, one atomic add) and hands them out one by one as credits; a
 * reference dropped on the same worker goes back to the credits. The count is then always
 * "holders + credits", so a buffer is never freed while a credit exists, and the credits go back
 * (one atomic subtraction per buffer) when the worker is about to wait (obuf_cache_flush), or
 * when another buffer needs the slot. */
#define CACHE_SLOTS 256 /* a power of two; a wave of fan-out touches a few dozen frames */
#define CACHE_WAYS  4   /* slots a buffer may occupy, from its hash on */
#define CACHE_BULK  256 /* references taken at once */

struct obuf_credit {
    struct obuf *b;
    uint32_t credits;
};

struct obuf_cache {
    struct obuf_credit slot[CACHE_SLOTS];
    uint64_t used[CACHE_SLOTS / 64]; /* slots holding a buffer: what a flush walks */
    unsigned victim;                 /* which way gives way when all are taken */
};

static __thread struct obuf_cache *cache; /* the calling thread's, NULL if it has none */

static void unref_n(struct obuf *b, unsigned n)
{
    /* acq_rel: every write by other holders happens before the free. */
    if (atomic_fetch_sub_explicit(&b->refs, n, memory_order_acq_rel) == n)
        free(b);
}

static size_t cache_home(const struct obuf *b)
{
    uintptr_t p = (uintptr_t)b >> 4; /* malloc'd: the low bits are zero */
    return (size_t)((p ^ (p >> 9)) * 0x9E3779B1u) % CACHE_SLOTS;
}

/* Gives a slot's credits back to its buffer and empties it. */
static void slot_return(struct obuf_cache *c, struct obuf_credit *s)
{
    size_t i = (size_t)(s - c->slot);
    if (s->credits)
        unref_n(s->b, s->credits);
    s->b = NULL;
    s->credits = 0;
    c->used[i / 64] &= ~(1ull << (i % 64));
}

/* The slot holding b, found in one pass over its ways; or, with `claim`, one made for it: the
 * first empty way, else the victim's, its credits returned first. NULL when b has none and not
 * `claim`. b is not NULL (an empty slot holds NULL). */
static struct obuf_credit *cache_slot(struct obuf_cache *c, struct obuf *b, bool claim)
{
    size_t h = cache_home(b);
    struct obuf_credit *empty = NULL;
    for (size_t k = 0; k < CACHE_WAYS; k++) {
        struct obuf_credit *s = &c->slot[(h + k) % CACHE_SLOTS];
        if (s->b == b)
            return s;
        if (!s->b && !empty)
            empty = s;
    }
    if (!claim)
        return NULL;
    struct obuf_credit *s = empty;
    if (!s) {
        s = &c->slot[(h + c->victim++ % CACHE_WAYS) % CACHE_SLOTS];
        slot_return(c, s);
    }
    size_t i = (size_t)(s - c->slot);
    s->b = b;
    c->used[i / 64] |= 1ull << (i % 64);
    return s;
}

int obuf_cache_open(void)
{
    if (cache)
        return 0;
    cache = calloc(1, sizeof(*cache));
    return cache ? 0 : -ENOMEM;
}

void obuf_cache_flush(void)
{
    struct obuf_cache *c = cache;
    if (!c)
        return;
    for (size_t w = 0; w < CACHE_SLOTS / 64; w++)
        while (c->used[w])
            slot_return(c, &c->slot[w * 64 + (size_t)__builtin_ctzll(c->used[w])]);
}

void obuf_cache_close(void)
{
    obuf_cache_flush();
    free(cache);
    cache = NULL;
}

struct obuf *obuf_ref(struct obuf *b)
{
    struct obuf_cache *c = cache;
    if (!c) {
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        return b;
    }
    struct obuf_credit *s = cache_slot(c, b, true);
    if (s->credits == 0) {
        /* Relaxed, as any reference taken from one the caller holds. */
        atomic_fetch_add_explicit(&b->refs, CACHE_BULK, memory_order_relaxed);
        s->credits = CACHE_BULK;
    }
    s->credits--;
    return b;
}

void obuf_unref(struct obuf *b)
{
    if (!b)
        return;
    struct obuf_credit *s = cache ? cache_slot(cache, b, false) : NULL;
    if (s)
        s->credits++; /* still counted: a credit until the flush (credits < refs: no overflow) */
    else
        unref_n(b, 1);
}

int obuf_put(struct obuf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len)
        return HERALD_ELIMIT;
    memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    return 0;
}

int obuf_puts(struct obuf *b, const char *s)
{
    return obuf_put(b, s, strlen(s));
}

int obuf_putu(struct obuf *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return obuf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void outq_init(struct outq *q)
{
    memset(q, 0, sizeof(*q));
}

static struct outq_seg *seg_at(struct outq *q, uint32_t i)
{
    return &q->segs[(q->head + i) % q->cap];
}

/* The slot after the last segment, taken, of `kind` and not joined to the one before. */
static struct outq_seg *seg_append(struct outq *q, enum outq_kind kind)
{
    struct outq_seg *s = seg_at(q, q->count++);
    s->kind = kind;
    s->joined = false;
    return s;
}

static void seg_release(struct outq_seg *s)
{
    if (s->kind == OUTQ_BUF) {
        obuf_unref(s->buf.b);
    } else if (s->kind == OUTQ_DMSG) {
        dmsg_deinit(s->dm);
        free(s->dm);
    } else {
        close(s->file.fd);
    }
}

void outq_deinit(struct outq *q)
{
    for (uint32_t i = 0; i < q->count; i++)
        seg_release(seg_at(q, i));
    free(q->segs);
    memset(q, 0, sizeof(*q));
}

/* Segments a ring starts with. An idle WebSocket connection frees its ring (conn.c), so the
 * first push of every wake-up allocates one: room for a typical batch of deliveries avoids
 * growing it two or three times on the way. */
#define RING_FIRST 16

/* Makes room for one more segment, doubling the ring (re-laid from index 0). */
static int reserve(struct outq *q)
{
    if (q->count < q->cap)
        return 0;
    uint32_t ncap = q->cap ? q->cap * 2 : RING_FIRST;
    struct outq_seg *segs = malloc(ncap * sizeof(*segs));
    if (!segs)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->count; i++)
        segs[i] = *seg_at(q, i);
    free(q->segs);
    q->segs = segs;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int outq_push_take(struct outq *q, struct obuf *b)
{
    if (b->len <= b->start) {
        obuf_unref(b);
        return 0;
    }
    if (reserve(q) < 0) {
        obuf_unref(b);
        return -ENOMEM;
    }
    struct outq_seg *s = seg_append(q, OUTQ_BUF);
    s->buf.b = b;
    s->buf.off = b->start;
    q->bytes += b->len - b->start;
    return 0;
}

int outq_push_dmsg_take(struct outq *q, struct dmsg *dm)
{
    size_t len = dmsg_len(dm);
    if (len == 0)
        return 0;
    struct dmsg *own = malloc(sizeof(*own));
    if (!own || reserve(q) < 0) {
        free(own);
        return -ENOMEM;
    }
    *own = *dm;
    dmsg_init(dm, own->limit);
    struct outq_seg *s = seg_append(q, OUTQ_DMSG);
    s->dm = own;
    q->bytes += len;
    return 0;
}

int outq_push_file_take(struct outq *q, int fd, off_t off, size_t len)
{
    if (len == 0) {
        close(fd);
        return 0;
    }
    if (reserve(q) < 0) {
        close(fd);
        return -ENOMEM;
    }
    struct outq_seg *s = seg_append(q, OUTQ_FILE);
    s->file.fd = fd;
    s->file.off = off;
    s->file.len = len;
    q->bytes += len;
    return 0;
}

static void pop_front(struct outq *q)
{
    seg_release(seg_at(q, 0));
    q->head = (q->head + 1) % q->cap;
    q->count--;
}

/* Adds the iovecs of one memory segment; returns how many were added (at most room). */
static int seg_iov(struct outq_seg *s, struct iovec *iov, int room)
{
    if (s->kind == OUTQ_BUF) {
        iov[0].iov_base = s->buf.b->data + s->buf.off;
        iov[0].iov_len = s->buf.b->len - s->buf.off;
        return 1;
    }
    return dmsg_iov(s->dm, 0, iov, room);
}

/* Bytes of a segment still to send. */
static size_t seg_left(const struct outq_seg *s)
{
    if (s->kind == OUTQ_BUF)
        return s->buf.b->len - s->buf.off;
    return s->kind == OUTQ_DMSG ? dmsg_len(s->dm) : s->file.len;
}

/* Marks `n` bytes of the front memory segment sent; returns the bytes it had left before. */
static size_t seg_advance(struct outq *q, size_t n)
{
    struct outq_seg *s = seg_at(q, 0);
    size_t avail = seg_left(s);
    if (n < avail) {
        if (s->kind == OUTQ_BUF)
            s->buf.off += (uint32_t)n;
        else
            dmsg_consume(s->dm, n);
        return avail;
    }
    pop_front(q);
    return avail;
}

static size_t iov_bytes(const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int k = 0; k < n; k++)
        total += iov[k].iov_len;
    return total;
}

/* Copies the n iovecs into stage if together they fit in stage_len, describing the copy in *one
 * (which may be iov[0]). Returns 1 if it did, 0 if they are too large (nothing copied). */
static int gather(const struct iovec *iov, int n, char *stage, size_t stage_len, struct iovec *one)
{
    size_t total = iov_bytes(iov, n);
    if (total > stage_len)
        return 0;
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        memcpy(stage + off, iov[k].iov_base, iov[k].iov_len);
        off += iov[k].iov_len;
    }
    *one = (struct iovec){.iov_base = stage, .iov_len = total};
    return 1;
}

int outq_prepare(struct outq *q, struct iovec *iov, int room, char *stage, size_t stage_len,
                 int *more)
{
    int n = 0;
    uint32_t i = 0;
    bool cut = false; /* the last dmsg did not fit whole: the rest of it follows */
    for (; i < q->count && n < room; i++) {
        struct outq_seg *s = seg_at(q, i);
        if (s->kind == OUTQ_FILE)
            break;
        int added = seg_iov(s, iov + n, room - n);
        if (s->kind == OUTQ_DMSG && n + added == room)
            cut = iov_bytes(iov + n, added) < dmsg_len(s->dm);
        n += added;
    }
    /* MSG_MORE only when something really follows: the kernel holds corked bytes for up to
     * 200 ms waiting for it. */
    *more = i < q->count || cut;
    if (n >= GATHER_MIN_IOV && stage && gather(iov, n, stage, stage_len, iov))
        return 1;
    return n;
}

void outq_sent(struct outq *q, size_t n)
{
    q->bytes -= n;
    while (n > 0) {
        size_t avail = seg_advance(q, n);
        n = n < avail ? 0 : n - avail;
    }
}

/* Sends the run of memory segments at the front in one sendmsg. Returns bytes sent or -errno. */
static ssize_t send_buffers(struct outq *q, int sockfd)
{
    struct iovec iov[OUTQ_IOV];
    char stage[OUTQ_GATHER_MAX];
    int more;
    int n = outq_prepare(q, iov, OUTQ_IOV, stage, sizeof(stage), &more);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(sockfd, &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (w < 0)
        return -errno;
    outq_sent(q, (size_t)w);
    return w;
}

static ssize_t send_file(struct outq *q, int sockfd)
{
    struct outq_seg *s = seg_at(q, 0);
    size_t chunk = s->file.len < (1u << 30) ? s->file.len : (1u << 30);
    ssize_t w = sendfile(sockfd, s->file.fd, &s->file.off, chunk);
    if (w < 0)
        return -errno;
    if (w == 0)
        return -EIO; /* the file shrank under us: the response cannot be completed */
    s->file.len -= (size_t)w;
    q->bytes -= (size_t)w;
    if (s->file.len == 0)
        pop_front(q);
    return w;
}

/* 1 if the segment has started to go out. */
static int seg_started(struct outq_seg *s)
{
    if (s->kind == OUTQ_BUF)
        return s->buf.off > s->buf.b->start;
    if (s->kind == OUTQ_DMSG)
        return s->dm->off > 0;
    return 0; /* a file range's offset is not tracked from its start; keep it whole */
}

void outq_join_last(struct outq *q)
{
    if (q->count > 0)
        seg_at(q, q->count - 1)->joined = true;
}

void outq_drop_last(struct outq *q)
{
    if (q->count == 0)
        return;
    struct outq_seg *s = seg_at(q, --q->count);
    q->bytes -= seg_left(s);
    seg_release(s);
}

size_t outq_drop_unsent(struct outq *q)
{
    if (q->count == 0)
        return 0;
    /* A joined front is the rest of a frame whose head went out (and left the queue). */
    uint32_t keep = seg_started(seg_at(q, 0)) || seg_at(q, 0)->joined ? 1 : 0;
    while (keep && keep < q->count && seg_at(q, keep)->joined)
        keep++;
    size_t before = q->bytes;
    while (q->count > keep)
        outq_drop_last(q);
    return before - q->bytes;
}

int outq_flush(struct outq *q, int sockfd, size_t *sent)
{
    while (q->count > 0) {
        ssize_t w =
            seg_at(q, 0)->kind == OUTQ_FILE ? send_file(q, sockfd) : send_buffers(q, sockfd);
        if (w < 0)
            return w == -EWOULDBLOCK ? -EAGAIN : (int)w;
        STATS_COUNT(sends, w > 0);
        if (sent)
            *sent += (size_t)w;
    }
    return 0;
}
