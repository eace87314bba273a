/*
 * broker.c - topics as logs, subscriptions as cursors, wake batches (see broker.h). Sessions and
 * subscribing are in broker_session.c, presence in broker_presence.c, pulling what a session is
 * owed in broker_pull.c, what they share in broker_internal.h.
 *
 * Locks, outermost first: the registry's rwlock (topic table and the list of wildcard
 * subscriptions), a session's mutex, a topic's mutex. A thread may take a later lock while holding
 * an earlier one, never the reverse. Wakes found under a lock are collected in a wake_list and
 * dispatched after every lock is released (a publish's, during a hold, by broker_hold_end).
 *
 * Topic lifetime: a topic is removed by broker_sweep (under the registry's write lock) once it has
 * no exact subscribers, no kept messages and no references; the entries of wildcard subscriptions
 * go with it. A topic pointer is used outside the registry lock only while holding a reference
 * (broker__get_topic/broker__topic_put) or through an entry, under its session's lock (the sweep
 * takes that lock to remove an entry, so an entry reached that way still has its topic).
 */
#include "broker.h"
#include "broker_internal.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "topic.h"
#include "ws_deflate.h"
#include "ws_frame.h"

/* Deliveries shorter than this are not compressed: deflate would barely shrink them. */
#define ZFRAME_MIN     128
#define IDLE_ORDER_MIN 64 /* fewer idle subscribers are woken in whatever order they stand */
/* A ring grown past --history-size (ring_shrink): at most this many of its messages are dropped
 * per publish, and its subscribers scanned at most every max(history_size / 4, this) publishes. */
#define SHRINK_DROPS    256
#define SHRINK_SCAN_MIN 64
/* A hold (broker_hold_begin) dispatches early once its publishes' frames reach this many bytes:
 * a subscriber's pull takes about this much per send (broker_ws.c: PULL_WINDOW), and the wait of
 * the burst's first subscribers, and what waits for each subscriber, stay bounded however long
 * the event runs (a large HTTP batch, a publisher that never pauses). */
#define HOLD_MAX_BYTES (64 * 1024)

struct broker *broker_new(const struct broker_config *cfg, const struct broker_hooks *hooks)
{
    size_t size = (sizeof(struct broker) + 63) / 64 * 64; /* aligned_alloc wants a multiple */
    struct broker *b = aligned_alloc(64, size);
    if (!b)
        return NULL;
    memset(b, 0, size);
    b->cfg = *cfg;
    if (b->cfg.history_size == 0)
        b->cfg.history_size = 1;
    if (b->cfg.history_memory == 0)
        b->cfg.history_memory = SIZE_MAX;
    b->hooks = *hooks;
    b->nbuckets = 1024;
    b->buckets = calloc(b->nbuckets, sizeof(*b->buckets));
    if (!b->buckets) {
        free(b);
        return NULL;
    }
    pthread_rwlock_init(&b->lock, NULL);
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint64_t)broker__now_ms() ^ (uint64_t)(uintptr_t)b;
    snprintf(b->boot, sizeof(b->boot), "%016llx", (unsigned long long)r);
    return b;
}

/* Memory a kept message accounts for against --history-memory. */
static size_t slot_bytes(const struct slot *sl)
{
    return sizeof(struct obuf) + sl->frame->cap +
           (sl->zframe ? sizeof(struct obuf) + sl->zframe->cap : 0);
}

/* Drops the topic's oldest kept message. Under the topic's lock. */
static void drop_oldest(struct broker *b, struct topic *t)
{
    struct slot *sl = &t->ring[(t->head - t->count + 1) % t->cap];
    atomic_fetch_sub(&b->history_bytes, slot_bytes(sl));
    obuf_unref(sl->frame);
    obuf_unref(sl->zframe);
    *sl = (struct slot){0};
    t->count--;
}

