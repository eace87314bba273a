/*
 * broker_internal.h - what the broker's files share: broker.c (topics, entries, publishing,
 * sweeping), broker_pull.c (delivery), broker_session.c (sessions and subscriptions) and
 * broker_presence.c (members and their join/leave log). Not part of the broker's contract (that is
 * broker.h).
 *
 * Locks (outermost first, as broker.c's opening comment explains): the registry's rwlock, a
 * session's mutex, a topic's mutex. Each function below says which it expects to be held.
 */
#ifndef HERALD_BROKER_INTERNAL_H
#define HERALD_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "broker.h"
#include "outq.h"

#define RING_MIN    16
#define HEADER_ROOM 10 /* the largest server frame header */
#define TAIL_ROOM   32 /* ,"offset":<20 digits>} */

struct slot {
    struct obuf *frame;
    struct obuf *zframe; /* the same message compressed (permessage-deflate), or NULL */
    uint64_t ms;         /* when it was published (monotonic), for the TTL */
    uint64_t before;     /* t->bytes when it came: what a subscriber at it still has to take */
};

struct topic;

/* A session's membership of a topic (presence), apart from the entry: few subscriptions have one.
 */
struct membership {
    size_t midx;      /* index in t->p->members (topic's lock) */
    uint64_t pcursor; /* next presence event to deliver (session's and topic's lock) */
    size_t len;
    char json[]; /* the member JSON, as given */
};

/* One session's interest in one topic, shared by every subscription (exact or wildcard) of the
 * session that covers the topic, so a message is delivered once however many of them match. */
struct entry {
    struct broker_session *s;
    struct topic *t;
    struct entry *snext;  /* in the session's list */
    uint64_t cursor;      /* next offset to deliver (session's lock) */
    struct membership *m; /* presence: set while the session is a member of the topic */
    unsigned reasons;     /* subscriptions covering it (session's lock) */
    /* index in t->entries; below t->n_idle: idle (topic's lock). 32 bits here and in `replay`
     * and a one-byte `dirty` keep the entry at 56 bytes (a 64-byte malloc chunk). */
    uint32_t tidx;
    /* Messages from the cursor on that the subscriber asked for (recover, last): they do not
     * count against --max-outbound, which bounds how far behind the live stream it may fall
     * (session's lock, saturated at UINT32_MAX). */
    uint32_t replay;
    atomic_uchar dirty; /* new messages since the last pull */
    bool exact;         /* one of them is the exact name */
};

/* A topic's presence: its members and the log of their joins and leaves. */
struct presence {
    struct entry **members; /* presence members, a subset of the topic's entries */
    size_t n_members, cap_members;
    struct obuf **pring; /* join/leave frames phead-pcount+1 .. phead, at (n % pcap); NULL:
                          * an event that could not be built (its readers get presence_lost) */
    size_t pcap, pcount;
    uint64_t phead;
};

struct topic {
    struct topic *next; /* hash chain */
    uint64_t hash;
    size_t len;
    uint64_t seq;          /* the epoch is "<boot>-<seq>" (topic_epoch) */
    atomic_uint n_deflate; /* entries of sessions that take compressed frames */
    atomic_uint refs;      /* threads using it outside the registry lock (get_topic) */
    pthread_mutex_t lock;
    uint64_t head;     /* last offset, 0 before the first message */
    uint64_t bytes;    /* of every delivery frame so far (plain), for subscribers' backlogs */
    struct slot *ring; /* offsets head-count+1 .. head, at (offset % cap) */
    size_t cap, count;
    uint64_t low;     /* no cursor within max_lag is below it (a lower bound, oldest_unneeded) */
    uint64_t scanned; /* head when low was last computed */
    /* Every subscriber's entry. The first n_idle have pulled since their last wake; a publish
     * wakes just those and makes them busy. The busy ones have a wake on its way, whose pull will
     * read the new head anyway. So a publish costs the wakes it sends, not one per subscriber. */
    struct entry **entries;
    size_t n_entries, cap_entries, n_idle;
    struct presence *p; /* made at the first join: most topics never have a member */
    /* The plain frames of offsets run_from..run_to in one buffer, shared by the subscribers
     * that pull just that range (broker_pull.c: pull_run); NULL if none. wave_from: the offset at
     * which the latest wake of RUN_MIN_SUBS subscribers or more found them. */
    struct obuf *run;
    uint64_t run_from, run_to, wave_from;
    char name[]; /* NUL-terminated, len bytes */
};

struct pattern {
    struct pattern *next;  /* in the registry's list */
    struct pattern *snext; /* in the session's list */
    struct broker_session *s;
    size_t len;
    char text[];
};

/* One per connection, so packed: 88 bytes, the whole allocation (a 96-byte malloc chunk). */
struct broker_session {
    struct broker *b;
    void *owner;
    uint64_t id;
    pthread_mutex_t lock;
    struct entry *entries;
    struct pattern *patterns;
    unsigned n_subs;
    atomic_uchar wake_pending; /* a wake is on its way: publishes need not send another */
    bool deflate;              /* takes compressed deliveries (set before subscribing) */
    /* A wildcard of it matched a topic it could not follow (out of memory): it misses that
     * topic's messages, so its pulls report them lost (session's lock). */
    bool missed;
};

