/*
 * broker_pull.c - delivery: what a woken session pulls from its topics' logs into its outq (see
 * broker.h: broker_pull), the plain frames of a fan-out's wave shared as one run, and the
 * per-thread delivery counters. Locks as in broker.c: the session's, then each topic's.
 */
#include "broker.h"
#include "broker_internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

/* The calling thread's counters: threads take the shards in turn at their first pull, so up to
 * BROKER_SHARDS threads (a worker per CPU) each have their own. */
static struct broker_shard *my_shard(struct broker *b)
{
    static atomic_uint next;
    static __thread unsigned mine = UINT_MAX;
    if (mine == UINT_MAX)
        mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % BROKER_SHARDS;
    return &b->shard[mine];
}

/* The shared buffer of the plain frames from `from` to the head (`bytes` of them), the topic's if
 * it is of that range, else made now; NULL when memory runs out (the caller then queues the frames
 * one by one). Under the topic's lock. */
static struct obuf *take_run(struct topic *t, uint64_t from, size_t bytes)
{
    if (t->run && t->run_from == from && t->run_to == t->head)
        return t->run;
    struct obuf *r = obuf_new(bytes);
    if (!r)
        return NULL;
    for (uint64_t o = from; o <= t->head; o++) {
        const struct obuf *f = t->ring[o % t->cap].frame;
        obuf_put(r, f->data + f->start, f->len - f->start); /* fits: bytes is their sum */
    }
    obuf_unref(t->run);
    t->run = r;
    t->run_from = from;
    t->run_to = t->head;
    return r;
}

/* Queues e's plain frames from its cursor to the head as one shared run (take_run) and returns
 * their bytes, or returns 0 having queued nothing. Only for a subscriber of the topic's latest
 * large wake (its cursor at wave_from: every subscriber that wake reached stands there), in a
 * topic of RUN_MIN_SUBS subscribers or more, with two messages or more within RUN_MAX_BYTES, all
 * of which its budget takes (as pull_entry's loop would: the messages before the last one stay
 * under the budget). Anyone else (a longer backlog, a budget that stops earlier, compressed
 * frames) goes frame by frame: its range would replace the run the wave shares. So a run is made
 * at most once per wake and head, however the pulls interleave. Under the topic's lock. */
static size_t pull_run(struct entry *e, struct outq *out, size_t budget)
{
    struct topic *t = e->t;
    if (e->s->deflate || t->n_entries < RUN_MIN_SUBS || e->cursor != t->wave_from ||
        e->cursor >= t->head)
        return 0;
    uint64_t first = t->ring[e->cursor % t->cap].before;
    uint64_t bytes = t->bytes - first, but_last = t->ring[t->head % t->cap].before - first;
    if (bytes > RUN_MAX_BYTES || but_last >= budget)
        return 0;
    struct obuf *r = take_run(t, e->cursor, (size_t)bytes);
    if (!r || outq_push_take(out, obuf_ref(r)) < 0)
        return 0;
    e->cursor = t->head + 1;
    return (size_t)bytes;
}

/* The cursor moved past n messages: as many fewer of the replay e asked for wait. */
static void replay_consume(struct entry *e, uint64_t n)
{
    e->replay = n < e->replay ? e->replay - (uint32_t)n : 0;
}

/* Queues what e has not received, up to the budget (0: nothing), and adds to *left the bytes
 * still waiting for it. Under the session's lock. */
static size_t pull_entry(struct broker *b, struct entry *e, struct outq *out, size_t budget,
                         bool *more, bool *lost, size_t *left)
{
    struct topic *t = e->t;
    size_t bytes = 0;
    pthread_mutex_lock(&t->lock);
    if (e->m && e->m->pcursor <= t->p->phead) { /* a member: t->p exists */
        bytes += broker__pull_presence(e, out, budget, more, left);
        if (e->m->pcursor <= t->p->phead)
            atomic_store(&e->dirty, 1); /* events wait for the next pull */
    }
    uint64_t oldest = t->head - t->count + 1;
    if (e->cursor < oldest) {
        *lost = true; /* the history moved past this subscriber: it cannot keep up */
        replay_consume(e, oldest - e->cursor);
        e->cursor = oldest;
    }
    if (e->cursor < t->low)
        t->low = e->cursor; /* it may need protecting again (oldest_unneeded) */
    uint64_t from = e->cursor;
    bytes += pull_run(e, out, budget - (bytes < budget ? bytes : budget));
    while (e->cursor <= t->head && budget > 0 && (bytes < budget || bytes == 0)) {
        const struct slot *sl = &t->ring[e->cursor % t->cap];
        struct obuf *f = e->s->deflate && sl->zframe ? sl->zframe : sl->frame;
        if (outq_push_take(out, obuf_ref(f)) < 0)
            break;
        bytes += f->len - f->start;
        e->cursor++;
    }
    uint64_t done = e->cursor - from;
    replay_consume(e, done);
    if (e->cursor <= t->head) {
        *more = true;
        /* What it asked to replay does not count: only how far behind the live stream it is. */
        uint64_t live = e->cursor + e->replay;
        if (live <= t->head)
            *left += t->bytes - t->ring[live % t->cap].before;
        atomic_store(&e->dirty, 1); /* the backlog waits for the next pull */
    }
    /* The next publish wakes it, also with a backlog: that is how a subscriber that stopped
     * reading is noticed (broker.h). */
    broker__entry_set_idle(t, e);
    pthread_mutex_unlock(&t->lock);
    /* Once per pull, not per message: every worker adds to these. */
    struct broker_shard *sh = my_shard(b);
    atomic_fetch_add_explicit(&sh->delivered, done, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->delivered_bytes, bytes, memory_order_relaxed);
    return bytes;
}

size_t broker_pull(struct broker_session *s, struct outq *out, size_t budget, bool *more,
                   bool *lost, size_t *left)
{
    size_t total = 0;
    *more = *lost = false;
    *left = 0;
    /* Cleared before any head is read: a publish after this point wakes the session again, also
     * when it already has a backlog (that is how a stuck subscriber gets noticed). */
    atomic_store(&s->wake_pending, 0);
    pthread_mutex_lock(&s->lock);
    *lost = s->missed;
    for (struct entry *e = s->entries; e; e = e->snext) {
        if (!atomic_exchange(&e->dirty, 0))
            continue;
        /* Past the budget it still counts what waits (and notices a lost subscription). */
        total += pull_entry(s->b, e, out, total < budget ? budget - total : 0, more, lost, left);
    }
    pthread_mutex_unlock(&s->lock);
    return total;
}

bool broker_replaying(struct broker_session *s)
{
    bool any = false;
    pthread_mutex_lock(&s->lock);
    for (struct entry *e = s->entries; e && !any; e = e->snext)
        any = e->replay > 0;
    pthread_mutex_unlock(&s->lock);
    return any;
}