static void topic_free(struct broker *b, struct topic *t)
{
    while (t->count)
        drop_oldest(b, t);
    free(t->ring);
    if (t->p) {
        for (size_t i = 0; i < t->p->pcount; i++)
            obuf_unref(t->p->pring[(t->p->phead - i) % t->p->pcap]);
        free(t->p->pring);
        free(t->p->members);
        free(t->p);
    }
    free(t->entries);
    obuf_unref(t->run);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nbuckets; i++) {
        for (struct topic *t = b->buckets[i], *next; t; t = next) {
            next = t->next;
            topic_free(b, t);
        }
    }
    free(b->buckets);
    pthread_rwlock_destroy(&b->lock);
    free(b);
}

/* Room for n more owners in w: batches are added until they hold it. Returns false when memory
 * runs out (what was added stays, for the owners that fit). */
static bool wake_reserve(struct wake_list *w, size_t n)
{
    while (w->nb * BROKER_BATCH_MAX < w->n + n) {
        if (w->nb == w->capb) {
            size_t ncap = w->capb ? w->capb * 2 : 4;
            struct broker_batch **nv = realloc(w->b, ncap * sizeof(*nv));
            if (!nv)
                return false;
            w->b = nv;
            w->capb = ncap;
        }
        struct broker_batch *batch = malloc(sizeof(*batch));
        if (!batch)
            return false;
        batch->n = 0;
        w->b[w->nb++] = batch;
    }
    return true;
}

/* Marks e dirty and lists its owner for a wake unless one is on its way already. Under the lock
 * of e's topic, which keeps e's session alive (sessions detach their entries under it). */
void broker__wake_entry(struct broker *b, struct entry *e, struct wake_list *w)
{
    atomic_store(&e->dirty, 1);
    if (atomic_exchange(&e->s->wake_pending, 1))
        return; /* a wake is already on its way and will find this message too */
    if (!wake_reserve(w, 1)) {
        atomic_store(&e->s->wake_pending, 0); /* nobody comes: the next publish tries */
        return;
    }
    b->hooks.ref(e->s->owner);
    struct broker_batch *batch = w->b[w->n++ / BROKER_BATCH_MAX];
    batch->owners[batch->n++] = e->s->owner;
}

/* ---- registry (caller holds b->lock) ---- */

struct topic *broker__find_topic(struct broker *b, const char *name, size_t len, uint64_t h)
{
    for (struct topic *t = b->buckets[h % b->nbuckets]; t; t = t->next)
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

static void grow_table(struct broker *b)
{
    size_t n = b->nbuckets * 2;
    struct topic **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < b->nbuckets; i++) {
        for (struct topic *t = b->buckets[i], *next; t; t = next) {
            next = t->next;
            t->next = nb[t->hash % n];
            nb[t->hash % n] = t;
        }
    }
    free(b->buckets);
    b->buckets = nb;
    b->nbuckets = n;
}

/* The topic's epoch, into out (32 bytes): made on demand, so a topic does not carry it. */
void broker__topic_epoch(const struct broker *b, const struct topic *t, char *out)
{
    snprintf(out, 32, "%s-%llu", b->boot, (unsigned long long)t->seq);
}

/* Creates a topic and gives it to every wildcard subscription that matches it (write lock). */
static struct topic *create_topic(struct broker *b, const char *name, size_t len, uint64_t h)
{
    struct topic *t = calloc(1, sizeof(*t) + len + 1);
    if (!t)
        return NULL;
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    t->len = len;
    t->hash = h;
    /* Held for a few pointer copies, by every worker that pulls and by publishers: spinning a
     * little before sleeping beats a futex wait and wake for each collision. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&t->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    t->seq = atomic_fetch_add(&b->topic_seq, 1) + 1;
    if (b->ntopics >= b->nbuckets)
        grow_table(b);
    t->next = b->buckets[h % b->nbuckets];
    b->buckets[h % b->nbuckets] = t;
    b->ntopics++;
    for (struct pattern *p = b->patterns; p; p = p->next) {
        if (!pattern_match(p->text, p->len, name, len))
            continue;
        pthread_mutex_lock(&p->s->lock);
        if (broker__entry_attach(p->s, t, false, NULL) < 0)
            p->s->missed = true; /* told at its next pull, rather than never */
        pthread_mutex_unlock(&p->s->lock);
    }
    return t;
}

/* The topic named `name`, created if needed when `create`, with a reference the caller drops
 * with broker__topic_put. Takes and releases the registry lock. */
