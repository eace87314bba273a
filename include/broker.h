/*
 * broker.h - topics, subscriptions, history and fan-out. Knows no sockets.
 *
 * Every topic is a log: a published message gets the topic's next offset and is framed once, as
 * the complete WebSocket text frame every subscriber will receive, into one refcounted buffer
 * stored in the topic's history ring. Subscribers do not get copies pushed at them: each
 * subscription keeps a cursor (the next offset it needs) and, when woken, its connection pulls
 * everything from its cursor to the topic's head into its send queue as references to those
 * shared buffers, in offset order. So every subscriber of a topic sees the same sequence, with no
 * per-subscriber copy, however many threads publish at once; a subscriber woken late takes many
 * messages in one write; and recovery after a reconnect is the same pull from an older cursor.
 *
 * Waking: a publish marks dirty each subscription that has pulled since it was last woken (the
 * others have a pull coming, which will read the new head) and, only for sessions without a wake
 * on its way already, hands their owners to the dispatch hook in batches, which the server spreads
 * over its workers; so a busy session costs one wake however many messages and topics pile up,
 * and a publish touches only the subscribers it wakes. A pull
 * clears the session's wake flag before it reads any head, so no message is left without a wake,
 * and a session left with a backlog (budget reached) is woken by the next publish again, which is
 * how its owner notices a subscriber that stopped reading.
 *
 * Compression: when a topic has subscribers whose connections negotiated permessage-deflate (no
 * context takeover, 15-bit window), each message is also compressed once, by its publisher, into
 * a second shared frame (RSV1 set) that those subscribers receive instead; the others get the
 * plain one. Small messages, and messages deflate does not shrink, go out plain to everybody.
 *
 * Presence: a subscription to an exact name may make its session a member of the topic, described
 * by a member JSON object the caller builds. Joins and leaves go into a second, small log per
 * topic (PRESENCE_EVENTS entries) that members pull like messages; a member further behind than
 * that gets a presence_lost message instead of the events it missed. Events share broker_pull's
 * budget with messages and count in what it leaves waiting. Counting members is O(1).
 *
 * Bounds: a topic keeps history_size messages, more only while a subscriber less than max_lag
 * bytes behind still needs them (then it keeps up to that subscriber's cursor, out of memory
 * excepted, and comes back to history_size once it has them: gradually at later publishes, at
 * once at broker_sweep), and, for recovery, none older than history_ttl, which
 * broker_sweep also drops from memory; all topics together keep about
 * history_memory bytes of messages: over it, a publish trims its own topic's oldest and
 * broker_sweep the other topics', never a message a subscriber has not received yet and never a
 * topic's newest (so the cap can be exceeded by those); a topic with no subscribers and nothing
 * kept is removed by broker_sweep; a
 * subscription whose cursor falls behind the oldest kept message has lost data and its owner must
 * disconnect it as a slow consumer; broker_pull queues at most the bytes it is given.
 *
 * Threads: every function may be called from any worker; topics and sessions have their own
 * mutexes. Lock order: the registry's rwlock, then a session's mutex, then a topic's mutex (a
 * later one may be taken while holding an earlier one, never the reverse).
 * Owners are opaque pointers kept alive by the ref/unref hooks while a wake batch holds them.
 */
#ifndef HERALD_BROKER_H
#define HERALD_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outq.h"

struct broker;
struct broker_session;

struct broker_config {
    size_t history_size;        /* messages kept per topic (>= 1) */
    unsigned history_ttl;       /* seconds a message stays replayable; 0: no limit */
    unsigned max_subscriptions; /* per session */
    size_t history_memory;      /* bytes of kept messages over all topics; 0: no cap */
    /* A subscription less than this many bytes behind its topic's head never loses a message to
     * history_size (the ring grows for it instead); 0: history_size always applies. The server
     * passes --max-outbound, past which the subscriber is disconnected anyway. */
    size_t max_lag;
};

