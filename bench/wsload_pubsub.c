/*
 * wsload_pubsub.c - wsload's publish/subscribe scenarios, `fanout` and `rooms` (bench/pubsub.sh).
 *
 * They know no broker protocol: a subscriber sends --sub-template once ({topic} replaced), a
 * publisher sends --pub-template ({topic} and {payload} replaced) as text messages, and a received
 * message is a delivery if it contains the payload marker "seq=N ts=T src=I " anywhere in its first
 * HEAD_MAX bytes, whatever envelope the server wraps around it (Herald's {"type":"msg",...}, Bun's
 * bare payload). Anything else (a welcome, an ack) is counted as ignored. N is the publisher's
 * sequence number, T its send time in microseconds on CLOCK_MONOTONIC, I its client index; the
 * payload is padded with 'x' to -b bytes, so it is valid JSON string content and UTF-8.
 *
 * fanout: -c S subscribers of one topic and one more connection, client 0, that publishes. It keeps
 * -w messages in flight. With --window all (the default) a message is in flight until every
 * subscriber still connected has it: a ring of W delivery counters, bumped atomically by whichever
 * worker gets a delivery, lets worker 0 (the publisher's) move the window, so a server cannot run
 * ahead of its slowest subscriber. With --window probe it is in flight until client 1, the probe,
 * has it (same worker, no atomics): servers that serve some subscribers first then let the others
 * fall behind without bound, which is worth seeing too. Either way, a window that makes no progress
 * for PROBE_STALL_US (messages lost) is given up and refilled, with a warning.
 *
 * rooms: -c N clients in --rooms R rooms (client i in room i mod R, topic "<topic>.<room>"), each
 * subscribed to its room and publishing to it at --rate messages/s on a timer: each worker spreads
 * its clients' publications evenly in time, round robin over its clients. A publisher receives its
 * own messages, as the other members do.
 *
 * connect: -c N connections open (handshake), each subscribes (to TOPIC.0, or with --own-topics to
 * TOPIC.i) and waits for its confirmation; then all stay idle for --warmup + -d seconds. It reports
 * connections/s (opened and subscribed, from the first connect to the last confirmation, and
 * opened only), and with --server-pid the growth of the server's VmRSS between before the first
 * connect and the end of the idle window, per open connection.
 *
 * fanout and rooms count, over the whole run, the deliveries each subscriber is owed (every message
 * published on its topic after it was confirmed) against those it got: lost, extra (duplicates) and
 * out-of-order per publisher; latency and deliveries/s count the deliveries of the measured window.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "wsload.h"

#define TPL_MAX        16         /* pieces of a template */
#define TOPIC_MAX      200        /* bytes of a topic name, room suffix included */
#define PROBE_STALL_US 1000000ULL /* the probe got nothing this long: refill the fanout window */

/* ---- templates ----------------------------------------------------------------------------- */

enum tpl_kind { TPL_TEXT, TPL_TOPIC, TPL_PAYLOAD, TPL_LEN };

/* A template split at its placeholders. The pieces point into the option string. */
struct tpl {
    struct {
        enum tpl_kind kind;
        const char *s;
        size_t len;
    } part[TPL_MAX];
    unsigned n, ntopic, npayload, nlen;
    size_t text_len; /* bytes of literal text */
};

static void tpl_parse(struct tpl *t, const char *src, const char *what)
{
    static const struct {
        const char *name;
        enum tpl_kind kind;
    } ph[] = {{"{topic}", TPL_TOPIC}, {"{payload}", TPL_PAYLOAD}, {"{len}", TPL_LEN}};
    const char *p = src;
    size_t i;

    *t = (struct tpl){0};
    while (*p) {
        if (t->n + 2 > TPL_MAX)
            die("%s has too many placeholders", what);
        for (i = 0; i < 3 && strncmp(p, ph[i].name, strlen(ph[i].name)) != 0; i++)
            continue;
        if (i < 3) {
            t->part[t->n].kind = ph[i].kind;
            t->part[t->n++].len = 0;
            *(ph[i].kind == TPL_TOPIC     ? &t->ntopic
              : ph[i].kind == TPL_PAYLOAD ? &t->npayload
                                          : &t->nlen) += 1;
            p += strlen(ph[i].name);
            continue;
        }
        if (t->n == 0 || t->part[t->n - 1].kind != TPL_TEXT) {
            t->part[t->n].kind = TPL_TEXT;
            t->part[t->n].s = p;
            t->part[t->n++].len = 0;
        }
        t->part[t->n - 1].len++;
        t->text_len++;
        p++;
    }
}