struct topic *broker__get_topic(struct broker *b, const char *name, size_t len, bool create)
{
    uint64_t h = broker__hash_name(name, len);
    pthread_rwlock_rdlock(&b->lock);
    struct topic *t = broker__find_topic(b, name, len, h);
    if (t)
        atomic_fetch_add(&t->refs, 1);
    pthread_rwlock_unlock(&b->lock);
    if (t || !create)
        return t;
    pthread_rwlock_wrlock(&b->lock);
    t = broker__find_topic(b, name, len, h);
    if (!t)
        t = create_topic(b, name, len, h);
    if (t)
        atomic_fetch_add(&t->refs, 1);
    pthread_rwlock_unlock(&b->lock);
    return t;
}

void broker__topic_put(struct topic *t)
{
    if (t)
        atomic_fetch_sub(&t->refs, 1);
}

/* ---- entries (caller holds the session's lock) ---- */

/* Room for one more pointer in a topic's array of entries (all subscribers, or the presence
 * members), doubling it. Returns 0 or -1. Under the topic's lock. */
int broker__entries_reserve(struct entry ***arr, size_t n, size_t *cap)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 1; /* many topics have one subscriber (a user's own) */
    struct entry **na = realloc(*arr, ncap * sizeof(*na));
    if (!na)
        return -1;
    *arr = na;
    *cap = ncap;
    return 0;
}

/* The idle partition of t->entries (see struct topic). Under the topic's lock. */
static void entry_swap(struct topic *t, size_t i, size_t j)
{
    struct entry *a = t->entries[i];
    t->entries[i] = t->entries[j];
    t->entries[i]->tidx = (uint32_t)i;
    t->entries[j] = a;
    a->tidx = (uint32_t)j;
}

void broker__entry_set_idle(struct topic *t, struct entry *e)
{
    if (e->tidx >= t->n_idle)
        entry_swap(t, e->tidx, t->n_idle++);
}

static void entry_set_busy(struct topic *t, struct entry *e)
{
    if (e->tidx < t->n_idle)
        entry_swap(t, e->tidx, --t->n_idle);
}

struct entry *broker__find_entry(struct broker_session *s, struct topic *t)
{
    for (struct entry *e = s->entries; e; e = e->snext)
        if (e->t == t)
            return e;
    return NULL;
}

/* Adds one reason for s to follow t, creating the entry (cursor at the next new message). */
int broker__entry_attach(struct broker_session *s, struct topic *t, bool exact, struct entry **out)
{
    struct entry *e = broker__find_entry(s, t);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return BROKER_ENOMEM;
        e->s = s;
        e->t = t;
        atomic_init(&e->dirty, 0);
        pthread_mutex_lock(&t->lock);
        if (t->n_entries >= UINT32_MAX ||
            broker__entries_reserve(&t->entries, t->n_entries, &t->cap_entries) < 0) {
            pthread_mutex_unlock(&t->lock);
            free(e);
            return BROKER_ENOMEM;
        }
        e->tidx = (uint32_t)t->n_entries;
        t->entries[t->n_entries++] = e;
        if (s->deflate)
            atomic_fetch_add(&t->n_deflate, 1);
        e->cursor = t->head + 1;
        broker__entry_set_idle(t, e); /* nothing to deliver yet: the next publish wakes it */
        pthread_mutex_unlock(&t->lock);
        e->snext = s->entries;
        s->entries = e;
    }
    e->reasons++;
    if (exact)
        e->exact = true;
    if (out)
        *out = e;
    return 0;
}

/* Drops one reason; the entry goes with the last. Membership goes with the exact subscription. */
/* Takes e out of s's list of entries. Under the session's lock. */
static void session_unlink(struct broker_session *s, struct entry *e)
{
    for (struct entry **pp = &s->entries; *pp; pp = &(*pp)->snext) {
        if (*pp == e) {
            *pp = e->snext;
            return;
        }
    }
}