/* A batch of owners to wake because topics they subscribe to have new messages. */
#define BROKER_BATCH_MAX 256
struct broker_batch {
    unsigned n;
    void *owners[BROKER_BATCH_MAX]; /* each holds a reference taken with hooks.ref */
};

struct broker_hooks {
    void (*ref)(void *owner);
    void (*unref)(void *owner);
    /* Takes the batch (and its references); must arrange for each owner to call broker_pull
     * soon, then drop the reference. Called without any broker lock held. */
    void (*dispatch)(struct broker_batch *batch, void *ctx);
    void *ctx;
};

/* broker_new - an empty broker. The epoch prefix is random per process, so offsets from a previous
 * run are recognised as another epoch. Returns NULL when out of memory. */
struct broker *broker_new(const struct broker_config *cfg, const struct broker_hooks *hooks);
/* broker_free - frees every topic (all sessions must be freed first). */
void broker_free(struct broker *b);

/* broker_session_new - subscriptions of one connection (`owner`, passed to the hooks). */
struct broker_session *broker_session_new(struct broker *b, void *owner);
/* broker_session_id - the session's number: 1, 2, ... in the order sessions were made. */
uint64_t broker_session_id(const struct broker_session *s);
/* broker_session_set_compression - the session's connection takes compressed deliveries (see
 * above). Only before its first subscription; ignored after. */
void broker_session_set_compression(struct broker_session *s, bool on);
/* broker_session_free - unsubscribes everything and frees the session. After it returns no new
 * wake for this owner is collected; wakes collected before, on any thread, may still be
 * dispatched (held ones at their thread's broker_hold_end), each holding a reference. */
void broker_session_free(struct broker_session *s);

struct broker_sub_opts {
    bool recover;      /* resume from (epoch, offset): the last message seen */
    const char *epoch; /* NUL-terminated, with recover */
    uint64_t offset;
    unsigned last; /* or: start with the last N kept messages (0: only new ones) */
    /* presence: become a member, described by member[0..member_len) (a JSON object, copied);
     * exact names only. Already a member: nothing changes. */
    const char *member;
    size_t member_len;
};

struct broker_sub_result {
    char epoch[32];  /* the topic's epoch (exact subscriptions) */
    uint64_t offset; /* the topic's last offset at subscribe time (0: none yet) */
    bool recovered;  /* with recover: every missed message will be delivered */
    uint64_t replay; /* messages that will be replayed before live ones */
    /* When the replay goes back behind where the session's delivery of the topic stood (through
     * a wildcard or an earlier subscription of the name): the last offset before that point, else
     * 0. Each replayed message up to it was delivered already, or predates every subscription of
     * the session that matches the topic: it is not for those other subscriptions. */
    uint64_t delivered;
    bool existed; /* the subscription was already there (idempotent) */
};

/* Errors (negative) of the calls below. */
#define BROKER_EBADTOPIC (-1) /* invalid name or pattern (reason from topic.h) */
#define BROKER_ETOOMANY  (-2) /* --max-subscriptions reached */
#define BROKER_ENOTSUB   (-3) /* unsubscribe of something not subscribed */
#define BROKER_ENOMEM    (-4)
#define BROKER_EBADREQ   (-5) /* presence on a wildcard pattern */

/* Join and leave events kept per topic for members that have not pulled them yet. */
#define PRESENCE_EVENTS 1024

/*
 * broker_subscribe - subscribes the session to a topic name or a wildcard pattern ("chat.*",
 * "chat.>"). Idempotent: subscribing again changes nothing and sets res->existed. Recovery and
 * "last N" apply to exact topic names only. Returns 0 or BROKER_E*; *why gets a static reason.
 */
int broker_subscribe(struct broker_session *s, const char *pattern, size_t len,
                     const struct broker_sub_opts *opts, struct broker_sub_result *res,
                     const char **why);

/* broker_unsubscribe - idempotent in effect; returns 0 or BROKER_ENOTSUB / BROKER_EBADTOPIC.
 * Unsubscribing an exact name ends the session's membership of the topic (a leave event). */
int broker_unsubscribe(struct broker_session *s, const char *pattern, size_t len);