static size_t tpl_len(const struct tpl *t, size_t topic_len, size_t payload_len)
{
    char num[24];

    return t->text_len + t->ntopic * topic_len + t->npayload * payload_len +
           t->nlen * (size_t)snprintf(num, sizeof(num), "%zu", payload_len);
}

/* The payload: "seq=N ts=T src=I " padded with 'x' to exactly len bytes. */
static void payload_fill(uint8_t *p, size_t len, uint64_t seq, uint64_t ts, unsigned src)
{
    char tmp[80];
    int n = snprintf(tmp, sizeof(tmp), "seq=%" PRIu64 " ts=%" PRIu64 " src=%u ", seq, ts, src);

    if (n < 0 || (size_t)n > len)
        die("-b %zu is too small for the payload marker \"%s\"", len, tmp);
    memcpy(p, tmp, (size_t)n);
    memset(p + n, 'x', len - (size_t)n);
}

/* Writes the template into p (tpl_len bytes); a payload placeholder gets payload_fill. */
static void tpl_write(const struct tpl *t, uint8_t *p, const char *topic, size_t topic_len,
                      size_t payload_len, uint64_t seq, uint64_t ts, unsigned src)
{
    for (unsigned i = 0; i < t->n; i++) {
        switch (t->part[i].kind) {
        case TPL_TEXT:
            memcpy(p, t->part[i].s, t->part[i].len);
            p += t->part[i].len;
            break;
        case TPL_TOPIC:
            memcpy(p, topic, topic_len);
            p += topic_len;
            break;
        case TPL_PAYLOAD:
            payload_fill(p, payload_len, seq, ts, src);
            p += payload_len;
            break;
        case TPL_LEN: {
            char num[24];
            int k = snprintf(num, sizeof(num), "%zu", payload_len);

            memcpy(p, num, (size_t)k);
            p += k;
            break;
        }
        }
    }
}

/*
 * Finds "seq=N ts=T src=I " in head from offset *pos; on success, *pos is just past it. 0, or -1
 * if it is not there whole. *hint (NULL: none) is where the marker was in the last message: a
 * server's envelope puts it at the same offset in every message of a topic, so that place is tried
 * before a search (memmem was 5% of wsload's samples in a 10,000-subscriber fan-out).
 */
static int marker_parse(const uint8_t *head, size_t len, size_t *pos, uint16_t *hint, uint64_t *seq,
                        uint64_t *ts, uint64_t *src)
{
    static const char *const keys[3] = {"seq=", " ts=", " src="};
    static const size_t key_len[3] = {4, 4, 5};
    uint64_t *vals[3] = {seq, ts, src};
    const uint8_t *m = NULL;
    size_t i, kl;

    if (hint && (size_t)*hint + 4 <= len && memcmp(head + *hint, "seq=", 4) == 0)
        m = head + *hint;
    else if (*pos < len)
        m = memmem(head + *pos, len - *pos, "seq=", 4);
    if (!m)
        return -1;
    i = (size_t)(m - head);
    if (hint && i <= UINT16_MAX)
        *hint = (uint16_t)i;
    for (int k = 0; k < 3; k++) {
        kl = key_len[k];
        if (len - i < kl || memcmp(head + i, keys[k], kl) != 0)
            return -1;
        i += kl;
        if (i >= len || head[i] < '0' || head[i] > '9')
            return -1;
        *vals[k] = 0;
        while (i < len && head[i] >= '0' && head[i] <= '9')
            *vals[k] = *vals[k] * 10 + (uint64_t)(head[i++] - '0');
    }
    if (i >= len || head[i] != ' ')
        return -1;
    *pos = i + 1;
    return 0;
}