void broker__entry_detach(struct broker_session *s, struct entry *e, bool exact,
                          struct wake_list *w)
{
    if ((exact || e->reasons == 1) && e->m)
        broker__member_leave(s->b, e, w);
    if (exact)
        e->exact = false;
    if (--e->reasons > 0)
        return;
    struct topic *t = e->t;
    pthread_mutex_lock(&t->lock);
    entry_set_busy(t, e);
    struct entry *last = t->entries[--t->n_entries];
    t->entries[e->tidx] = last;
    last->tidx = e->tidx;
    if (s->deflate)
        atomic_fetch_sub(&t->n_deflate, 1);
    pthread_mutex_unlock(&t->lock);
    session_unlink(s, e);
    free(e);
}

/* ---- publishing ---- */

/* Finishes a frame built from HEADER_ROOM on: puts the WebSocket header in front (RSV1 for a
 * compressed payload). */
void broker__frame_seal(struct obuf *f, bool compressed)
{
    uint8_t hdr[HEADER_ROOM];
    size_t payload = f->len - HEADER_ROOM;
    size_t hl = ws_frame_header_encode(hdr, true, compressed, WS_OP_TEXT, payload, NULL);
    f->start = (uint32_t)(HEADER_ROOM - hl);
    memcpy(f->data + f->start, hdr, hl);
}

/* The delivery frame, all but its offset: `{"type":"msg","topic":"<t>","data":<data>` with room
 * for the WebSocket header in front and the offset behind. */
static struct obuf *frame_start(const char *topic, size_t tlen, const char *data, size_t dlen)
{
    struct obuf *f = obuf_new(HEADER_ROOM + 40 + tlen + dlen + TAIL_ROOM);
    if (!f)
        return NULL;
    f->start = f->len = HEADER_ROOM;
    obuf_puts(f, "{\"type\":\"msg\",\"topic\":\"");
    obuf_put(f, topic, tlen); /* topic names need no JSON escaping */
    obuf_puts(f, "\",\"data\":");
    obuf_put(f, data, dlen);
    return f;
}

/* Adds the offset and the header (which may only be sized now). Under the topic's lock. */
static void frame_finish(struct obuf *f, uint64_t offset)
{
    obuf_puts(f, ",\"offset\":");
    obuf_putu(f, offset);
    obuf_puts(f, "}");
    broker__frame_seal(f, false);
}

/* The compressed twin of frame f, started before the topic's lock: everything but the offset is
 * compressed now (the expensive part), on this thread's deflater. NULL when not worth it. */
static struct obuf *zframe_start(const struct obuf *f)
{
    size_t plain = f->len - HEADER_ROOM;
    if (plain + TAIL_ROOM < ZFRAME_MIN)
        return NULL;
    size_t cap = plain + TAIL_ROOM + 64; /* deflate's worst case is a few bytes per 16 KiB */
    struct obuf *z = obuf_new(HEADER_ROOM + cap + cap / 1024);
    if (!z)
        return NULL;
    size_t n = 0;
    if (ws_deflate_part((const uint8_t *)f->data + HEADER_ROOM, plain, 15, true, false,
                        (uint8_t *)z->data + HEADER_ROOM, z->cap - HEADER_ROOM - TAIL_ROOM,
                        &n) < 0) {
        obuf_unref(z);
        return NULL;
    }
    z->start = z->len = (uint32_t)(HEADER_ROOM + n);
    return z;
}

/* Compresses the tail frame_finish added to f (from byte `from`) and seals z; NULL when it does
 * not fit or did not make the message smaller (subscribers then get f). Under the topic's lock,
 * on the thread that started z. */
static struct obuf *zframe_finish(struct obuf *z, const struct obuf *f, size_t from)
{
    size_t n = 0;
    int rc = ws_deflate_part((const uint8_t *)f->data + from, f->len - from, 15, false, true,
                             (uint8_t *)z->data + z->len, z->cap - z->len, &n);
    z->len += (uint32_t)n;
    if (rc < 0 || z->len - HEADER_ROOM >= f->len - HEADER_ROOM) {
        obuf_unref(z);
        return NULL;
    }
    broker__frame_seal(z, true);
    return z;
}