struct broker_pub_result {
    uint64_t offset; /* the message's offset in its topic */
    unsigned reach;  /* subscriptions that will receive it */
};

/*
 * broker_publish - appends a message to a topic (created on first use) and wakes its
 * subscribers. `data` must be one valid JSON value of `dlen` bytes: it is passed through to
 * subscribers unchanged. Returns 0 or BROKER_EBADTOPIC / BROKER_ENOMEM.
 */
int broker_publish(struct broker *b, const char *topic, size_t tlen, const char *data, size_t dlen,
                   struct broker_pub_result *res, const char **why);

/*
 * broker_hold_begin, broker_hold_end - between them, the calling thread's publishes keep their
 * wake batches instead of dispatching them, and broker_hold_end dispatches them all. A subscriber
 * woken by the first publish of a burst is then woken once, after the last, and one pull takes
 * the burst (up to its pull window); dispatched at once, it could be served by another worker
 * between two publishes of the burst, and take them in several sends. A hold dispatches early
 * once its publishes' frames reach 64 KiB, so it adds at most the time to read and append that
 * much. A worker holds around each epoll event of a connection (server.c). Holds do not nest.
 * Per thread: other threads' publishes dispatch as usual. No hold may be open on a broker being
 * freed.
 */
void broker_hold_begin(void);
void broker_hold_end(void);

/*
 * broker_pull - queues on `out` the messages the session has not received yet, in offset order per
 * topic, up to about `budget` bytes (at least one message when any is pending and budget > 0;
 * none with 0). Returns the bytes queued; sets *more when messages were left for a later pull
 * (budget reached), *left to their bytes (plain frames; what is left stays in the topics' logs,
 * taking no memory of the session's), and *lost when a subscription fell behind the history
 * (messages are gone: a slow consumer), or when a wildcard subscription could not follow a
 * matching topic for lack of memory (its messages will never come).
 */
size_t broker_pull(struct broker_session *s, struct outq *out, size_t budget, bool *more,
                   bool *lost, size_t *left);

/* broker_replaying - whether one of the session's subscriptions is still taking a replay it asked
 * for (recover, last). Such a replay fills the connection's queue at the reader's pace, so while
 * one is under way only what waits past it (broker_pull's *left) measures how far behind the
 * live stream the reader is. Takes the session's lock; the thread running the session. */
bool broker_replaying(struct broker_session *s);

/*
 * broker_presence - the members of an exact topic: calls fn with the member JSON of at most
 * `limit` of them (in no particular order) under the topic's lock (fn must not call into the
 * broker), and returns how many there are (0 for an unknown topic or an invalid name).
 */
size_t broker_presence(struct broker *b, const char *topic, size_t len, size_t limit,
                       void (*fn)(const char *member, size_t len, void *ctx), void *ctx);

struct broker_stats {
    uint64_t topics, subscriptions, published, delivered, delivered_bytes, members;
    uint64_t history_bytes, topics_removed;
};
void broker_stats(struct broker *b, struct broker_stats *st);

/*
 * broker_sweep - housekeeping, meant to be called about once a second by one thread: looks at the
 * next `buckets` buckets of the topic table, or a 60th of it if that is more (round robin, so the
 * whole table within a minute), drops messages past the TTL and removes topics nobody subscribes
 * to that keep nothing. Takes the registry's write lock for that long.
 * Returns the number of topics removed. A removed topic that is used again starts a new epoch.
 */
size_t broker_sweep(struct broker *b, size_t buckets);

struct broker_topic_info {
    const char *name; /* valid during the callback only */
    size_t len;
    uint64_t offset;    /* last offset (0: no message yet) */
    size_t subscribers; /* connections receiving it */
    size_t members;     /* presence members */
};

/* broker_topics - calls fn for at most `max` topics (in no particular order) under the registry's
 * read lock; fn must not call into the broker. Returns the number of topics there are. */
size_t broker_topics(struct broker *b, void (*fn)(const struct broker_topic_info *, void *),
                     void *ctx, size_t max);

#endif