/* ---- run state ----------------------------------------------------------------------------- */

struct pubsub {
    struct tpl sub, pub, hello;
    bool rooms;
    unsigned slots;    /* publishers per topic: a subscriber's exp_seq entries */
    uint64_t *seq_mem; /* every client's exp_seq, slots each */
    char (*topic)[TOPIC_MAX + 1];
    size_t *topic_len;
    /* fanout, on worker 0 unless noted */
    struct client *publisher, *probe;
    bool window_all;    /* --window all: in flight until every subscriber has it */
    unsigned inflight;  /* --window probe: published, not yet delivered to the probe */
    uint64_t base;      /* --window all: the oldest message not delivered everywhere */
    uint64_t *ring_seq; /* --window all, slot seq % W: the message counted there (atomic) */
    uint32_t *ring_cnt; /* ... and its deliveries so far (atomic, any worker) */
    unsigned need;      /* counted subscribers still open (atomic, any worker) */
    bool pub_dirty, stall_warned;
    uint64_t published, progress_at;
    /* rooms: messages published to each room (atomic: every worker publishes) */
    uint64_t *room_sent;
};

static struct pubsub *ps_of(const struct client *c)
{
    return c->w->run->scen;
}

static void pubsub_setup(struct run *run, bool rooms, bool connect)
{
    struct opts *o = &run->o;
    struct pubsub *ps = calloc(1, sizeof(*ps));
    unsigned ntopics = rooms ? o->rooms : 1;

    if (!ps)
        die("out of memory");
    ps->rooms = rooms;
    o->opcode = WS_OP_TEXT;
    tpl_parse(&ps->sub, o->sub_template, "--sub-template");
    tpl_parse(&ps->pub, o->pub_template, "--pub-template");
    tpl_parse(&ps->hello, o->hello_template ? o->hello_template : "", "--hello-template");
    if (ps->hello.ntopic || ps->hello.npayload || ps->hello.nlen)
        die("--hello-template takes no placeholder");
    if (ps->sub.npayload || ps->sub.nlen)
        die("--sub-template cannot hold {payload} or {len}");
    if (ps->pub.npayload == 0)
        die("--pub-template must hold {payload}");
    if (strlen(o->topic) + 8 > TOPIC_MAX)
        die("--topic is too long (at most %d bytes)", TOPIC_MAX - 8);
    if (rooms) {
        if (o->rooms > o->conns)
            die("--rooms %u: more rooms than clients (-c %u)", o->rooms, o->conns);
        ps->slots = connect ? 1 : (o->conns + o->rooms - 1) / o->rooms;
        ps->room_sent = calloc(o->rooms, sizeof(*ps->room_sent));
        if (!ps->room_sent)
            die("out of memory");
    } else {
        if (o->conns > 1000000 - 1)
            die("too many subscribers");
        o->conns += 1; /* the publisher */
        ps->slots = 1;
        /* The publisher and the probe, clients 0 and 1, must share worker 0. */
        if (o->threads > o->conns / 2)
            o->threads = o->conns / 2;
        if (strcmp(o->window, "all") != 0 && strcmp(o->window, "probe") != 0)
            die("--window must be all or probe (got '%s')", o->window);
        ps->window_all = strcmp(o->window, "all") == 0;
        ps->ring_seq = calloc(o->inflight, sizeof(*ps->ring_seq));
        ps->ring_cnt = calloc(o->inflight, sizeof(*ps->ring_cnt));
        if (!ps->ring_seq || !ps->ring_cnt)
            die("out of memory");
    }
    ps->seq_mem = calloc((size_t)o->conns * ps->slots, sizeof(uint64_t));
    ps->topic = calloc(ntopics, sizeof(*ps->topic));
    ps->topic_len = calloc(ntopics, sizeof(*ps->topic_len));
    if (!ps->seq_mem || !ps->topic || !ps->topic_len)
        die("out of memory");
    for (unsigned i = 0; i < ntopics; i++) {
        if (rooms)
            snprintf(ps->topic[i], sizeof(ps->topic[i]), "%s.%u", o->topic, i);
        else
            snprintf(ps->topic[i], sizeof(ps->topic[i]), "%s", o->topic);
        ps->topic_len[i] = strlen(ps->topic[i]);
    }
    run->scen = ps;
}