/* Whether the topic's oldest kept message may go: no subscriber within max_lag bytes of the head
 * still needs it. A burst longer than --history-size must not cut off a subscriber that is keeping
 * up (its wake may simply not have run yet: one read can publish thousands of messages before the
 * worker serves any wake); one further behind is disconnected as a slow consumer anyway
 * (broker_ws.c), which is what bounds the memory kept for it. t->low is a lower bound of the
 * cursors that count, so the entries are scanned only when the oldest reaches it: about once per
 * history_size publishes while subscribers keep up. Under the topic's lock. */
static bool oldest_unneeded(struct broker *b, struct topic *t)
{
    uint64_t oldest = t->head - t->count + 1;
    if (oldest < t->low || b->cfg.max_lag == 0)
        return true;
    uint64_t low = t->head + 1;
    for (size_t i = 0; i < t->n_entries; i++) {
        uint64_t c = t->entries[i]->cursor;
        /* Below the oldest: lost already. Past the head: has everything. */
        if (c < oldest || c > t->head || c >= low)
            continue;
        if (t->bytes - t->ring[c % t->cap].before < b->cfg.max_lag)
            low = c;
    }
    t->low = low;
    t->scanned = t->head;
    return oldest < low;
}

/* Moves the kept messages into a ring of ncap slots (>= count). False when out of memory. */
static bool ring_resize(struct topic *t, size_t ncap)
{
    struct slot *nr = malloc(ncap * sizeof(*nr));
    if (!nr)
        return false;
    for (uint64_t o = t->head - t->count + 1; o <= t->head; o++)
        nr[o % ncap] = t->ring[o % t->cap];
    free(t->ring);
    t->ring = nr;
    t->cap = ncap;
    return true;
}

/* Publishes between scans made only to shrink a grown ring (a scan looks at every entry). */
static uint64_t rescan_every(const struct broker *b)
{
    return b->cfg.history_size / 4 > SHRINK_SCAN_MIN ? b->cfg.history_size / 4 : SHRINK_SCAN_MIN;
}

/* A ring grown past history_size for a subscriber comes back down as far as the subscribers
 * allow: at most `max_drops` messages here (what one publish or sweep frees under the lock is
 * bounded), and its slot array with it. `scan`: refresh t->low now if it holds the ring up. */
static void ring_shrink(struct broker *b, struct topic *t, bool scan, size_t max_drops)
{
    size_t hs = b->cfg.history_size;
    if (t->count <= hs)
        return;
    if (scan && t->head - t->count + 1 >= t->low)
        oldest_unneeded(b, t);
    for (size_t n = 0; n < max_drops && t->count > hs && t->head - t->count + 1 < t->low; n++)
        drop_oldest(b, t);
    if (t->cap > hs && t->count <= t->cap / 4)
        ring_resize(t, t->cap / 2 > hs ? t->cap / 2 : hs); /* out of memory: stays as it is */
}

/* Appends f (and its compressed twin z, or NULL) as the topic's next message. At --history-size
 * the oldest gives way, unless a subscriber still needs it (oldest_unneeded): then the ring grows
 * (or, out of memory, the oldest gives way after all), and shrinks back at later publishes and
 * sweeps once that subscriber has it. */
static int ring_push(struct broker *b, struct topic *t, struct obuf *f, struct obuf *z)
{
    size_t hs = b->cfg.history_size;
    if (t->count == t->cap) {
        bool grow = t->cap < hs || !oldest_unneeded(b, t);
        size_t ncap = t->cap ? t->cap * 2 : RING_MIN;
        if (t->cap < hs && ncap > hs)
            ncap = hs;
        if (grow && !ring_resize(t, ncap) && t->cap == 0)
            return BROKER_ENOMEM; /* no ring at all */
    }
    if (t->count == t->cap)
        drop_oldest(b, t); /* the oldest gives way */
    ring_shrink(b, t, t->head - t->scanned >= rescan_every(b), SHRINK_DROPS);
    uint64_t off = t->head + 1;
    t->count++;
    t->ring[off % t->cap] =
        (struct slot){.frame = f, .zframe = z, .ms = broker__now_ms(), .before = t->bytes};
    t->bytes += f->len - f->start;
    atomic_fetch_add(&b->history_bytes, slot_bytes(&t->ring[off % t->cap]));
    t->head = off;
    return 0;
}

