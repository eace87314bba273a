/*
 * broker_presence.c - presence: a topic's members (sessions that subscribed with member info) and
 * the log of their joins and leaves, which members pull like messages (see broker.h and
 * broker_internal.h). Presence state is made at a topic's first join: most topics have none.
 */
#include "broker.h"
#include "broker_internal.h"

#include <stdlib.h>
#include <string.h>

#include "topic.h"

/* {"type":"<type>","topic":"<t>"[,"member":<member>]} as one text frame, or NULL. */
static struct obuf *event_frame(const char *type, const struct topic *t, const char *member,
                                size_t mlen)
{
    struct obuf *f = obuf_new(HEADER_ROOM + 48 + strlen(type) + t->len + mlen);
    if (!f)
        return NULL;
    f->start = f->len = HEADER_ROOM;
    obuf_puts(f, "{\"type\":\"");
    obuf_puts(f, type);
    obuf_puts(f, "\",\"topic\":\"");
    obuf_put(f, t->name, t->len);
    obuf_puts(f, "\"");
    if (member) {
        obuf_puts(f, ",\"member\":");
        obuf_put(f, member, mlen);
    }
    obuf_puts(f, "}");
    broker__frame_seal(f, false);
    return f;
}

/* Appends an event (or NULL: a lost one) to the topic's presence log, the oldest giving way. */
static void pring_push(struct presence *p, struct obuf *f)
{
    if (p->pcount == p->pcap && p->pcap < PRESENCE_EVENTS) {
        size_t ncap = p->pcap ? p->pcap * 2 : RING_MIN;
        struct obuf **nr = malloc(ncap * sizeof(*nr));
        if (nr) {
            for (uint64_t n = p->phead - p->pcount + 1; n <= p->phead; n++)
                nr[n % ncap] = p->pring[n % p->pcap];
            free(p->pring);
            p->pring = nr;
            p->pcap = ncap;
        }
    }
    if (p->pcap == 0) { /* not even the first ring: readers find the gap and get presence_lost */
        obuf_unref(f);
        p->phead++;
        return;
    }
    uint64_t n = p->phead + 1;
    if (p->pcount == p->pcap)
        obuf_unref(p->pring[n % p->pcap]);
    else
        p->pcount++;
    p->pring[n % p->pcap] = f;
    p->phead = n;
}

/* Records an event and wakes every member except `self`. Under the topic's lock. */
static void presence_event(struct broker *b, struct topic *t, const char *type,
                           const struct entry *self, struct wake_list *w)
{
    struct presence *p = t->p;
    pring_push(p, event_frame(type, t, self->m->json, self->m->len));
    for (size_t i = 0; i < p->n_members; i++)
        if (p->members[i] != self)
            broker__wake_entry(b, p->members[i], w);
}

int broker__member_join(struct broker *b, struct entry *e, const char *member, size_t len,
                        struct wake_list *w)
{
    struct topic *t = e->t;
    struct membership *m = malloc(sizeof(*m) + len);
    if (!m)
        return BROKER_ENOMEM;
    m->len = len;
    memcpy(m->json, member, len);
    pthread_mutex_lock(&t->lock);
    if (!t->p)
        t->p = calloc(1, sizeof(*t->p));
    struct presence *p = t->p;
    if (!p || broker__entries_reserve(&p->members, p->n_members, &p->cap_members) < 0) {
        pthread_mutex_unlock(&t->lock);
        free(m);
        return BROKER_ENOMEM;
    }
    e->m = m;
    m->midx = p->n_members;
    p->members[p->n_members++] = e;
    presence_event(b, t, "join", e, w);
    m->pcursor = p->phead + 1; /* a member does not hear its own join */
    pthread_mutex_unlock(&t->lock);
    atomic_fetch_add(&b->members, 1);
    return 0;
}

void broker__member_leave(struct broker *b, struct entry *e, struct wake_list *w)
{
    struct topic *t = e->t;
    pthread_mutex_lock(&t->lock);
    struct presence *p = t->p; /* made by the join */
    struct entry *last = p->members[--p->n_members];
    p->members[e->m->midx] = last;
    last->m->midx = e->m->midx;
    presence_event(b, t, "leave", e, w);
    pthread_mutex_unlock(&t->lock);
    free(e->m);
    e->m = NULL;
    atomic_fetch_sub(&b->members, 1);
}

/* Tells e's member to ask again: it missed events. Returns the bytes queued, 0 if it could not. */
static size_t queue_lost(struct topic *t, struct outq *out)
{
    struct obuf *f = event_frame("presence_lost", t, NULL, 0);
    if (!f || outq_push_take(out, f) < 0)
        return 0; /* (outq_push_take released f) */
    return f->len - f->start;
}

size_t broker__pull_presence(struct entry *e, struct outq *out, size_t budget, bool *more,
                             size_t *left)
{
    struct topic *t = e->t;
    struct presence *p = t->p; /* made by the join */
    struct membership *m = e->m;
    size_t bytes = 0;
    uint64_t oldest = p->phead - p->pcount + 1;
    if (budget > 0 && m->pcursor < oldest) { /* the log moved past it */
        if (!(bytes = queue_lost(t, out)))
            goto rest;
        m->pcursor = oldest;
    }
    while (m->pcursor <= p->phead && budget > 0 && (bytes < budget || bytes == 0)) {
        struct obuf *f = p->pring[m->pcursor % p->pcap];
        size_t n;
        if (!f) { /* events that could not be built: one presence_lost for the run of them */
            if (!(n = queue_lost(t, out)))
                break;
            while (m->pcursor <= p->phead && !p->pring[m->pcursor % p->pcap])
                m->pcursor++;
        } else {
            if (outq_push_take(out, obuf_ref(f)) < 0)
                break;
            n = f->len - f->start;
            m->pcursor++;
        }
        bytes += n;
    }
rest:
    if (m->pcursor > p->phead)
        return bytes;
    *more = true; /* what waits counts against the member like messages (broker_pull) */
    for (uint64_t n = m->pcursor > oldest ? m->pcursor : oldest; n <= p->phead; n++) {
        const struct obuf *f = p->pring[n % p->pcap];
        if (f)
            *left += f->len - f->start;
    }
    return bytes;
}

size_t broker_presence(struct broker *b, const char *topic, size_t len, size_t limit,
                       void (*fn)(const char *member, size_t len, void *ctx), void *ctx)
{
    if (topic_check(topic, len))
        return 0;
    struct topic *t = broker__get_topic(b, topic, len, false);
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    struct presence *p = t->p;
    size_t count = p ? p->n_members : 0;
    for (size_t i = 0; i < count && i < limit; i++)
        fn(p->members[i]->m->json, p->members[i]->m->len, ctx);
    pthread_mutex_unlock(&t->lock);
    broker__topic_put(t);
    return count;
}