static void pubsub_client_init(struct run *run, struct client *c)
{
    struct pubsub *ps = run->scen;

    c->exp_seq = ps->seq_mem + (size_t)c->id * ps->slots;
    if (ps->rooms) {
        c->sub = true;
        c->topic_idx = c->id % run->o.rooms;
    }
    c->topic = ps->topic[c->topic_idx];
    c->topic_len = ps->topic_len[c->topic_idx];
    if (!ps->rooms) {
        c->sub = c->id != 0;
        if (c->id == 0)
            ps->publisher = c;
        else if (c->id == 1)
            ps->probe = c;
    }
}

static void pubsub_subscribe(struct client *c, uint64_t now)
{
    struct pubsub *ps = ps_of(c);
    unsigned t = c->topic_idx;
    size_t len = tpl_len(&ps->sub, ps->topic_len[t], 0);
    uint8_t *p;

    if (ps->hello.n) {
        if (!client_frame(c, WS_OP_TEXT, ps->hello.text_len, &p)) {
            client_close(c, C_DEAD);
            return;
        }
        tpl_write(&ps->hello, p, NULL, 0, 0, 0, 0, 0);
        client_frame_done(c, p, ps->hello.text_len);
    }
    if (!c->sub || len == 0) /* an empty template: the URL subscribed it */
        return;
    if (!client_frame(c, WS_OP_TEXT, len, &p)) {
        client_close(c, C_DEAD);
        return;
    }
    tpl_write(&ps->sub, p, ps->topic[t], ps->topic_len[t], 0, 0, 0, 0);
    client_frame_done(c, p, len);
}

/* Queues one publication from c to its topic (not flushed). */
static void pubsub_publish(struct client *c, uint64_t now)
{
    struct pubsub *ps = ps_of(c);
    const struct opts *o = &c->w->run->o;
    unsigned t = c->topic_idx;
    size_t len = tpl_len(&ps->pub, ps->topic_len[t], o->bytes);
    uint8_t *p;

    if (!client_frame(c, WS_OP_TEXT, len, &p)) {
        client_warn(c->w, "publisher %u: over %u MiB unsent, the server is not reading", c->id,
                    64u);
        c->w->st.proto_err++;
        client_close(c, C_DEAD);
        return;
    }
    tpl_write(&ps->pub, p, ps->topic[t], ps->topic_len[t], o->bytes, c->next_seq++, now, c->id);
    client_frame_done(c, p, len);
    c->w->st.published++;
    if (ps->rooms)
        __atomic_fetch_add(&ps->room_sent[t], 1, __ATOMIC_RELAXED);
    else
        ps->published++;
}

/*
 * A delivery: checks it against the publisher's sequence and, inside the measured window, records
 * its latency. Returns the publisher's client index (and its sequence number in *seq_out), or -1
 * if it was not a delivery.
 */
static long pubsub_delivery1(struct client *c, uint64_t len, uint64_t seq, uint64_t ts,
                             uint64_t src, uint64_t now)
{
    struct pubsub *ps = ps_of(c);
    struct worker *w = c->w;
    uint64_t slot;

    c->got++;
    w->st.received++;
    if (src >= w->run->o.conns || (ps->rooms && src % w->run->o.rooms != c->topic_idx) ||
        (!ps->rooms && src != 0)) {
        w->st.misrouted++;
        return (long)src;
    }
    slot = ps->rooms ? src / w->run->o.rooms : 0;
    if (seq != c->exp_seq[slot])
        w->st.out_of_order++;
    if (seq >= c->exp_seq[slot])
        c->exp_seq[slot] = seq + 1;
    if (ts <= now && now >= w->run->t_meas && now < w->run->t_end) {
        hist_add(&w->st.lat, now - ts);
        w->st.rx_bytes += len;
    }
    return (long)src;
}