static int by_session(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(struct entry *const *)a)->s;
    uintptr_t y = (uintptr_t)(*(struct entry *const *)b)->s;
    return x < y ? -1 : x > y;
}

/* Puts the idle entries in the order of their sessions' addresses. Why: every pull moves its entry
 * to the idle front (broker__entry_set_idle), so the idle ones stand in the order they last
 * pulled; with several workers serving a fan-out that order changes from one wave to the next, and
 * the wake batches with it, so each wave walks the subscribers' connections, sessions and sockets
 * in a new random order. In a fixed order (the sessions' allocation order, mostly) the same
 * subscribers share a batch and are visited the same way every wave: at 10,000 subscribers on two
 * workers a send cost 8.8-11.0 us of server CPU against 10.3-12.8 without (6 A/B pairs). Small
 * wakes skip it; a large one sorts once per wave, a small cost next to one send per subscriber. */
static void order_idle(struct topic *t)
{
    if (t->n_idle <= IDLE_ORDER_MIN)
        return;
    qsort(t->entries, t->n_idle, sizeof(*t->entries), by_session);
    for (size_t i = 0; i < t->n_idle; i++)
        t->entries[i]->tidx = (uint32_t)i;
}

/* Wakes the subscribers that pulled since their last wake (the idle ones) and makes them busy: the
 * busy ones have a pull coming, which reads the new head. Under the topic lock, which also keeps
 * every entry's session alive (sessions detach their entries under it). Without memory for the
 * wake list nobody is woken and the entries stay idle: the next publish tries again. */
static void collect_wakes(struct broker *b, struct topic *t, struct wake_list *w)
{
    if (!wake_reserve(w, t->n_idle))
        return;
    if (t->n_idle >= RUN_MIN_SUBS)
        t->wave_from = t->head; /* where every subscriber woken here stands (pull_run) */
    order_idle(t);
    for (size_t i = 0; i < t->n_idle; i++)
        broker__wake_entry(b, t->entries[i], w);
    t->n_idle = 0;
}

void broker__dispatch(struct broker *b, struct wake_list *w)
{
    for (size_t i = 0; i < w->nb; i++) {
        if (w->b[i]->n > 0)
            b->hooks.dispatch(w->b[i], b->hooks.ctx);
        else
            free(w->b[i]);
    }
    free(w->b);
}

/* The calling thread's publishes held back (broker_hold_begin): their wakes, the broker they are
 * for, and the bytes of their frames. */
static __thread struct {
    bool on;
    struct broker *b;
    struct wake_list w;
    size_t bytes;
} held;

/* Dispatches what is held; a hold that is on stays on. */
static void held_dispatch(void)
{
    struct wake_list w = held.w;
    struct broker *b = held.b;
    held.w = (struct wake_list){0};
    held.b = NULL;
    held.bytes = 0;
    if (b)
        broker__dispatch(b, &w);
}

void broker_hold_begin(void)
{
    assert(!held.on);
    held.on = true;
}

void broker_hold_end(void)
{
    held.on = false;
    held_dispatch();
}

/* What a hold may gather before it dispatches: HOLD_MAX_BYTES, or less when a subscriber is
 * allowed less behind (--max-outbound), so a held burst never makes one a slow consumer. */
static size_t hold_max(const struct broker *b)
{
    size_t lag = b->cfg.max_lag / 4;
    return lag > 0 && lag < HOLD_MAX_BYTES ? lag : HOLD_MAX_BYTES;
}

/* Where a publish on b collects its wakes: the thread's held list while a hold is on (the first
 * publish names the broker; one of another broker, never seen in Herald, dispatches its own at
 * once), else `own`, dispatched by the publish itself. */
static struct wake_list *publish_wakes(struct broker *b, struct wake_list *own)
{
    if (!held.on || (held.b && held.b != b))
        return own;
    held.b = b;
    return &held.w;
}

/* Over --history-memory: drops t's oldest messages, but never one a subscriber of t has not
 * received yet (that would cut it off as a slow consumer for no fault of its own) and never the
 * newest. Under the topic's lock, which also guards every entry's cursor. */