/* Counters every pull adds to, one set per thread (my_shard in broker_pull.c): two workers adding
 * to one cache line would move it between their cores at every pull of a fan-out. */
#define BROKER_SHARDS 8

struct broker_shard {
    _Alignas(64) atomic_uint_fast64_t delivered, delivered_bytes;
};

struct broker {
    struct broker_shard shard[BROKER_SHARDS]; /* first: the allocation is aligned for them */
    struct broker_config cfg;
    struct broker_hooks hooks;
    pthread_rwlock_t lock;
    struct topic **buckets;
    size_t nbuckets, ntopics;
    struct pattern *patterns;
    char boot[17];
    atomic_uint_fast64_t topic_seq, published, subscriptions, members;
    atomic_uint_fast64_t sessions; /* made so far: the last session id */
    atomic_size_t history_bytes;   /* memory of every topic's kept messages */
    atomic_uint_fast64_t topics_removed;
    size_t sweep_pos; /* next bucket broker_sweep looks at (registry's write lock) */
};

/* Owners to wake, listed under the locks, dispatched after them. The batches are allocated while
 * listing (wake_reserve), where a failure can still be undone, so dispatching allocates nothing. */
struct wake_list {
    struct broker_batch **b; /* each full but the last; nb of them, room for capb */
    size_t nb, capb;
    size_t n; /* owners listed */
};

/* ---- small helpers ---- */

static inline uint64_t broker__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t broker__hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* A fan-out's subscribers pull the same messages in a row (the wave a publish wakes), so those
 * frames are copied once into one buffer that every such pull shares (broker_pull.c: pull_run):
 * only for topics with at least RUN_MIN_SUBS subscribers, where the copy is shared enough to pay,
 * and for at most RUN_MAX_BYTES, which bounds what a topic keeps in it. */
#define RUN_MIN_SUBS  32
#define RUN_MAX_BYTES 8192

/* ---- broker.c ---- */

/* Marks e dirty and lists its owner in w for a wake unless one is on its way already. Under the
 * lock of e's topic, which keeps e's session alive (sessions detach their entries under it). */
void broker__wake_entry(struct broker *b, struct entry *e, struct wake_list *w);
/* Hands w's batches to hooks.dispatch and frees the rest of w. With no lock held. Cannot fail. */
void broker__dispatch(struct broker *b, struct wake_list *w);

/* The topic with that name and hash, or NULL. Under the registry lock. */
struct topic *broker__find_topic(struct broker *b, const char *name, size_t len, uint64_t h);
/* The topic named `name`, created if needed when `create`, with a reference the caller drops
 * with broker__topic_put; NULL if absent (or out of memory). Takes the registry lock itself. */
struct topic *broker__get_topic(struct broker *b, const char *name, size_t len, bool create);
void broker__topic_put(struct topic *t); /* NULL is ignored */
/* The topic's epoch, into out (32 bytes): made on demand, so a topic does not carry it. */
void broker__topic_epoch(const struct broker *b, const struct topic *t, char *out);

/* Room for one more pointer in a topic's array of entries (all subscribers, or the presence
 * members), doubling it. Returns 0 or -1. Under the topic's lock. */
int broker__entries_reserve(struct entry ***arr, size_t n, size_t *cap);
/* s's entry for t, or NULL. Under the session's lock. */
struct entry *broker__find_entry(struct broker_session *s, struct topic *t);
/* Adds one reason for s to follow t, creating the entry (cursor at the next new message); *out
 * (may be NULL) gets it. Returns 0 or BROKER_ENOMEM. Under the session's lock. */
int broker__entry_attach(struct broker_session *s, struct topic *t, bool exact, struct entry **out);
/* Drops one reason; the entry goes with the last, and membership with the exact subscription
 * (its leave is woken through w). Under the session's lock. */
void broker__entry_detach(struct broker_session *s, struct entry *e, bool exact,
                          struct wake_list *w);

/* Finishes a frame built from HEADER_ROOM on: puts the WebSocket header in front (RSV1 for a
 * compressed payload). */
void broker__frame_seal(struct obuf *f, bool compressed);
/* Moves e into t's idle partition (see struct topic): the next publish wakes it. Under the
 * topic's lock. */
void broker__entry_set_idle(struct topic *t, struct entry *e);

/* ---- broker_presence.c (under the session's lock; these take the topic's) ---- */

/* Makes e's session a member of e's topic with the member JSON given, and records and wakes the
 * join. Returns 0 or BROKER_ENOMEM. */
int broker__member_join(struct broker *b, struct entry *e, const char *member, size_t len,
                        struct wake_list *w);
/* Ends e's membership (e->m set) and records and wakes the leave. */
void broker__member_leave(struct broker *b, struct entry *e, struct wake_list *w);
/* Queues the join and leave events e has not seen (a presence_lost for any it missed) up to
 * `budget` bytes, as broker_pull does messages (at least one when budget > 0, none with 0); sets
 * *more and adds to *left the bytes of those it leaves. Returns the bytes queued. Under the
 * session's and the topic's lock (the caller pulls messages under the same). */
size_t broker__pull_presence(struct entry *e, struct outq *out, size_t budget, bool *more,
                             size_t *left);

#endif