/*
 * A whole message: its delivery (or, with --multi, each of its deliveries) goes through
 * pubsub_delivery1 and then to `on` (may be NULL) with the publisher and sequence number.
 */
static void pubsub_message(struct client *c, uint64_t len, const uint8_t *head, uint64_t now,
                           void (*on)(struct client *c, long src, uint64_t seq, uint64_t now))
{
    bool multi = c->w->run->o.multi;
    size_t hl = multi ? (size_t)len : len < HEAD_MAX ? (size_t)len : HEAD_MAX, pos = 0;
    uint64_t seq, ts, src;
    unsigned found = 0;
    long from;

    c->rx_msgs++;
    /* With --multi a message holds several markers: every one is searched for, from the start. */
    uint16_t *hint = multi ? NULL : &c->marker_at;

    while (marker_parse(head, hl, &pos, hint, &seq, &ts, &src) == 0 && c->counted) {
        found++;
        from = pubsub_delivery1(c, multi ? c->w->run->o.bytes : len, seq, ts, src, now);
        if (on)
            on(c, from, seq, now);
        if (!multi)
            break;
    }
    if (!found)
        c->w->st.ignored++;
}

/* The subscriber has all it is owed; fills the worker's expected, lost and extra counts. */
static bool pubsub_settled(struct worker *w)
{
    struct pubsub *ps = w->run->scen;
    uint64_t owed;
    bool done = true;

    w->st.expected = w->st.lost = w->st.extra = 0;
    for (unsigned i = 0; i < w->nc; i++) {
        struct client *c = &w->c[i];

        if (!c->counted)
            continue;
        owed = ps->rooms ? __atomic_load_n(&ps->room_sent[c->topic_idx], __ATOMIC_RELAXED)
                         : ps->published;
        w->st.expected += owed;
        if (c->got < owed) {
            w->st.lost += owed - c->got;
            done = done && c->state != C_OPEN; /* a closed one will get no more */
        } else {
            w->st.extra += c->got - owed;
        }
    }
    return done;
}

static void pubsub_report(const struct run *run, const struct stats *st, char *json, size_t n,
                          unsigned subscribers)
{
    const struct opts *o = &run->o;
    const struct pubsub *ps = run->scen;
    double load_s = (double)(run->t_end - run->t_load) / 1e6;
    double pub_rate = load_s > 0 ? (double)st->published / load_s : 0;

    char what[96];

    if (ps->rooms)
        snprintf(what, sizeof(what), "%u clients in %u rooms, %g msg/s each", subscribers, o->rooms,
                 o->rate);
    else
        snprintf(what, sizeof(what), "%u subscribers, 1 publisher", subscribers);
    printf("wsload %s: %s: %" PRIu64 " published (%.0f/s); deliveries expected %" PRIu64
           ", received %" PRIu64 ", lost %" PRIu64 ", extra %" PRIu64 ", out of order %" PRIu64
           ", misrouted %" PRIu64 "; %" PRIu64 " other messages ignored; %" PRIu64
           " subscriber(s) unconfirmed\n",
           o->scenario->name, what, st->published, pub_rate, st->expected, st->received, st->lost,
           st->extra, st->out_of_order, st->misrouted, st->ignored, st->unready);
    snprintf(json, n,
             ",\"subscribers\":%u,\"rooms\":%u,\"rate\":%.3f,\"published\":%" PRIu64
             ",\"published_per_s\":%.1f,\"expected\":%" PRIu64 ",\"received\":%" PRIu64
             ",\"lost\":%" PRIu64 ",\"extra\":%" PRIu64 ",\"out_of_order\":%" PRIu64
             ",\"misrouted\":%" PRIu64 ",\"ignored\":%" PRIu64 ",\"unready\":%" PRIu64
             ",\"skip_first\":%u",
             subscribers, ps->rooms ? o->rooms : 1, ps->rooms ? o->rate : 0.0, st->published,
             pub_rate, st->expected, st->received, st->lost, st->extra, st->out_of_order,
             st->misrouted, st->ignored, st->unready, o->skip_first);
}