static void trim_for_cap(struct broker *b, struct topic *t)
{
    if (atomic_load(&b->history_bytes) <= b->cfg.history_memory || t->count <= 1)
        return;
    uint64_t needed = t->head; /* the newest stays */
    for (size_t i = 0; i < t->n_entries; i++)
        if (t->entries[i]->cursor < needed)
            needed = t->entries[i]->cursor;
    while (t->count > 1 && t->head - t->count + 1 < needed &&
           atomic_load(&b->history_bytes) > b->cfg.history_memory)
        drop_oldest(b, t);
}

int broker_publish(struct broker *b, const char *topic, size_t tlen, const char *data, size_t dlen,
                   struct broker_pub_result *res, const char **why)
{
    if ((*why = topic_check(topic, tlen)))
        return BROKER_EBADTOPIC;
    struct obuf *f = frame_start(topic, tlen, data, dlen);
    struct topic *t = f ? broker__get_topic(b, topic, tlen, true) : NULL;
    if (!t) {
        obuf_unref(f);
        *why = "out of memory";
        return BROKER_ENOMEM;
    }
    /* Compressed once for every subscriber that takes it, outside the lock but for the offset. */
    struct obuf *z = atomic_load(&t->n_deflate) ? zframe_start(f) : NULL;
    size_t body = f->len;
    struct wake_list own = {0}, *w = publish_wakes(b, &own);
    pthread_mutex_lock(&t->lock);
    frame_finish(f, t->head + 1);
    if (z)
        z = zframe_finish(z, f, body);
    int rc = ring_push(b, t, f, z);
    if (rc == 0) {
        res->offset = t->head;
        res->reach = (unsigned)t->n_entries;
        collect_wakes(b, t, w);
        /* Over the global cap, the topic that adds makes room first; the sweep trims the
         * others (topics that stopped publishing) within a minute. */
        trim_for_cap(b, t);
    }
    pthread_mutex_unlock(&t->lock);
    broker__topic_put(t);
    if (rc < 0) {
        obuf_unref(f);
        obuf_unref(z);
        *why = "out of memory";
        return rc;
    }
    atomic_fetch_add(&b->published, 1);
    if (w == &own)
        broker__dispatch(b, &own);
    else if ((held.bytes += body) >= hold_max(b))
        held_dispatch(); /* a subscriber's pull window's worth: holding longer gains nothing */
    return 0;
}

/* Drops messages past the TTL (they can no longer be recovered). Under the topic's lock. */
static void trim_expired(struct broker *b, struct topic *t, uint64_t now)
{
    if (!b->cfg.history_ttl)
        return;
    while (t->count &&
           t->ring[(t->head - t->count + 1) % t->cap].ms + b->cfg.history_ttl * 1000ull < now)
        drop_oldest(b, t);
}

/* The entries of t if they are all there for wildcard subscriptions only (no exact subscriber,
 * so no presence member either), copied, with their number in *n; NULL if not, or if out of
 * memory. Under t's lock and the registry's write lock, which every subscribe and unsubscribe
 * holds: what makes an entry exact cannot change until the sweep is done. */
static struct entry **wildcard_entries(struct topic *t, size_t *n)
{
    for (size_t i = 0; i < t->n_entries; i++)
        if (t->entries[i]->exact || t->entries[i]->m)
            return NULL;
    struct entry **copy = malloc(t->n_entries * sizeof(*copy));
    if (copy)
        memcpy(copy, t->entries, t->n_entries * sizeof(*copy));
    *n = t->n_entries;
    return copy;
}

/* Whether e has had every message of its topic (next to deliver: past head). A subscriber behind
 * must keep its entry, so that its next pull finds what the TTL took from it and ends it with
 * 4008, not silently. Under the registry's write lock (no publish moves head); takes the
 * session's (the pulls that move the cursor hold it). */
static bool entry_caught_up(struct entry *e, uint64_t head)
{
    pthread_mutex_lock(&e->s->lock);
    bool done = e->cursor > head;
    pthread_mutex_unlock(&e->s->lock);
    return done;
}

/* Takes e out of its session and frees it (its topic goes next). Under the registry's write lock;
 * takes the session's, which a pull holds while it walks the session's entries. */
