/*
 * broker_session.c - sessions (one per connection) and their subscriptions: exact topics,
 * wildcard patterns (attached to every matching topic, now and as topics are created), the cursor
 * a subscription starts at (recovery, the last N), and presence membership (see broker.h).
 */
#include "broker.h"
#include "broker_internal.h"

#include <stdlib.h>
#include <string.h>

#include "topic.h"

struct broker_session *broker_session_new(struct broker *b, void *owner)
{
    struct broker_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->b = b;
    s->owner = owner;
    s->id = atomic_fetch_add(&b->sessions, 1) + 1;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

uint64_t broker_session_id(const struct broker_session *s)
{
    return s->id;
}

void broker_session_set_compression(struct broker_session *s, bool on)
{
    pthread_mutex_lock(&s->lock);
    s->deflate = on && !s->entries;
    pthread_mutex_unlock(&s->lock);
}

static void unlink_pattern(struct broker *b, struct pattern *p)
{
    for (struct pattern **pp = &b->patterns; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

void broker_session_free(struct broker_session *s)
{
    if (!s)
        return;
    struct broker *b = s->b;
    struct wake_list w = {0};
    pthread_rwlock_wrlock(&b->lock);
    pthread_mutex_lock(&s->lock);
    for (struct pattern *p = s->patterns, *next; p; p = next) {
        next = p->snext;
        unlink_pattern(b, p);
        free(p);
    }
    while (s->entries) {
        s->entries->reasons = 1;
        broker__entry_detach(s, s->entries, false, &w);
    }
    atomic_fetch_sub(&b->subscriptions, s->n_subs);
    pthread_mutex_unlock(&s->lock);
    pthread_rwlock_unlock(&b->lock);
    broker__dispatch(b, &w); /* the leaves of its memberships */
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct pattern *find_pattern(struct broker_session *s, const char *text, size_t len)
{
    for (struct pattern *p = s->patterns; p; p = p->snext)
        if (p->len == len && memcmp(p->text, text, len) == 0)
            return p;
    return NULL;
}

/* A wildcard subscription: every existing matching topic now, new ones as they are created. */
static int subscribe_pattern(struct broker_session *s, const char *text, size_t len)
{
    struct broker *b = s->b;
    struct pattern *p = malloc(sizeof(*p) + len);
    if (!p)
        return BROKER_ENOMEM;
    memcpy(p->text, text, len);
    p->len = len;
    p->s = s;
    p->next = b->patterns;
    b->patterns = p;
    p->snext = s->patterns;
    s->patterns = p;
    for (size_t i = 0; i < b->nbuckets; i++)
        for (struct topic *t = b->buckets[i]; t; t = t->next)
            if (pattern_match(text, len, t->name, t->len) &&
                broker__entry_attach(s, t, false, NULL) < 0)
                s->missed = true; /* told at its next pull, rather than never */
    return 0;
}

/* Sets where an exact subscription starts (recovery, the last N, or only new messages) when
 * `move`, and reports the topic's state either way. An entry that already delivers (through an
 * earlier subscription: `delivering`) keeps its cursor unless the client asks for a replay:
 * moving it would skip messages published but not yet delivered; moved back, it repeats those it
 * had delivered (res->delivered). */
static void place_cursor(struct broker *b, struct entry *e, const struct broker_sub_opts *o,
                         bool move, bool delivering, struct broker_sub_result *res)
{
    struct topic *t = e->t;
    pthread_mutex_lock(&t->lock);
    uint64_t had = e->cursor; /* delivering: the connection has been sent everything before it */
    uint64_t oldest = t->head - t->count + 1; /* == head + 1 when nothing is kept */
    uint64_t start = t->head + 1;
    if (o && o->recover) {
        char epoch[32];
        broker__topic_epoch(b, t, epoch);
        bool same = o->epoch && strcmp(o->epoch, epoch) == 0;
        uint64_t from = o->offset + 1;
        bool fresh = true;
        if (same && from >= oldest && from <= t->head && b->cfg.history_ttl)
            fresh = t->ring[from % t->cap].ms + b->cfg.history_ttl * 1000ull >= broker__now_ms();
        res->recovered = same && o->offset <= t->head && from >= oldest && fresh;
        if (res->recovered)
            start = from;
    } else if (o && o->last > 0) {
        start = t->head + 1 >= oldest + o->last ? t->head + 1 - o->last : oldest;
    }
    /* Never past what the entry has not delivered yet: a replay may go back, but a failed
     * recovery or a short "last" on a live subscription must not skip its backlog. */
    if (!move || e->cursor < start)
        start = e->cursor;
    else if (start <= t->head) { /* asked for: read at the subscriber's pace (broker_internal.h) */
        uint64_t n = t->head + 1 - start;
        e->replay = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    e->cursor = start;
    if (start < t->low)
        t->low = start;
    if (start < oldest) { /* it already fell behind the history: the next pull says lost */
        res->recovered = false;
        start = oldest;
    }
    res->replay = t->head + 1 - start;
    res->delivered = delivering && had > start ? had - 1 : 0;
    res->offset = t->head;
    broker__topic_epoch(b, t, res->epoch);
    if (res->replay > 0)
        atomic_store(&e->dirty, 1); /* the caller pulls right after the ack */
    pthread_mutex_unlock(&t->lock);
}

int broker_subscribe(struct broker_session *s, const char *pattern, size_t len,
                     const struct broker_sub_opts *opts, struct broker_sub_result *res,
                     const char **why)
{
    struct broker *b = s->b;
    memset(res, 0, sizeof(*res));
    bool wild = false;
    if ((*why = pattern_check(pattern, len, &wild)))
        return BROKER_EBADTOPIC;
    bool presence = opts && opts->member;
    if (wild && presence) {
        *why = "presence needs an exact topic name";
        return BROKER_EBADREQ;
    }
    /* Exact topics are created before the locks the attach needs (see the lock order). */
    struct topic *t = wild ? NULL : broker__get_topic(b, pattern, len, true);
    if (!wild && !t)
        return BROKER_ENOMEM;
    int rc = 0;
    struct wake_list w = {0};
    pthread_rwlock_wrlock(&b->lock);
    pthread_mutex_lock(&s->lock);
    struct entry *e = t ? broker__find_entry(s, t) : NULL;
    bool replay = opts && (opts->recover || opts->last);
    res->existed = wild ? find_pattern(s, pattern, len) != NULL : (e && e->exact);
    if (res->existed) {
        if (!wild) /* idempotent, but a resubscribe may still ask for a replay */
            place_cursor(b, e, opts, replay, true, res);
    } else if (s->n_subs >= b->cfg.max_subscriptions) {
        *why = "too many subscriptions on this connection";
        rc = BROKER_ETOOMANY;
    } else if (wild) {
        rc = subscribe_pattern(s, pattern, len);
    } else {
        bool fresh = e == NULL; /* else a wildcard already delivers this topic */
        if ((rc = broker__entry_attach(s, t, true, &e)) == 0)
            place_cursor(b, e, opts, fresh || replay, !fresh, res);
    }
    if (rc == 0 && presence && !e->m &&
        (rc = broker__member_join(b, e, opts->member, opts->member_len, &w)) < 0) {
        if (!res->existed)
            broker__entry_detach(s, e, true, &w); /* all or nothing */
        *why = "out of memory";
    }
    if (rc == 0 && !res->existed) {
        s->n_subs++;
        atomic_fetch_add(&b->subscriptions, 1);
    }
    pthread_mutex_unlock(&s->lock);
    pthread_rwlock_unlock(&b->lock);
    broker__topic_put(t); /* the entry (if any) keeps it now */
    broker__dispatch(b, &w);
    return rc;
}

int broker_unsubscribe(struct broker_session *s, const char *pattern, size_t len)
{
    struct broker *b = s->b;
    bool wild;
    if (pattern_check(pattern, len, &wild))
        return BROKER_EBADTOPIC;
    int rc = BROKER_ENOTSUB;
    struct wake_list w = {0};
    pthread_rwlock_wrlock(&b->lock);
    pthread_mutex_lock(&s->lock);
    if (wild) {
        struct pattern *p = find_pattern(s, pattern, len);
        if (p) {
            for (struct pattern **pp = &s->patterns; *pp; pp = &(*pp)->snext)
                if (*pp == p) {
                    *pp = p->snext;
                    break;
                }
            unlink_pattern(b, p);
            for (struct entry *e = s->entries, *next; e; e = next) {
                next = e->snext;
                if (pattern_match(pattern, len, e->t->name, e->t->len))
                    broker__entry_detach(s, e, false, &w);
            }
            free(p);
            rc = 0;
        }
    } else {
        struct topic *t = broker__find_topic(b, pattern, len, broker__hash_name(pattern, len));
        struct entry *e = t ? broker__find_entry(s, t) : NULL;
        if (e && e->exact) {
            broker__entry_detach(s, e, true, &w);
            rc = 0;
        }
    }
    if (rc == 0) {
        s->n_subs--;
        atomic_fetch_sub(&b->subscriptions, 1);
    }
    pthread_mutex_unlock(&s->lock);
    pthread_rwlock_unlock(&b->lock);
    broker__dispatch(b, &w);
    return rc;
}