/* ---- fanout -------------------------------------------------------------------------------- */

static void fanout_setup(struct run *run)
{
    pubsub_setup(run, false, false);
}

/* Publishes the next message; with --window all, claims its ring slot first. */
static void fanout_publish(struct pubsub *ps, uint64_t now)
{
    struct client *pub = ps->publisher;
    unsigned slot = (unsigned)(pub->next_seq % pub->w->run->o.inflight);

    if (ps->window_all) {
        __atomic_store_n(&ps->ring_cnt[slot], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&ps->ring_seq[slot], pub->next_seq, __ATOMIC_RELEASE);
    }
    pubsub_publish(pub, now);
    ps->pub_dirty = true;
}

/* Publishes while the window has room (worker 0). */
static void fanout_fill(struct pubsub *ps, uint64_t now)
{
    struct client *pub = ps->publisher;
    unsigned w = pub->w->run->o.inflight;

    while (pub->w->loading && pub->state == C_OPEN &&
           (ps->window_all ? pub->next_seq - ps->base < w : ps->inflight < w)) {
        fanout_publish(ps, now);
        ps->inflight += !ps->window_all;
    }
}

static void fanout_start(struct client *c, uint64_t now)
{
    struct pubsub *ps = ps_of(c);
    const struct run *run = c->w->run;
    unsigned need = 0;

    if (c != ps->publisher)
        return;
    /* Every worker has set its clients' `counted` before the barrier that precedes the load. */
    for (unsigned i = 1; i < run->o.conns; i++)
        need += run->clients[i].counted;
    /* Added, not stored: a subscriber that closed since the barrier has already taken its 1 off
     * (fanout_closed, on its own thread). */
    __atomic_fetch_add(&ps->need, need, __ATOMIC_RELAXED);
    if (!ps->window_all && !ps->probe->counted)
        client_warn(c->w, "the probe subscriber (client 1) is not subscribed: nothing will pace "
                          "the publisher but the stall timeout");
    ps->progress_at = now;
    fanout_fill(ps, now);
}

static void fanout_delivered(struct client *c, long src, uint64_t seq, uint64_t now)
{
    struct pubsub *ps = ps_of(c);
    unsigned slot;

    if (src != 0)
        return;
    if (ps->window_all) {
        /* A late copy of a message given up on may land on its slot's next tenant: only pacing
         * suffers, and only after a stall. */
        slot = (unsigned)(seq % c->w->run->o.inflight);
        /* At or past `need`: a subscriber that had the message and then closed left its count
         * and took 1 off `need`, so the last delivery may overshoot it. */
        if (__atomic_load_n(&ps->ring_seq[slot], __ATOMIC_ACQUIRE) == seq &&
            __atomic_add_fetch(&ps->ring_cnt[slot], 1, __ATOMIC_RELAXED) >=
                __atomic_load_n(&ps->need, __ATOMIC_RELAXED) &&
            c->w->id != 0)
            c->w->wake_main = true; /* the message is done: the publisher's turn (fanout_tick) */
    } else if (c == ps->probe) {
        ps->progress_at = now;
        if (ps->inflight > 0)
            ps->inflight--;
        fanout_fill(ps, now); /* fanout_tick flushes once per batch of events */
    }
}

static void fanout_message(struct client *c, uint8_t opcode, uint64_t len, const uint8_t *head,
                           uint64_t now)
{
    pubsub_message(c, len, head, now, fanout_delivered);
}