static void entry_release(struct entry *e)
{
    pthread_mutex_lock(&e->s->lock);
    session_unlink(e->s, e);
    pthread_mutex_unlock(&e->s->lock);
    free(e);
}

/* Unlinks and frees t if nothing needs it any more: no exact subscriber, no kept message, no
 * reference. Wildcard subscriptions do not keep it: they are owed nothing from a topic that keeps
 * no message, they cannot recover (broker.md), and kept for them, every name ever used under
 * `>` would stay; their entries go with it, and create_topic attaches them again if the name
 * comes back. Under the registry's write lock. */
static bool topic_collect(struct broker *b, struct topic **link, uint64_t now)
{
    struct topic *t = *link;
    pthread_mutex_lock(&t->lock);
    trim_expired(b, t, now);
    trim_for_cap(b, t);
    ring_shrink(b, t, true, SIZE_MAX);    /* a quiet topic has no publishes to shrink it */
    if (t->run && t->run_to != t->head) { /* superseded: no pull can take it any more */
        obuf_unref(t->run);
        t->run = NULL;
    }
    bool idle = t->count == 0 && atomic_load(&t->refs) == 0;
    struct entry **wild = NULL;
    size_t nwild = 0;
    if (idle && t->n_entries > 0)
        idle = (wild = wildcard_entries(t, &nwild)) != NULL;
    uint64_t head = t->head;
    pthread_mutex_unlock(&t->lock);
    for (size_t i = 0; idle && i < nwild; i++)
        idle = entry_caught_up(wild[i], head);
    if (!idle) {
        free(wild);
        return false;
    }
    for (size_t i = 0; i < nwild; i++)
        entry_release(wild[i]);
    free(wild);
    *link = t->next;
    b->ntopics--;
    topic_free(b, t);
    atomic_fetch_add(&b->topics_removed, 1);
    return true;
}

size_t broker_sweep(struct broker *b, size_t buckets)
{
    uint64_t now = broker__now_ms();
    size_t removed = 0;
    pthread_rwlock_wrlock(&b->lock);
    if (buckets < b->nbuckets / 60)
        buckets = b->nbuckets / 60;
    if (buckets > b->nbuckets)
        buckets = b->nbuckets;
    for (size_t k = 0; k < buckets; k++) {
        size_t i = b->sweep_pos++ % b->nbuckets;
        for (struct topic **link = &b->buckets[i]; *link;) {
            if (topic_collect(b, link, now))
                removed++;
            else
                link = &(*link)->next;
        }
    }
    pthread_rwlock_unlock(&b->lock);
    return removed;
}

void broker_stats(struct broker *b, struct broker_stats *st)
{
    pthread_rwlock_rdlock(&b->lock);
    st->topics = b->ntopics;
    pthread_rwlock_unlock(&b->lock);
    st->subscriptions = atomic_load(&b->subscriptions);
    st->published = atomic_load(&b->published);
    st->delivered = st->delivered_bytes = 0;
    for (size_t i = 0; i < BROKER_SHARDS; i++) {
        st->delivered += atomic_load(&b->shard[i].delivered);
        st->delivered_bytes += atomic_load(&b->shard[i].delivered_bytes);
    }
    st->members = atomic_load(&b->members);
    st->history_bytes = atomic_load(&b->history_bytes);
    st->topics_removed = atomic_load(&b->topics_removed);
}

size_t broker_topics(struct broker *b, void (*fn)(const struct broker_topic_info *, void *),
                     void *ctx, size_t max)
{
    size_t seen = 0;
    pthread_rwlock_rdlock(&b->lock);
    for (size_t i = 0; i < b->nbuckets && seen < max; i++) {
        for (struct topic *t = b->buckets[i]; t && seen < max; t = t->next, seen++) {
            pthread_mutex_lock(&t->lock);
            struct broker_topic_info info = {.name = t->name,
                                             .len = t->len,
                                             .offset = t->head,
                                             .subscribers = t->n_entries,
                                             .members = t->p ? t->p->n_members : 0};
            pthread_mutex_unlock(&t->lock);
            fn(&info, ctx);
        }
    }
    size_t total = b->ntopics;
    pthread_rwlock_unlock(&b->lock);
    return total;
}