/* A counted subscriber closed: no message waits for it any more. Any worker. */
static void fanout_closed(struct client *c)
{
    struct pubsub *ps = ps_of(c);

    if (c->counted) {
        __atomic_fetch_sub(&ps->need, 1, __ATOMIC_RELAXED);
        if (c->w->id != 0) /* the messages it held back may be done */
            worker_wake(&c->w->run->workers[0]);
    }
}

/* Worker 0, before each wait: moves the window, publishes, flushes the publisher. */
static int fanout_tick(struct worker *w, uint64_t now)
{
    struct pubsub *ps = w->run->scen;
    struct client *pub = ps->publisher;
    unsigned win = w->run->o.inflight, need;
    bool stuck;

    if (w->id != 0) {
        /* Once per batch of events, not per message: a read that completes a wave's messages
         * completes them one after the other, and a wake per message would have the publisher
         * send the first of them alone, splitting the next wave in pieces. */
        if (w->wake_main)
            worker_wake(&w->run->workers[0]);
        w->wake_main = false;
        return -1;
    }
    if (ps->window_all) {
        need = __atomic_load_n(&ps->need, __ATOMIC_RELAXED);
        while (ps->base < pub->next_seq &&
               __atomic_load_n(&ps->ring_cnt[ps->base % win], __ATOMIC_RELAXED) >= need) {
            ps->base++;
            ps->progress_at = now;
        }
    }
    stuck = ps->window_all ? ps->base < pub->next_seq : ps->inflight > 0;
    /* Lost messages would hold the window for good: after a silence, give them up. */
    if (stuck && now - ps->progress_at > PROBE_STALL_US) {
        if (!ps->stall_warned)
            client_warn(w,
                        "no progress for %llu ms (messages lost?): the publisher's window is "
                        "refilled",
                        PROBE_STALL_US / 1000);
        ps->stall_warned = true;
        ps->base = pub->next_seq;
        ps->inflight = 0;
        ps->progress_at = now;
    }
    fanout_fill(ps, now);
    if (ps->pub_dirty && pub->state == C_OPEN && client_flush(pub) < 0) {
        w->st.closed++;
        client_close(pub, C_DEAD);
    }
    ps->pub_dirty = false;
    /* Other workers wake this one when a message is done (fanout_delivered, fanout_tick). */
    return (int)(PROBE_STALL_US / 1000);
}

static void fanout_report(const struct run *run, const struct stats *st, char *json, size_t n)
{
    pubsub_report(run, st, json, n, run->o.conns - 1);
}

const struct scenario scenario_fanout = {
    .name = "fanout",
    .setup_cb = fanout_setup,
    .client_init_cb = pubsub_client_init,
    .subscribe_cb = pubsub_subscribe,
    .start_cb = fanout_start,
    .message_cb = fanout_message,
    .tick_cb = fanout_tick,
    .closed_cb = fanout_closed,
    .settled_cb = pubsub_settled,
    .report_cb = fanout_report,
};

/* ---- rooms --------------------------------------------------------------------------------- */

static void rooms_setup(struct run *run)
{
    pubsub_setup(run, true, false);
}

static void rooms_start(struct client *c, uint64_t now)
{
    /* Publications come from rooms_tick's timer. */
}

static void rooms_message(struct client *c, uint8_t opcode, uint64_t len, const uint8_t *head,
                          uint64_t now)
{
    pubsub_message(c, len, head, now, NULL);
}

/*
 * The timer: the worker's clients publish round robin, publication k of the worker at
 * t_load + k / (nc * rate), so each client publishes `rate` times a second. A late worker catches
 * up at once (the schedule does not slip), so its lateness shows as latency.
 */
static int rooms_tick(struct worker *w, uint64_t now)
{
    const struct run *run = w->run;
    double per_us = (double)w->nc * run->o.rate / 1e6;
    uint64_t due = (uint64_t)((double)(now - run->t_load) * per_us) + 1, next;
    struct client *c;

    while (w->sends < due) {
        c = &w->c[w->sends++ % w->nc];
        if (c->state != C_OPEN)
            continue;
        pubsub_publish(c, now);
        if (c->state == C_OPEN && client_flush(c) < 0) {
            w->st.closed++;
            client_close(c, C_DEAD);
        }
    }
    next = run->t_load + (uint64_t)((double)w->sends / per_us);
    return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

static void rooms_report(const struct run *run, const struct stats *st, char *json, size_t n)
{
    pubsub_report(run, st, json, n, run->o.conns);
}

const struct scenario scenario_rooms = {
    .name = "rooms",
    .setup_cb = rooms_setup,
    .client_init_cb = pubsub_client_init,
    .subscribe_cb = pubsub_subscribe,
    .start_cb = rooms_start,
    .message_cb = rooms_message,
    .tick_cb = rooms_tick,
    .settled_cb = pubsub_settled,
    .report_cb = rooms_report,
};

/* ---- connect ------------------------------------------------------------------------------- */

static void connect_setup(struct run *run)
{
    run->o.rooms = run->o.own_topics ? run->o.conns : 1;
    pubsub_setup(run, true, true);
}

static void connect_start(struct client *c, uint64_t now)
{
    /* Idle: nothing is sent. */
}

static void connect_message(struct client *c, uint8_t opcode, uint64_t len, const uint8_t *head,
                            uint64_t now)
{
    c->rx_msgs++;
    c->w->st.ignored++;
}

static void connect_report(const struct run *run, const struct stats *st, char *json, size_t n)
{
    const struct opts *o = &run->o;
    uint64_t opened = 0, subscribed = 0;
    double secs_open, secs_sub, open_rate, sub_rate, per_conn = -1;
    long long r0 = run->cpu_start.server_rss_kib, r1 = run->cpu1.server_rss_kib;
    char rss[64] = "null";

    for (unsigned i = 0; i < run->nworkers; i++) {
        if (run->workers[i].t_open > opened)
            opened = run->workers[i].t_open;
        if (run->workers[i].t_subscribed > subscribed)
            subscribed = run->workers[i].t_subscribed;
    }
    secs_open = (double)(opened - run->t_start) / 1e6;
    secs_sub = (double)(subscribed - run->t_start) / 1e6;
    open_rate = secs_open > 0 ? (double)st->open / secs_open : 0;
    sub_rate = secs_sub > 0 ? (double)(st->open - st->unready) / secs_sub : 0;
    if (r0 >= 0 && r1 >= 0 && st->open > 0) {
        per_conn = (double)(r1 - r0) / (double)st->open;
        snprintf(rss, sizeof(rss), "%.3f", per_conn);
    }
    printf("wsload connect: %" PRIu64 " of %u connections open in %.3f s (%.0f/s), %" PRIu64
           " subscribed (%s) in %.3f s (%.0f/s); %" PRIu64 " unconfirmed",
           st->open, o->conns, secs_open, open_rate, st->open - st->unready,
           o->own_topics ? "each to its own topic" : "all to one topic", secs_sub, sub_rate,
           st->unready);
    if (per_conn >= 0)
        printf("; server RSS %lld -> %lld KiB: %.2f KiB per idle subscribed connection", r0, r1,
               per_conn);
    printf("\n");
    snprintf(json, n,
             ",\"subscribers\":%" PRIu64 ",\"topics\":%u,\"unready\":%" PRIu64
             ",\"open_s\":%.3f,\"conns_open_per_s\":%.1f,\"subscribed_s\":%.3f,"
             "\"conns_per_s\":%.1f,\"kib_per_conn\":%s,\"skip_first\":%u",
             st->open - st->unready, o->rooms, st->unready, secs_open, open_rate, secs_sub,
             sub_rate, rss, o->skip_first);
}

const struct scenario scenario_connect = {
    .name = "connect",
    .idle = true,
    .setup_cb = connect_setup,
    .client_init_cb = pubsub_client_init,
    .subscribe_cb = pubsub_subscribe,
    .start_cb = connect_start,
    .message_cb = connect_message,
    .report_cb = connect_report,
};
