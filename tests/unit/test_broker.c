/* Unit tests for the broker core: topics as logs, cursors, wildcards, recovery, wakes. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "ws_frame.h"
#include "wsc_wire.h"

/* A fake owner: counts references and wakes. */
struct owner {
    atomic_int refs;
    atomic_int wakes;
};

static void o_ref(void *o)
{
    atomic_fetch_add(&((struct owner *)o)->refs, 1);
}

static void o_unref(void *o)
{
    atomic_fetch_sub(&((struct owner *)o)->refs, 1);
}

static void o_dispatch(struct broker_batch *batch, void *ctx)
{
    (void)ctx;
    for (unsigned i = 0; i < batch->n; i++) {
        atomic_fetch_add(&((struct owner *)batch->owners[i])->wakes, 1);
        o_unref(batch->owners[i]);
    }
    free(batch);
}

static struct broker *mk(size_t history)
{
    struct broker_config cfg = {.history_size = history, .history_ttl = 0, .max_subscriptions = 8};
    struct broker_hooks hooks = {.ref = o_ref, .unref = o_unref, .dispatch = o_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    cr_assert_not_null(b);
    return b;
}

static int sub(struct broker_session *s, const char *p, struct broker_sub_result *res)
{
    struct broker_sub_result tmp;
    const char *why;
    return broker_subscribe(s, p, strlen(p), NULL, res ? res : &tmp, &why);
}

static uint64_t pub(struct broker *b, const char *topic, const char *data, unsigned *reach)
{
    struct broker_pub_result r;
    const char *why;
    cr_assert_eq(broker_publish(b, topic, strlen(topic), data, strlen(data), &r, &why), 0);
    if (reach)
        *reach = r.reach;
    return r.offset;
}

/* Appends the payload of each frame in p[0..len) to out (one per line): a segment holds one frame,
 * or several when a large topic's subscribers share a run of them (broker.c: take_run). */
static void frames_to_lines(const uint8_t *p, size_t len, char **out, size_t *olen, size_t *cap)
{
    while (len > 0) {
        cr_assert_geq(len, 2);
        cr_assert_eq(p[0], 0x81, "a final text frame");
        size_t n = p[1] & 0x7f, hl = 2;
        if (n == 126) {
            cr_assert_geq(len, 4);
            n = (size_t)p[2] << 8 | p[3];
            hl = 4;
        } else {
            cr_assert_lt(n, 127, "no 64-bit lengths in these tests");
        }
        cr_assert_geq(len, hl + n, "the header's length fits the segment");
        if (*olen + n + 2 > *cap) {
            *cap = (*olen + n + 2) * 2;
            *out = realloc(*out, *cap);
        }
        memcpy(*out + *olen, p + hl, n);
        *olen += n;
        (*out)[(*olen)++] = '\n';
        (*out)[*olen] = '\0';
        p += hl + n;
        len -= hl + n;
    }
}

/* Pulls everything and returns the JSON payloads, one per line. */
static char *pull_all(struct broker_session *s, bool *lost)
{
    struct outq q;
    outq_init(&q);
    bool more, l;
    size_t left;
    broker_pull(s, &q, 1 << 20, &more, &l, &left);
    if (lost)
        *lost = l;
    size_t cap = 65536, len = 0;
    char *out = calloc(1, cap);
    for (uint32_t i = 0; i < q.count; i++) {
        struct obuf *f = q.segs[(q.head + i) % q.cap].buf.b;
        frames_to_lines((const uint8_t *)f->data + f->start, f->len - f->start, &out, &len, &cap);
    }
    outq_deinit(&q);
    return out;
}

Test(broker, publish_reaches_subscribers_in_order_as_shared_frames)
{
    struct broker *b = mk(100);
    struct owner oa = {0}, ob = {0};
    struct broker_session *a = broker_session_new(b, &oa), *c = broker_session_new(b, &ob);
    cr_assert_eq(sub(a, "chat.room1", NULL), 0);
    cr_assert_eq(sub(c, "chat.room1", NULL), 0);
    unsigned reach;
    cr_assert_eq(pub(b, "chat.room1", "\"hello\"", &reach), 1);
    cr_assert_eq(reach, 2);
    cr_assert_eq(pub(b, "chat.room1", "{\"n\":2}", NULL), 2);
    cr_assert_eq(atomic_load(&oa.wakes), 1, "a pending wake is not repeated");
    char *got = pull_all(a, NULL);
    cr_assert_str_eq(
        got, "{\"type\":\"msg\",\"topic\":\"chat.room1\",\"data\":\"hello\",\"offset\":1}\n"
             "{\"type\":\"msg\",\"topic\":\"chat.room1\",\"data\":{\"n\":2},\"offset\":2}\n");
    free(got);
    got = pull_all(a, NULL);
    cr_assert_str_eq(got, "", "nothing twice");
    free(got);
    pub(b, "chat.room1", "3", NULL);
    cr_assert_eq(atomic_load(&oa.wakes), 2, "woken again after its pull");
    got = pull_all(c, NULL);
    cr_assert(strstr(got, "\"offset\":3"));
    free(got);
    cr_assert_eq(atomic_load(&oa.refs), 0);
    broker_session_free(a);
    broker_session_free(c);
    broker_free(b);
}

Test(broker, subscribe_is_idempotent_and_unsubscribe_stops_delivery)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_result r;
    cr_assert_eq(sub(s, "news", &r), 0);
    cr_assert(!r.existed);
    cr_assert_eq(sub(s, "news", &r), 0);
    cr_assert(r.existed);
    unsigned reach;
    pub(b, "news", "1", &reach);
    cr_assert_eq(reach, 1, "one subscription, not two");
    cr_assert_eq(broker_unsubscribe(s, "news", 4), 0);
    cr_assert_eq(broker_unsubscribe(s, "news", 4), BROKER_ENOTSUB);
    pub(b, "news", "2", &reach);
    cr_assert_eq(reach, 0);
    char *got = pull_all(s, NULL);
    cr_assert_str_eq(got, "");
    free(got);
    broker_session_free(s);
    broker_free(b);
}

Test(broker, wildcards_match_existing_and_future_topics_once)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    pub(b, "chat.a", "0", NULL); /* exists before the subscription */
    cr_assert_eq(sub(s, "chat.*", NULL), 0);
    cr_assert_eq(sub(s, "chat.>", NULL), 0);
    cr_assert_eq(sub(s, "chat.a", NULL), 0); /* overlapping exact subscription */
    unsigned reach;
    pub(b, "chat.a", "1", &reach);
    cr_assert_eq(reach, 1, "one delivery per topic per connection");
    pub(b, "chat.b", "2", NULL);   /* created after the subscription */
    pub(b, "chat.b.x", "3", NULL); /* only chat.> */
    pub(b, "other", "4", NULL);
    char *got = pull_all(s, NULL);
    cr_assert(strstr(got, "\"topic\":\"chat.a\",\"data\":1,"), "%s", got);
    cr_assert(strstr(got, "\"topic\":\"chat.b\",\"data\":2,"), "%s", got);
    cr_assert(strstr(got, "\"topic\":\"chat.b.x\",\"data\":3,"), "%s", got);
    cr_assert_null(strstr(got, "\"data\":0,"), "no history for a plain wildcard subscription");
    cr_assert_null(strstr(got, "other"));
    free(got);
    /* Dropping chat.* keeps chat.a (exact) and chat.b (still matched by chat.>). */
    cr_assert_eq(broker_unsubscribe(s, "chat.*", 6), 0);
    pub(b, "chat.a", "5", &reach);
    cr_assert_eq(reach, 1);
    cr_assert_eq(broker_unsubscribe(s, "chat.>", 6), 0);
    pub(b, "chat.b", "6", &reach);
    cr_assert_eq(reach, 0);
    broker_session_free(s);
    broker_free(b);
}

Test(broker, recovery_replays_exactly_what_was_missed)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_result r;
    cr_assert_eq(sub(s, "feed", &r), 0);
    char epoch[32];
    strcpy(epoch, r.epoch);
    for (int i = 1; i <= 5; i++) {
        char d[8];
        snprintf(d, sizeof(d), "%d", i);
        pub(b, "feed", d, NULL);
    }
    char *got = pull_all(s, NULL); /* saw 1..5 */
    free(got);
    broker_session_free(s); /* disconnect */
    for (int i = 6; i <= 8; i++)
        pub(b, "feed", "0", NULL);
    s = broker_session_new(b, &o);
    struct broker_sub_opts opts = {.recover = true, .epoch = epoch, .offset = 5};
    const char *why;
    cr_assert_eq(broker_subscribe(s, "feed", 4, &opts, &r, &why), 0);
    cr_assert(r.recovered);
    cr_assert_eq(r.replay, 3);
    cr_assert_eq(r.offset, 8);
    pub(b, "feed", "9", NULL); /* live, after the replay */
    got = pull_all(s, NULL);
    cr_assert(strstr(got, "\"offset\":6}\n") == got + strcspn(got, "\n") - 11 ||
                  strncmp(strstr(got, "offset"), "offset\":6}", 10) == 0,
              "%s", got);
    for (int off = 6; off <= 9; off++) {
        char needle[32];
        snprintf(needle, sizeof(needle), "\"offset\":%d}", off);
        cr_assert_not_null(strstr(got, needle), "offset %d missing: %s", off, got);
    }
    cr_assert_null(strstr(got, "\"offset\":5}"), "no duplicate");
    free(got);
    broker_session_free(s);

    /* Another epoch (a restarted server) cannot be recovered from. */
    s = broker_session_new(b, &o);
    opts.epoch = "0000000000000000-1";
    cr_assert_eq(broker_subscribe(s, "feed", 4, &opts, &r, &why), 0);
    cr_assert(!r.recovered);
    cr_assert_eq(r.replay, 0);
    broker_session_free(s);
    broker_free(b);
}

Test(broker, last_n_and_history_bound)
{
    struct broker *b = mk(4);
    struct owner o = {0};
    for (int i = 1; i <= 10; i++)
        pub(b, "t", "1", NULL);
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_opts opts = {.last = 3};
    struct broker_sub_result r;
    const char *why;
    cr_assert_eq(broker_subscribe(s, "t", 1, &opts, &r, &why), 0);
    cr_assert_eq(r.replay, 3);
    char *got = pull_all(s, NULL);
    cr_assert_not_null(strstr(got, "\"offset\":8}"));
    cr_assert_null(strstr(got, "\"offset\":7}"));
    free(got);
    /* Asking for more than is kept gives what is kept. */
    broker_session_free(s);
    s = broker_session_new(b, &o);
    opts.last = 100;
    cr_assert_eq(broker_subscribe(s, "t", 1, &opts, &r, &why), 0);
    cr_assert_eq(r.replay, 4);
    free(pull_all(s, NULL));
    /* A subscriber that falls behind the history has lost messages. */
    for (int i = 0; i < 6; i++)
        pub(b, "t", "2", NULL);
    bool lost;
    free(pull_all(s, &lost));
    cr_assert(lost);
    broker_session_free(s);
    broker_free(b);
}

Test(broker, limits_and_bad_names)
{
    struct broker *b = mk(10);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_result r;
    const char *why;
    cr_assert_eq(broker_subscribe(s, "bad topic", 9, NULL, &r, &why), BROKER_EBADTOPIC);
    cr_assert_not_null(why);
    struct broker_pub_result pr;
    cr_assert_eq(broker_publish(b, "chat.*", 6, "1", 1, &pr, &why), BROKER_EBADTOPIC);
    for (int i = 0; i < 8; i++) {
        char t[8];
        snprintf(t, sizeof(t), "t%d", i);
        cr_assert_eq(sub(s, t, NULL), 0);
    }
    cr_assert_eq(sub(s, "t9", NULL), BROKER_ETOOMANY);
    cr_assert_eq(sub(s, "t0", NULL), 0, "resubscribing is not a new subscription");
    broker_session_free(s);
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_eq(st.subscriptions, 0);
    broker_free(b);
}

/* Many threads publish to one topic while a subscriber pulls: offsets arrive contiguous. */
struct pub_arg {
    struct broker *b;
    int n;
};

static void *publisher(void *p)
{
    struct pub_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        struct broker_pub_result r;
        const char *why;
        broker_publish(a->b, "race", 4, "1", 1, &r, &why);
    }
    return NULL;
}

Test(broker, concurrent_publishers_give_one_order)
{
    struct broker *b = mk(100000);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "race", NULL), 0);
    pthread_t th[8];
    struct pub_arg a = {.b = b, .n = 5000};
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, publisher, &a);
    uint64_t expect = 1;
    for (int spins = 0; expect <= 40000 && spins < 1000000; spins++) {
        char *got = pull_all(s, NULL);
        for (char *line = got; *line; line = strchr(line, '\n') + 1) {
            char *off = strstr(line, "\"offset\":");
            cr_assert_eq(strtoull(off + 9, NULL, 10), expect, "gap or reorder");
            expect++;
        }
        free(got);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    free(pull_all(s, NULL));
    cr_assert_eq(expect, 40001);
    broker_session_free(s);
    broker_free(b);
}

Test(broker, resubscribing_never_skips_undelivered_messages)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "t.a", NULL), 0);
    pub(b, "t.a", "1", NULL);
    struct broker_sub_result r;
    cr_assert_eq(sub(s, "t.a", &r), 0); /* again, before pulling */
    cr_assert(r.existed);
    cr_assert_eq(sub(s, "t.*", NULL), 0);
    pub(b, "t.b", "2", NULL);             /* t.b arrives through the wildcard */
    cr_assert_eq(sub(s, "t.b", NULL), 0); /* now also exactly, before pulling */
    char *got = pull_all(s, NULL);
    cr_assert(strstr(got, "\"topic\":\"t.a\",\"data\":1,"), "%s", got);
    cr_assert(strstr(got, "\"topic\":\"t.b\",\"data\":2,"), "%s", got);
    free(got);
    broker_session_free(s);
    broker_free(b);
}

/* Resubscribing with a replay request on a live subscription: a failed recovery or a "last"
 * shorter than the backlog used to move the cursor forward, past messages never delivered. */
Test(broker, a_replay_request_on_a_live_subscription_never_skips_its_backlog)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "t", NULL), 0);
    for (int i = 1; i <= 5; i++)
        pub(b, "t", "1", NULL);
    struct broker_sub_result r;
    const char *why;
    struct broker_sub_opts last = {.last = 1};
    cr_assert_eq(broker_subscribe(s, "t", 1, &last, &r, &why), 0);
    cr_assert(r.existed);
    cr_assert_eq(r.replay, 5, "the backlog of 5 still comes: %llu", (unsigned long long)r.replay);
    struct broker_sub_opts bad = {.recover = true, .epoch = "nope", .offset = 3};
    cr_assert_eq(broker_subscribe(s, "t", 1, &bad, &r, &why), 0);
    cr_assert_not(r.recovered);
    char *got = pull_all(s, NULL);
    for (int off = 1; off <= 5; off++) {
        char want[32];
        snprintf(want, sizeof(want), "\"offset\":%d}", off);
        cr_assert_not_null(strstr(got, want), "offset %d missing: %s", off, got);
    }
    free(got);
    /* A replay may still go back: "last 2" after everything was delivered gives 4 and 5. */
    cr_assert_eq(broker_subscribe(s, "t", 1, &(struct broker_sub_opts){.last = 2}, &r, &why), 0);
    cr_assert_eq(r.replay, 2);
    got = pull_all(s, NULL);
    cr_assert(strstr(got, "\"offset\":4}") && strstr(got, "\"offset\":5}") &&
                  !strstr(got, "\"offset\":3}"),
              "%s", got);
    free(got);
    broker_session_free(s);
    broker_free(b);
}

/* An exact subscription's replay that goes back into what a wildcard already delivered says how
 * far that was (res.delivered), so the client can keep the repeats from the wildcard's handler;
 * nothing delivered before, no field. */
Test(broker, a_replay_into_what_a_wildcard_delivered_says_how_far_it_got)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_result r;
    const char *why;
    pub(b, "t.a", "1", NULL); /* before the wildcard: never delivered */
    pub(b, "t.a", "2", NULL);
    cr_assert_eq(sub(s, "t.*", NULL), 0);
    for (int i = 3; i <= 6; i++)
        pub(b, "t.a", "1", NULL);
    free(pull_all(s, NULL));  /* 3..6 delivered through the wildcard */
    pub(b, "t.a", "7", NULL); /* published, not yet delivered */
    cr_assert_eq(broker_subscribe(s, "t.a", 3, &(struct broker_sub_opts){.last = 6}, &r, &why), 0);
    cr_assert_not(r.existed);
    cr_assert_eq(r.replay, 6, "2..7: %llu", (unsigned long long)r.replay);
    cr_assert_eq(r.delivered, 6, "3..6 were: %llu", (unsigned long long)r.delivered);
    char *got = pull_all(s, NULL);
    cr_assert(strstr(got, "\"offset\":2}") && strstr(got, "\"offset\":7}"), "%s", got);
    free(got);
    /* A replay that starts past everything delivered repeats nothing. */
    pub(b, "t.a", "8", NULL);
    cr_assert_eq(broker_subscribe(s, "t.a", 3, &(struct broker_sub_opts){.last = 1}, &r, &why), 0);
    cr_assert(r.existed);
    cr_assert_eq(r.replay, 1);
    cr_assert_eq(r.delivered, 0);
    /* An exact name seen through nothing before: no repeats either. */
    cr_assert_eq(broker_subscribe(s, "u", 1, &(struct broker_sub_opts){.last = 5}, &r, &why), 0);
    cr_assert_eq(r.delivered, 0);
    broker_session_free(s);
    broker_free(b);
}

static struct broker *mk_lag(size_t history, size_t max_lag)
{
    struct broker_config cfg = {
        .history_size = history, .max_subscriptions = 8, .max_lag = max_lag};
    struct broker_hooks hooks = {.ref = o_ref, .unref = o_unref, .dispatch = o_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    cr_assert_not_null(b);
    return b;
}

/* A burst longer than the history must not cut off a subscriber that is within max_lag (the
 * server's --max-outbound): its wake may not have run yet. The history grows for it, then
 * shrinks back to history_size; one further behind than max_lag still loses. */
Test(broker, a_burst_past_the_history_spares_subscribers_within_the_lag_bound)
{
    struct broker *b = mk_lag(4, 1 << 20);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "t", NULL), 0);
    for (int i = 1; i <= 50; i++)
        pub(b, "t", "\"burst\"", NULL);
    bool lost;
    char *got = pull_all(s, &lost);
    cr_assert_not(lost);
    for (int off = 1; off <= 50; off++) {
        char want[32];
        snprintf(want, sizeof(want), "\"offset\":%d}", off);
        cr_assert_not_null(strstr(got, want), "offset %d missing", off);
    }
    free(got);
    /* Caught up and keeping up: later publishes and the sweep bring the topic back to 4 kept
     * messages (publishes rescan the subscribers only every so often: a scan visits them all). */
    for (int i = 0; i < 100; i++) {
        pub(b, "t", "2", NULL);
        free(pull_all(s, &lost));
        cr_assert_not(lost);
    }
    broker_sweep(b, 1024);
    struct broker_session *late = broker_session_new(b, &o);
    struct broker_sub_result r;
    const char *why;
    cr_assert_eq(broker_subscribe(late, "t", 1, &(struct broker_sub_opts){.last = 1000}, &r, &why),
                 0);
    cr_assert_eq(r.replay, 4, "kept: %llu", (unsigned long long)r.replay);
    broker_session_free(late);
    broker_session_free(s);
    broker_free(b);

    /* Past max_lag (each delivery is about 40 bytes here) the history does not wait. */
    b = mk_lag(4, 200);
    s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "t", NULL), 0);
    for (int i = 1; i <= 50; i++)
        pub(b, "t", "\"burst\"", NULL);
    /* A replay asked for now is answered with what will come: the 4 kept messages, after the
     * loss (it said 50, more than the topic keeps). */
    cr_assert_eq(broker_subscribe(s, "t", 1, &(struct broker_sub_opts){.last = 2}, &r, &why), 0);
    cr_assert_eq(r.replay, 4, "replay %llu", (unsigned long long)r.replay);
    free(pull_all(s, &lost));
    cr_assert(lost);
    broker_session_free(s);
    broker_free(b);
}

/* ---- presence ---- */

static int sub_member(struct broker_session *s, const char *topic, const char *member)
{
    struct broker_sub_result res;
    struct broker_sub_opts o = {.member = member, .member_len = strlen(member)};
    const char *why;
    return broker_subscribe(s, topic, strlen(topic), &o, &res, &why);
}

struct listing {
    char text[4096];
    int n;
};

static void list_member(const char *m, size_t len, void *ctx)
{
    struct listing *l = ctx;
    size_t at = strlen(l->text);
    snprintf(l->text + at, sizeof(l->text) - at, "%.*s;", (int)len, m);
    l->n++;
}

Test(broker, presence_join_leave_and_count)
{
    struct broker *b = mk(10);
    struct owner oa = {0}, ob = {0}, oc = {0};
    struct broker_session *a = broker_session_new(b, &oa), *bb = broker_session_new(b, &ob),
                          *c = broker_session_new(b, &oc);
    cr_assert_eq(sub(c, "room", NULL), 0, "a plain subscriber");
    cr_assert_eq(sub_member(a, "room", "{\"session\":\"a\"}"), 0);
    char *got = pull_all(a, NULL);
    cr_assert_str_eq(got, "", "no own join");
    free(got);
    cr_assert_eq(sub_member(bb, "room", "{\"session\":\"b\"}"), 0);
    cr_assert_eq(atomic_load(&oa.wakes), 1, "the member is woken by the join");
    got = pull_all(a, NULL);
    cr_assert_str_eq(got,
                     "{\"type\":\"join\",\"topic\":\"room\",\"member\":{\"session\":\"b\"}}\n");
    free(got);
    got = pull_all(c, NULL);
    cr_assert_str_eq(got, "", "non-members get no events");
    free(got);
    cr_assert_eq(atomic_load(&oc.wakes), 0);

    struct listing l = {0};
    cr_assert_eq(broker_presence(b, "room", 4, 100, list_member, &l), 2);
    cr_assert_eq(l.n, 2);
    cr_assert(strstr(l.text, "{\"session\":\"a\"};") && strstr(l.text, "{\"session\":\"b\"};"));
    struct listing none = {0};
    cr_assert_eq(broker_presence(b, "room", 4, 0, list_member, &none), 2, "count only");
    cr_assert_eq(none.n, 0);
    cr_assert_eq(broker_presence(b, "nowhere", 7, 10, list_member, &none), 0);
    cr_assert_eq(broker_presence(b, "bad topic", 9, 10, list_member, &none), 0);
    cr_assert_eq(sub(c, "plain", NULL), 0); /* subscribers, but no member ever joined */
    cr_assert_eq(broker_presence(b, "plain", 5, 10, list_member, &none), 0);
    cr_assert_eq(none.n, 0);

    /* again with presence: nothing changes, no second join */
    cr_assert_eq(sub_member(bb, "room", "{\"session\":\"b2\"}"), 0);
    got = pull_all(a, NULL);
    cr_assert_str_eq(got, "");
    free(got);
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_eq(st.members, 2);

    cr_assert_eq(broker_unsubscribe(bb, "room", 4), 0);
    got = pull_all(a, NULL);
    cr_assert_str_eq(got,
                     "{\"type\":\"leave\",\"topic\":\"room\",\"member\":{\"session\":\"b\"}}\n");
    free(got);
    cr_assert_eq(sub_member(bb, "room", "{\"session\":\"b\"}"), 0);
    broker_session_free(bb); /* closing leaves too */
    got = pull_all(a, NULL);
    cr_assert_str_eq(got,
                     "{\"type\":\"join\",\"topic\":\"room\",\"member\":{\"session\":\"b\"}}\n"
                     "{\"type\":\"leave\",\"topic\":\"room\",\"member\":{\"session\":\"b\"}}\n");
    free(got);
    cr_assert_eq(broker_presence(b, "room", 4, 100, list_member, &none), 1);
    broker_session_free(a);
    broker_session_free(c);
    broker_stats(b, &st);
    cr_assert_eq(st.members, 0);
    broker_free(b);
}

Test(broker, presence_rules)
{
    struct broker *b = mk(10);
    struct owner oa = {0}, ob = {0};
    struct broker_session *a = broker_session_new(b, &oa), *bb = broker_session_new(b, &ob);
    cr_assert_eq(sub_member(a, "room.*", "{}"), BROKER_EBADREQ, "exact names only");
    /* membership goes with the exact subscription, even when a wildcard keeps the topic */
    cr_assert_eq(sub(bb, "room.>", NULL), 0);
    cr_assert_eq(sub_member(bb, "room.1", "{\"session\":\"b\"}"), 0);
    cr_assert_eq(sub_member(a, "room.1", "{\"session\":\"a\"}"), 0);
    cr_assert_eq(broker_unsubscribe(bb, "room.1", 6), 0);
    char *got = pull_all(a, NULL);
    cr_assert_str_eq(got,
                     "{\"type\":\"leave\",\"topic\":\"room.1\",\"member\":{\"session\":\"b\"}}\n");
    free(got);
    struct listing l = {0};
    cr_assert_eq(broker_presence(b, "room.1", 6, 10, list_member, &l), 1);
    cr_assert_str_eq(l.text, "{\"session\":\"a\"};");
    pub(b, "room.1", "1", NULL);
    got = pull_all(bb, NULL);
    cr_assert(strstr(got, "\"type\":\"msg\""), "the wildcard still delivers messages");
    cr_assert_null(strstr(got, "\"type\":\"join\""), "but no presence events");
    free(got);
    broker_session_free(a);
    broker_session_free(bb);
    broker_free(b);
}

Test(broker, presence_lost_when_a_member_falls_behind)
{
    struct broker *b = mk(10);
    struct owner oa = {0}, ob = {0};
    struct broker_session *a = broker_session_new(b, &oa), *bb = broker_session_new(b, &ob);
    cr_assert_eq(sub_member(a, "room", "{\"session\":\"a\"}"), 0);
    /* PRESENCE_EVENTS + 2 joins and leaves happen before the member reads any */
    for (int i = 0; i < PRESENCE_EVENTS / 2 + 1; i++) {
        cr_assert_eq(sub_member(bb, "room", "{\"session\":\"b\"}"), 0);
        cr_assert_eq(broker_unsubscribe(bb, "room", 4), 0);
    }
    char *got = pull_all(a, NULL);
    const char *lost = "{\"type\":\"presence_lost\",\"topic\":\"room\"}\n";
    cr_assert_eq(strncmp(got, lost, strlen(lost)), 0, "told first: %.80s", got);
    int events = 0;
    for (const char *p = got; (p = strstr(p, "\"member\"")); p++)
        events++;
    cr_assert_eq(events, PRESENCE_EVENTS, "then every event still kept");
    free(got);
    cr_assert_eq(sub_member(bb, "room", "{\"session\":\"b\"}"), 0);
    got = pull_all(a, NULL);
    cr_assert_str_eq(got, "{\"type\":\"join\",\"topic\":\"room\",\"member\":{\"session\":\"b\"}}\n",
                     "and from then on, events as usual");
    free(got);
    broker_session_free(a);
    broker_session_free(bb);
    broker_free(b);
}

/* Presence events share the pull's budget with messages and count in what it leaves waiting, so a
 * member that stops reading is held to --max-outbound like a subscriber. They used to be queued
 * all at every pull, budget or not: a non-reading member of a busy room grew without bound and
 * was never disconnected. */
Test(broker, presence_events_are_pulled_within_the_budget_and_counted_when_left)
{
    struct broker *b = mk(10);
    struct owner oa = {0}, ob = {0};
    struct broker_session *a = broker_session_new(b, &oa), *bb = broker_session_new(b, &ob);
    cr_assert_eq(sub_member(a, "room", "{\"session\":\"a\"}"), 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(sub_member(bb, "room", "{\"session\":\"b\"}"), 0);
        cr_assert_eq(broker_unsubscribe(bb, "room", 4), 0);
    }
    struct outq q;
    outq_init(&q);
    bool more, lost;
    size_t left;
    size_t got = broker_pull(a, &q, 1, &more, &lost, &left);
    cr_assert_eq(q.count, 1, "one event for a budget of one byte, not %u", q.count);
    cr_assert(more);
    /* The 199 others wait: 99 joins like it and 100 leaves, a byte longer ("leave"). */
    cr_assert_eq(left, 199 * got + 100, "%zu waiting, a join is %zu", left, got);
    /* No budget: nothing queued, what waits still counted. */
    size_t left0;
    cr_assert_eq(broker_pull(a, &q, 0, &more, &lost, &left0), 0);
    cr_assert_eq(q.count, 1);
    cr_assert(more);
    cr_assert_eq(left0, left);
    cr_assert_eq(broker_pull(a, &q, 1 << 20, &more, &lost, &left), 199 * got + 100);
    cr_assert_eq(q.count, 200);
    cr_assert_not(more);
    cr_assert_eq(left, 0);
    outq_deinit(&q);
    broker_session_free(a);
    broker_session_free(bb);
    broker_free(b);
}

/* ---- compressed fan-out ---- */

/* The frames a pull queues, kept (caller unrefs with outq_deinit). */
static void pull_into(struct broker_session *s, struct outq *q)
{
    outq_init(q);
    bool more, lost;
    size_t left;
    broker_pull(s, q, 1 << 20, &more, &lost, &left);
}

static struct obuf *seg(struct outq *q, uint32_t i)
{
    return q->segs[(q->head + i) % q->cap].buf.b;
}

Test(broker, compressed_once_for_deflate_subscribers)
{
    struct broker *b = mk(10);
    struct owner o1 = {0}, o2 = {0}, o3 = {0};
    struct broker_session *z1 = broker_session_new(b, &o1), *z2 = broker_session_new(b, &o2),
                          *plain = broker_session_new(b, &o3);
    broker_session_set_compression(z1, true);
    broker_session_set_compression(z2, true);
    cr_assert_eq(sub(z1, "news", NULL), 0);
    cr_assert_eq(sub(z2, ">", NULL), 0); /* through a wildcard as well */
    cr_assert_eq(sub(plain, "news", NULL), 0);
    broker_session_set_compression(plain, true); /* too late: ignored */
    char data[2048];
    size_t n = 0;
    n += (size_t)snprintf(data + n, sizeof(data) - n, "\"");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(data + n, sizeof(data) - n, "the same words again %d ", i % 3);
    snprintf(data + n, sizeof(data) - n, "\"");
    pub(b, "news", data, NULL);
    pub(b, "news", "\"short\"", NULL); /* under the threshold: plain for everybody */

    struct outq q1, q2, q3;
    pull_into(z1, &q1);
    pull_into(z2, &q2);
    pull_into(plain, &q3);
    cr_assert_eq(q1.count, 2);
    cr_assert_eq(q2.count, 2);
    cr_assert_eq(q3.count, 2);
    struct obuf *a = seg(&q1, 0), *p = seg(&q3, 0);
    cr_assert_eq(a, seg(&q2, 0), "one compressed frame shared by both");
    cr_assert_neq(a, p);
    const uint8_t *ah = (const uint8_t *)a->data + a->start,
                  *ph = (const uint8_t *)p->data + p->start;
    cr_assert_eq(ah[0], 0xc1, "FIN, RSV1, text: %#x", ah[0]);
    cr_assert_eq(ph[0], 0x81, "plain for the session without compression");
    size_t alen = a->len - a->start, plen = p->len - p->start;
    cr_assert_lt(alen, plen / 3, "compressible text shrinks: %zu of %zu", alen, plen);
    size_t ahl = ws_frame_header_size(alen - 2, false), phl = ws_frame_header_size(plen - 2, false);
    char *out;
    size_t got;
    cr_assert_eq(wsc_inflate(ah + ahl, alen - ahl, 8192, &out, &got), 0, "inflates");
    cr_assert_eq(got, plen - phl);
    cr_assert_eq(memcmp(out, ph + phl, got), 0, "inflates to the plain delivery, offset included");
    free(out);
    cr_assert_eq(seg(&q1, 1), seg(&q3, 1), "a short message is the plain frame for all");
    outq_deinit(&q1);
    outq_deinit(&q2);
    outq_deinit(&q3);
    broker_session_free(z1);
    broker_session_free(z2);
    broker_session_free(plain);
    broker_free(b);
}

/* ---- housekeeping: topic removal, TTL, the global memory cap ---- */

static struct broker *mk_cfg(size_t history, unsigned ttl, size_t memory)
{
    struct broker_config cfg = {.history_size = history,
                                .history_ttl = ttl,
                                .max_subscriptions = 8,
                                .history_memory = memory};
    struct broker_hooks hooks = {.ref = o_ref, .unref = o_unref, .dispatch = o_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    cr_assert_not_null(b);
    return b;
}

Test(broker, unused_topics_are_removed_and_come_back_as_a_new_epoch)
{
    struct broker *b = mk_cfg(10, 0, 0);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_result r1, r2;
    cr_assert_eq(sub(s, "empty", &r1), 0);
    cr_assert_eq(sub(s, "kept", NULL), 0);
    pub(b, "kept", "1", NULL);
    struct broker_stats st;
    cr_assert_eq(broker_sweep(b, 1 << 20), 0, "subscribed topics stay");
    cr_assert_eq(broker_unsubscribe(s, "empty", 5), 0);
    cr_assert_eq(broker_unsubscribe(s, "kept", 4), 0);
    cr_assert_eq(broker_sweep(b, 1 << 20), 1, "the one that keeps nothing goes");
    broker_stats(b, &st);
    cr_assert_eq(st.topics, 1);
    cr_assert_eq(st.topics_removed, 1);
    char *got = pull_all(s, NULL);
    free(got);
    struct broker_sub_opts o2 = {.recover = true, .epoch = r1.epoch, .offset = 0};
    const char *why;
    cr_assert_eq(broker_subscribe(s, "empty", 5, &o2, &r2, &why), 0);
    cr_assert_str_neq(r2.epoch, r1.epoch, "a new life, a new epoch");
    cr_assert_not(r2.recovered, "an old epoch cannot be recovered");
    /* A wildcard subscription does not keep a topic that keeps nothing (it once did, so every
     * name ever used under ">" stayed); used again, the topic is attached to it again. */
    cr_assert_eq(broker_unsubscribe(s, "empty", 5), 0);
    cr_assert_eq(sub(s, "em*", NULL), BROKER_EBADTOPIC);
    cr_assert_eq(sub(s, ">", NULL), 0);
    cr_assert_eq(broker_sweep(b, 1 << 20), 1, "empty goes; kept has a message and no TTL");
    broker_stats(b, &st);
    cr_assert_eq(st.topics, 1);
    cr_assert_eq(pub(b, "empty", "2", NULL), 1);
    got = pull_all(s, NULL);
    cr_assert_not_null(strstr(got, "\"topic\":\"empty\",\"data\":2,\"offset\":1"), "%s", got);
    free(got);
    broker_session_free(s);
    cr_assert_eq(broker_sweep(b, 1 << 20), 0);
    broker_stats(b, &st);
    cr_assert_eq(st.topics, 2, "both keep a message, and there is no TTL");
    broker_free(b);
}

/* A wildcard subscriber behind on a topic whose messages the TTL took keeps the topic, so that
 * its next pull tells it what it lost (4008) instead of the sweep hiding it; caught up, it does
 * not keep it. */
Test(broker, a_wildcard_subscriber_behind_keeps_the_topic_until_it_learns)
{
    struct broker *b = mk_cfg(10, 1, 0);
    struct owner oa = {0}, ob = {0};
    struct broker_session *behind = broker_session_new(b, &oa), *done = broker_session_new(b, &ob);
    cr_assert_eq(sub(behind, "w.>", NULL), 0);
    cr_assert_eq(sub(done, "w.*", NULL), 0);
    pub(b, "w.a", "1", NULL);
    free(pull_all(done, NULL));
    usleep(1100 * 1000);
    cr_assert_eq(broker_sweep(b, 1 << 20), 0, "behind has not had w.a's message");
    bool lost = false;
    free(pull_all(behind, &lost));
    cr_assert(lost, "the pull tells it");
    broker_session_free(behind);
    cr_assert_eq(broker_sweep(b, 1 << 20), 1, "only done's caught-up entry is left");
    broker_session_free(done);
    broker_free(b);
}

Test(broker, messages_past_the_ttl_are_dropped_then_the_topic)
{
    struct broker *b = mk_cfg(10, 1, 0);
    pub(b, "brief", "1", NULL);
    pub(b, "brief", "2", NULL);
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_gt(st.history_bytes, 0);
    cr_assert_eq(broker_sweep(b, 1 << 20), 0);
    usleep(1100 * 1000);
    cr_assert_eq(broker_sweep(b, 1 << 20), 1);
    broker_stats(b, &st);
    cr_assert_eq(st.history_bytes, 0);
    cr_assert_eq(st.topics, 0);
    broker_free(b);
}

Test(broker, global_memory_cap_trims_the_publishing_topic)
{
    size_t cap = 64 * 1024;
    struct broker *b = mk_cfg(1000, 0, cap);
    char data[1100];
    memset(data, 'x', sizeof(data));
    data[0] = data[sizeof(data) - 2] = '"';
    data[sizeof(data) - 1] = '\0';
    pub(b, "quiet", "1", NULL);
    for (int i = 0; i < 500; i++)
        pub(b, "busy", data, NULL);
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_leq(st.history_bytes, cap, "%llu bytes kept", (unsigned long long)st.history_bytes);
    cr_assert_gt(st.history_bytes, cap - 2 * sizeof(data), "the cap is used, not undershot");
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    struct broker_sub_opts last = {.last = 1000};
    struct broker_sub_result r;
    const char *why;
    cr_assert_eq(broker_subscribe(s, "busy", 4, &last, &r, &why), 0);
    cr_assert_lt(r.replay, 60, "older messages made room: %llu kept", (unsigned long long)r.replay);
    cr_assert_gt(r.replay, 40);
    cr_assert_eq(broker_subscribe(s, "quiet", 5, &last, &r, &why), 0);
    cr_assert_eq(r.replay, 1, "other topics keep theirs");
    broker_session_free(s);
    broker_free(b);
}

/* Sweeping races with threads that create, use and leave topics: ASan and TSan watch. */
struct churn_arg {
    struct broker *b;
    int id;
    atomic_int *stop;
};

static void *churn(void *p)
{
    struct churn_arg *a = p;
    struct owner o = {0};
    struct broker_session *s = broker_session_new(a->b, &o);
    char t[32];
    /* The presence reader also follows every topic by wildcard, and pulls after each step: the
     * sweep takes its entries out of its session while it pulls. */
    if (a->id == 2)
        cr_assert_eq(sub(s, "c.>", NULL), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(t, sizeof(t), "c.%d", i % 50);
        struct broker_sub_opts opts = {.member = "{}", .member_len = 2};
        struct broker_sub_result r;
        const char *why;
        if (a->id == 0) {
            broker_subscribe(s, t, strlen(t), &opts, &r, &why);
            broker_unsubscribe(s, t, strlen(t));
        } else if (a->id == 1) {
            /* odd topics only, so the even ones stay removable whatever the timing */
            snprintf(t, sizeof(t), "c.%d", (i % 25) * 2 + 1);
            struct broker_pub_result pr;
            broker_publish(a->b, t, strlen(t), "1", 1, &pr, &why);
        } else {
            struct listing l = {0};
            broker_presence(a->b, t, strlen(t), 1, list_member, &l);
        }
        free(pull_all(s, NULL));
    }
    broker_session_free(s);
    return NULL;
}

static void *sweeper(void *p)
{
    struct churn_arg *a = p;
    while (!atomic_load(a->stop))
        broker_sweep(a->b, 1 << 20);
    return NULL;
}

Test(broker, sweeping_while_topics_are_used)
{
    struct broker *b = mk_cfg(4, 1, 0);
    atomic_int stop = 0;
    pthread_t th[4];
    struct churn_arg args[4];
    for (int i = 0; i < 4; i++)
        args[i] = (struct churn_arg){.b = b, .id = i, .stop = &stop};
    pthread_create(&th[3], NULL, sweeper, &args[3]);
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, churn, &args[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(th[3], NULL);
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_eq(st.subscriptions, 0);
    cr_assert_eq(st.members, 0);
    cr_assert_gt(st.topics_removed, 0, "the sweeper did remove topics");
    broker_free(b);
}

/* The cap never costs a subscriber a message it has not received (found in review: a topic that
 * stopped publishing held the memory, and trimming the publishing topic down to one message cut
 * its subscriber off as a slow consumer); the sweep takes the memory back from idle topics. */
Test(broker, memory_cap_spares_undelivered_messages_and_the_sweep_trims_idle_topics)
{
    size_t cap = 64 * 1024;
    struct broker *b = mk_cfg(1000, 0, cap);
    char big[1100];
    memset(big, 'x', sizeof(big));
    big[0] = big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 80; i++)
        pub(b, "idle.big", big, NULL);
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_gt(st.history_bytes, cap - 2 * sizeof(big), "the idle topic fills the cap");
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "hot", NULL), 0);
    for (int i = 0; i < 5; i++)
        pub(b, "hot", "\"burst\"", NULL);
    bool lost = true;
    char *got = pull_all(s, &lost);
    cr_assert_not(lost, "the subscriber keeps up and loses nothing");
    int n = 0;
    for (const char *p = got; (p = strstr(p, "\"burst\"")); p++)
        n++;
    cr_assert_eq(n, 5);
    free(got);
    cr_assert_eq(broker_sweep(b, 1 << 20), 0);
    broker_stats(b, &st);
    cr_assert_leq(st.history_bytes, cap, "the sweep trimmed the idle topic: %llu",
                  (unsigned long long)st.history_bytes);
    struct broker_sub_opts last = {.last = 1000};
    struct broker_sub_result r;
    const char *why;
    cr_assert_eq(broker_subscribe(s, "idle.big", 8, &last, &r, &why), 0);
    cr_assert_geq(r.replay, 1, "its newest message stays");
    cr_assert_lt(r.replay, 80);
    broker_session_free(s);
    broker_free(b);
}

/* Pulls at most about `budget` bytes and checks the offsets are exactly *next, *next + 1, ...
 * Returns the number of messages; *more as broker_pull reports it. */
static unsigned pull_checked(struct broker_session *s, size_t budget, uint64_t *next, bool *more)
{
    struct outq q;
    outq_init(&q);
    bool lost;
    size_t left;
    broker_pull(s, &q, budget, more, &lost, &left);
    cr_assert_not(lost);
    for (uint32_t i = 0; i < q.count; i++) {
        struct obuf *f = q.segs[(q.head + i) % q.cap].buf.b;
        const char *o = memmem(f->data + f->start, f->len - f->start, "\"offset\":", 9);
        cr_assert_not_null(o);
        cr_assert_eq(strtoull(o + 9, NULL, 10), *next, "offsets in order, none skipped");
        (*next)++;
    }
    unsigned n = q.count;
    outq_deinit(&q);
    return n;
}

/* A publish wakes exactly the subscribers without a wake on its way, also those left with a
 * backlog by a short pull (so a subscriber that stopped reading is noticed), and each pull finds
 * every message in order. Random subscribes (some with a replay), unsubscribes, publishes and
 * pulls with small budgets against that model: an entry the broker forgot to make wakeable again
 * after its pull would miss a wake here. */
Test(broker, a_publish_wakes_every_subscriber_without_a_wake_on_its_way)
{
    enum { N = 12 };
    struct broker *b = mk(1000);
    struct owner o[N] = {0};
    struct broker_session *s[N];
    bool subbed[N] = {0}, pending[N] = {0};
    uint64_t next[N] = {0}, head = 0;
    int wakes[N] = {0};
    for (int i = 0; i < N; i++)
        s[i] = broker_session_new(b, &o[i]);
    unsigned seed = 7;
    for (int step = 0; step < 20000; step++) {
        int i = rand_r(&seed) % N, op = rand_r(&seed) % 10;
        if (op < 4) {
            head = pub(b, "t", "\"x\"", NULL);
            for (int k = 0; k < N; k++) {
                if (subbed[k] && !pending[k]) {
                    wakes[k]++;
                    pending[k] = true;
                }
                cr_assert_eq(atomic_load(&o[k].wakes), wakes[k], "step %d session %d", step, k);
            }
        } else if (op < 8 && subbed[i]) {
            bool more;
            size_t budget = rand_r(&seed) % 2 ? 1 : 200;
            pull_checked(s[i], budget, &next[i], &more);
            pending[i] = false;
            cr_assert_eq(!more, next[i] == head + 1, "more exactly while messages wait");
        } else if (op == 8 && !subbed[i]) {
            struct broker_sub_opts opts = {.last = (unsigned)(rand_r(&seed) % 3)};
            struct broker_sub_result res;
            const char *why;
            cr_assert_eq(broker_subscribe(s[i], "t", 1, &opts, &res, &why), 0);
            subbed[i] = true;
            next[i] = head + 1 - res.replay;
        } else if (op == 9 && subbed[i]) {
            cr_assert_eq(broker_unsubscribe(s[i], "t", 1), 0);
            subbed[i] = false;
        }
    }
    for (int i = 0; i < N; i++) {
        bool more = subbed[i];
        while (more)
            pull_checked(s[i], 1 << 20, &next[i], &more);
        cr_assert(!subbed[i] || next[i] == head + 1);
        broker_session_free(s[i]);
        cr_assert_eq(atomic_load(&o[i].refs), 0);
    }
    broker_free(b);
}

Test(broker, sessions_are_numbered_in_the_order_they_are_made)
{
    struct broker *b = mk(10);
    struct owner o = {0};
    struct broker_session *s1 = broker_session_new(b, &o), *s2 = broker_session_new(b, &o);
    cr_assert_eq(broker_session_id(s1), 1);
    cr_assert_eq(broker_session_id(s2), 2);
    broker_session_free(s1);
    struct broker_session *s3 = broker_session_new(b, &o);
    cr_assert_eq(broker_session_id(s3), 3, "a number is never given twice");
    broker_session_free(s2);
    broker_session_free(s3);
    broker_free(b);
}

/* What a pull leaves in the topic's log is counted in *left (the frames' bytes), and a budget of 0
 * queues nothing but still reports it: the endpoint judges a slow consumer by queued + left. */
Test(broker, a_pull_reports_the_bytes_it_left_waiting)
{
    struct broker *b = mk(100);
    struct owner oa = {0}, ob = {0};
    struct broker_session *a = broker_session_new(b, &oa), *c = broker_session_new(b, &ob);
    cr_assert_eq(sub(a, "t", NULL), 0);
    cr_assert_eq(sub(c, "t", NULL), 0);
    pub(b, "t", "1", NULL);
    pub(b, "t", "\"a longer message\"", NULL);
    pub(b, "t", "[3,3,3]", NULL);
    struct outq q;
    outq_init(&q);
    bool more, lost;
    size_t left, size[3];
    cr_assert_gt(broker_pull(a, &q, 1 << 20, &more, &lost, &left), 0);
    cr_assert_eq(q.count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        struct obuf *f = q.segs[(q.head + i) % q.cap].buf.b;
        size[i] = f->len - f->start;
    }
    cr_assert(!more && left == 0);
    outq_deinit(&q);

    outq_init(&q);
    cr_assert_eq(broker_pull(c, &q, 0, &more, &lost, &left), 0, "budget 0 queues nothing");
    cr_assert(more && !lost && q.count == 0);
    cr_assert_eq(left, size[0] + size[1] + size[2]);
    cr_assert_eq(broker_pull(c, &q, 1, &more, &lost, &left), size[0], "at least one message");
    cr_assert(more);
    cr_assert_eq(left, size[1] + size[2]);
    cr_assert_eq(broker_pull(c, &q, 1 << 20, &more, &lost, &left), size[1] + size[2]);
    cr_assert(!more && left == 0);
    outq_deinit(&q);
    broker_session_free(a);
    broker_session_free(c);
    broker_free(b);
}

/* Wake order: a dispatch hook that records the owners in the order they come. */
static void *woken[1024];
static size_t n_woken;

static void record_dispatch(struct broker_batch *batch, void *ctx)
{
    (void)ctx;
    for (unsigned i = 0; i < batch->n; i++) {
        if (n_woken < sizeof(woken) / sizeof(woken[0]))
            woken[n_woken++] = batch->owners[i];
        o_unref(batch->owners[i]);
    }
    free(batch);
}

/* A large topic's subscribers are woken in the same order every wave, however they pulled in
 * between (with several workers the pulls of a wave interleave differently each time). */
Test(broker, a_large_topic_wakes_its_subscribers_in_one_order_whatever_order_they_pulled_in)
{
    enum { N = 300 };
    struct broker_config cfg = {.history_size = 64, .max_subscriptions = 8};
    struct broker_hooks hooks = {.ref = o_ref, .unref = o_unref, .dispatch = record_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    cr_assert_not_null(b);
    static struct owner o[N];
    struct broker_session *s[N];
    for (int i = 0; i < N; i++) {
        s[i] = broker_session_new(b, &o[i]);
        cr_assert_eq(sub(s[i], "big", NULL), 0);
    }
    void *first[N];
    unsigned seed = 11;
    for (int wave = 0; wave < 4; wave++) {
        n_woken = 0;
        pub(b, "big", "\"x\"", NULL);
        cr_assert_eq(n_woken, N, "wave %d woke every subscriber once", wave);
        if (wave == 0)
            memcpy(first, woken, sizeof(first));
        else
            cr_assert_arr_eq(woken, first, sizeof(first), "wave %d woke them in another order",
                             wave);
        /* Pull back to front, then in a shuffled order. */
        int order[N];
        for (int i = 0; i < N; i++)
            order[i] = N - 1 - i;
        for (int i = N - 1; wave > 0 && i > 0; i--) {
            int j = rand_r(&seed) % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < N; i++)
            free(pull_all(s[order[i]], NULL));
    }
    for (int i = 0; i < N; i++) {
        broker_session_free(s[i]);
        cr_assert_eq(atomic_load(&o[i].refs), 0);
    }
    broker_free(b);
}

/* A hold: the burst's wakes wait for broker_hold_end, which wakes each subscriber once for all
 * of it; outside a hold, and on other threads during one, a publish wakes at once. */
static void *publish_on_other_thread(void *b)
{
    struct broker_pub_result r;
    const char *why;
    /* No Criterion assertion off the test's thread: the result goes back to it. */
    return (void *)(intptr_t)broker_publish(b, "u", 1, "\"elsewhere\"", 11, &r, &why);
}

Test(broker, a_hold_wakes_each_subscriber_once_after_the_burst)
{
    struct broker *b = mk(100);
    struct owner oa = {0}, oc = {0};
    struct broker_session *a = broker_session_new(b, &oa), *c = broker_session_new(b, &oc);
    cr_assert_eq(sub(a, "t", NULL), 0);
    cr_assert_eq(sub(a, "u", NULL), 0);
    cr_assert_eq(sub(c, "u", NULL), 0);

    broker_hold_begin();
    pub(b, "t", "1", NULL);
    pub(b, "t", "2", NULL);
    pub(b, "u", "3", NULL);
    cr_assert_eq(atomic_load(&oa.wakes), 0, "no wake before the hold ends");
    cr_assert_eq(atomic_load(&oc.wakes), 0);
    cr_assert_eq(atomic_load(&oa.refs), 1, "the held wake keeps its owner");
    /* Another thread's publish to u finds a and c due a wake already (the held one): it adds
     * none, and the held wake brings its message too. */
    pthread_t th;
    void *rc;
    cr_assert_eq(pthread_create(&th, NULL, publish_on_other_thread, b), 0);
    pthread_join(th, &rc);
    cr_assert_eq((intptr_t)rc, 0);
    cr_assert_eq(atomic_load(&oc.wakes), 0);
    broker_hold_end();
    cr_assert_eq(atomic_load(&oa.wakes), 1, "one wake for the whole burst, across its topics");
    cr_assert_eq(atomic_load(&oc.wakes), 1);
    cr_assert_eq(atomic_load(&oa.refs), 0);
    cr_assert_eq(atomic_load(&oc.refs), 0);
    free(pull_all(a, NULL));
    free(pull_all(c, NULL));

    broker_hold_end(); /* nothing held: nothing happens */
    cr_assert_eq(atomic_load(&oa.wakes), 1);
    pub(b, "t", "4", NULL);
    cr_assert_eq(atomic_load(&oa.wakes), 2, "after the hold a publish wakes at once");

    broker_session_free(a);
    broker_session_free(c);
    broker_free(b);
}

static void *hold_and_wait(void *arg)
{
    pthread_barrier_t *bar = arg;
    broker_hold_begin();
    pthread_barrier_wait(&bar[0]); /* holding */
    pthread_barrier_wait(&bar[1]); /* the main thread published */
    broker_hold_end();
    return NULL;
}

Test(broker, a_hold_belongs_to_its_thread)
{
    struct broker *b = mk(100);
    struct owner oa = {0};
    struct broker_session *a = broker_session_new(b, &oa);
    cr_assert_eq(sub(a, "t", NULL), 0);
    pthread_barrier_t bar[2];
    pthread_barrier_init(&bar[0], NULL, 2);
    pthread_barrier_init(&bar[1], NULL, 2);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, hold_and_wait, bar), 0);
    pthread_barrier_wait(&bar[0]);
    pub(b, "t", "1", NULL);
    cr_assert_eq(atomic_load(&oa.wakes), 1, "woken at once while another thread holds");
    pthread_barrier_wait(&bar[1]);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&oa.wakes), 1);
    pthread_barrier_destroy(&bar[0]);
    pthread_barrier_destroy(&bar[1]);
    broker_session_free(a);
    broker_free(b);
}

/* A hold dispatches early once its publishes' frames reach 64 KiB, or a quarter of max_lag when
 * that is less: however long an event runs, its first subscribers are not kept waiting, nor
 * allowed to fall behind far enough to be slow consumers. */
static int publishes_until_woken(size_t max_lag)
{
    struct broker_config cfg = {.history_size = 1000, .max_subscriptions = 8, .max_lag = max_lag};
    struct broker_hooks hooks = {.ref = o_ref, .unref = o_unref, .dispatch = o_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    cr_assert_not_null(b);
    struct owner oa = {0};
    struct broker_session *a = broker_session_new(b, &oa);
    cr_assert_eq(sub(a, "t", NULL), 0);
    char data[1002];
    memset(data, 'x', sizeof(data));
    data[0] = data[sizeof(data) - 2] = '"';
    data[sizeof(data) - 1] = '\0';
    int n = 0;
    broker_hold_begin();
    while (atomic_load(&oa.wakes) == 0 && n < 1000) {
        pub(b, "t", data, NULL);
        n++;
    }
    broker_hold_end();
    cr_assert_eq(atomic_load(&oa.wakes), 1);
    broker_session_free(a);
    broker_free(b);
    return n;
}

Test(broker, a_hold_dispatches_early_past_its_bound)
{
    int n = publishes_until_woken(0); /* frames of about 1,040 bytes */
    cr_assert(n >= 60 && n <= 64, "woken after %d publishes of ~1 KiB, before the hold ended", n);
    n = publishes_until_woken(8192);
    cr_assert(n == 2, "a quarter of max_lag (2 KiB): woken after %d publishes", n);
}

/* A session freed during a hold: its held wake keeps the owner until the hold ends, and never
 * touches the freed session (ASan would report it). */
Test(broker, a_session_freed_during_a_hold_is_woken_once_then_let_go)
{
    struct broker *b = mk(100);
    struct owner oa = {0};
    struct broker_session *a = broker_session_new(b, &oa);
    cr_assert_eq(sub(a, "t", NULL), 0);
    broker_hold_begin();
    pub(b, "t", "1", NULL);
    broker_session_free(a);
    cr_assert_eq(atomic_load(&oa.refs), 1, "the held wake keeps the owner");
    pub(b, "t", "2", NULL);
    broker_hold_end();
    cr_assert_eq(atomic_load(&oa.wakes), 1);
    cr_assert_eq(atomic_load(&oa.refs), 0);
    broker_free(b);
}

/* Delivery counters: each pulling thread counts apart (broker_stats sums them), so the totals must
 * come out exact however many threads pull, also more threads than there are sets of counters. */
struct puller {
    struct broker_session *s;
    pthread_barrier_t *bar;
    size_t bytes;
};

static void *pull_on_own_thread(void *arg)
{
    struct puller *p = arg;
    pthread_barrier_wait(p->bar);
    struct outq q;
    outq_init(&q);
    bool more, lost;
    size_t left;
    p->bytes = broker_pull(p->s, &q, 1 << 20, &more, &lost, &left);
    outq_deinit(&q);
    return NULL;
}

Test(broker, deliveries_pulled_on_many_threads_are_all_counted)
{
    enum { THREADS = 12, MESSAGES = 50 };
    struct broker *b = mk(100);
    struct owner o[THREADS] = {0};
    struct puller p[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct puller){.s = broker_session_new(b, &o[i]), .bar = &bar};
        cr_assert_eq(sub(p[i].s, "t", NULL), 0);
    }
    for (int m = 0; m < MESSAGES; m++)
        pub(b, "t", m % 2 ? "\"odd\"" : "[1,2,3,4]", NULL);
    struct broker_stats before;
    broker_stats(b, &before);
    cr_assert_eq(before.delivered, 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, pull_on_own_thread, &p[i]), 0);
    size_t bytes = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_gt(p[i].bytes, 0);
        bytes += p[i].bytes;
    }
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_eq(st.delivered, (uint64_t)THREADS * MESSAGES);
    cr_assert_eq(st.delivered_bytes, (uint64_t)bytes);
    for (int i = 0; i < THREADS; i++)
        broker_session_free(p[i].s);
    pthread_barrier_destroy(&bar);
    broker_free(b);
}

/* A large topic's subscribers that pull the same messages share one buffer holding all their
 * frames (broker.c: take_run): one queued segment each, the same for all, the bytes those of the
 * frames in order. */
#define RUN_SUBS 40 /* past broker.c's RUN_MIN_SUBS */

static struct broker_session *run_subs[RUN_SUBS];
static struct owner run_owners[RUN_SUBS];

static void run_setup(struct broker *b, int deflate_first)
{
    for (int i = 0; i < RUN_SUBS; i++) {
        run_owners[i] = (struct owner){0};
        run_subs[i] = broker_session_new(b, &run_owners[i]);
        if (i == 0 && deflate_first)
            broker_session_set_compression(run_subs[i], true);
        cr_assert_eq(sub(run_subs[i], "wave", NULL), 0);
    }
}

static void run_teardown(struct broker *b)
{
    for (int i = 0; i < RUN_SUBS; i++)
        broker_session_free(run_subs[i]);
    broker_free(b);
}

/* Pulls s into q with `budget` and returns the bytes queued. */
static size_t pull_budget(struct broker_session *s, struct outq *q, size_t budget)
{
    bool more, lost;
    size_t left;
    outq_init(q);
    return broker_pull(s, q, budget, &more, &lost, &left);
}

static char *segs_to_lines(const struct outq *q)
{
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    for (uint32_t i = 0; i < q->count; i++) {
        struct obuf *f = q->segs[(q->head + i) % q->cap].buf.b;
        frames_to_lines((const uint8_t *)f->data + f->start, f->len - f->start, &out, &len, &cap);
    }
    return out;
}

Test(broker, a_large_topics_subscribers_share_one_buffer_for_the_same_messages)
{
    struct broker *b = mk(100);
    run_setup(b, 0);
    for (int m = 1; m <= 5; m++) {
        char d[16];
        snprintf(d, sizeof(d), "%d", m * 11);
        pub(b, "wave", d, NULL);
    }
    struct obuf *shared = NULL;
    size_t bytes0 = 0;
    for (int i = 0; i < RUN_SUBS; i++) {
        struct outq q;
        size_t bytes = pull_budget(run_subs[i], &q, 1 << 20);
        cr_assert_eq(q.count, 1, "subscriber %d: one segment for five messages", i);
        struct obuf *seg = q.segs[q.head].buf.b;
        if (i == 0) {
            shared = seg;
            bytes0 = bytes;
        }
        cr_assert_eq(seg, shared, "subscriber %d shares the buffer", i);
        cr_assert_eq(bytes, bytes0);
        cr_assert_eq(seg->len - seg->start, bytes);
        char *lines = segs_to_lines(&q);
        cr_assert_str_eq(lines, "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":11,\"offset\":1}\n"
                                "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":22,\"offset\":2}\n"
                                "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":33,\"offset\":3}\n"
                                "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":44,\"offset\":4}\n"
                                "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":55,\"offset\":5}\n");
        free(lines);
        outq_deinit(&q);
    }
    /* The next wave: a buffer of its own, from offset 6 on. */
    pub(b, "wave", "66", NULL);
    pub(b, "wave", "77", NULL);
    for (int i = 0; i < RUN_SUBS; i++) {
        char *lines = pull_all(run_subs[i], NULL);
        cr_assert_str_eq(lines, "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":66,\"offset\":6}\n"
                                "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":77,\"offset\":7}\n");
        free(lines);
    }
    struct broker_stats st;
    broker_stats(b, &st);
    cr_assert_eq(st.delivered, 7 * RUN_SUBS);
    run_teardown(b);
}

/* A subscriber whose budget stops it before the head takes the frames one by one and leaves the
 * shared buffer to the others; a single new message is queued as its own frame; a compressed
 * subscriber gets its own frames. All of them get every message, in order. */
Test(broker, a_short_budget_a_single_message_and_compression_take_frames_one_by_one)
{
    struct broker *b = mk(100);
    run_setup(b, 1);
    pub(b, "wave", "1", NULL);
    pub(b, "wave", "2", NULL);
    pub(b, "wave", "3", NULL);
    struct outq q;
    pull_budget(run_subs[1], &q, 1 << 20);
    cr_assert_eq(q.count, 1);
    /* Held, so that a buffer made later cannot take its address. */
    struct obuf *shared = obuf_ref(q.segs[q.head].buf.b);
    outq_deinit(&q);
    /* Subscriber 2 with room for about one message: frames 1, then 2 and 3 on the next pull. */
    size_t one = pull_budget(run_subs[2], &q, 1);
    cr_assert_eq(q.count, 1);
    cr_assert_neq(q.segs[q.head].buf.b, shared);
    cr_assert_lt(one, shared->len - shared->start);
    outq_deinit(&q);
    pull_budget(run_subs[3], &q, 1 << 20);
    cr_assert_eq(q.segs[q.head].buf.b, shared, "the others still share it");
    outq_deinit(&q);
    /* A budget of exactly two frames (all three are the same size) stops after two. */
    size_t frame = (shared->len - shared->start) / 3;
    cr_assert_eq(pull_budget(run_subs[4], &q, 2 * frame), 2 * frame);
    cr_assert_eq(q.count, 2);
    outq_deinit(&q);
    /* One byte short of three frames: all three, as one shared run. */
    cr_assert_eq(pull_budget(run_subs[5], &q, 3 * frame - 1), 3 * frame);
    cr_assert_eq(q.count, 1);
    cr_assert_eq(q.segs[q.head].buf.b, shared);
    outq_deinit(&q);
    char *lines = pull_all(run_subs[2], NULL);
    cr_assert_str_eq(lines, "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":2,\"offset\":2}\n"
                            "{\"type\":\"msg\",\"topic\":\"wave\",\"data\":3,\"offset\":3}\n");
    free(lines);
    /* Subscriber 2's pull from offset 2 to the head did not replace the wave's run. */
    pull_budget(run_subs[6], &q, 1 << 20);
    cr_assert_eq(q.count, 1);
    cr_assert_eq(q.segs[q.head].buf.b, shared, "the wave still shares the first buffer");
    outq_deinit(&q);
    /* The compressed subscriber: one segment per message (these are too short to compress). */
    pull_budget(run_subs[0], &q, 1 << 20);
    cr_assert_eq(q.count, 3);
    outq_deinit(&q);
    /* One message: its frame itself, as for any topic. */
    pub(b, "wave", "4", NULL);
    pull_budget(run_subs[1], &q, 1 << 20);
    cr_assert_eq(q.count, 1);
    struct obuf *f = q.segs[q.head].buf.b;
    cr_assert_eq(f->len - f->start,
                 2 + strlen("{\"type\":\"msg\",\"topic\":\"wave\",\"data\":4,\"offset\":4}"));
    outq_deinit(&q);
    obuf_unref(shared);
    run_teardown(b);
}

/* Few subscribers: frames are queued one by one, as they always were. */
Test(broker, a_small_topic_queues_each_frame_apart)
{
    struct broker *b = mk(100);
    struct owner o = {0};
    struct broker_session *s = broker_session_new(b, &o);
    cr_assert_eq(sub(s, "few", NULL), 0);
    pub(b, "few", "1", NULL);
    pub(b, "few", "2", NULL);
    struct outq q;
    pull_budget(s, &q, 1 << 20);
    cr_assert_eq(q.count, 2);
    outq_deinit(&q);
    broker_session_free(s);
    broker_free(b);
}

/* More than 8 KiB of messages (broker.c: RUN_MAX_BYTES) go frame by frame: a topic keeps at most
 * that much in its shared buffer. */
Test(broker, a_wave_past_the_shared_buffers_bound_goes_frame_by_frame)
{
    struct broker *b = mk(100);
    run_setup(b, 0);
    char data[1100];
    memset(data, 'x', sizeof(data));
    data[0] = '"';
    data[sizeof(data) - 2] = '"';
    data[sizeof(data) - 1] = '\0';
    for (int m = 0; m < 9; m++) /* 9 frames of about 1.1 KiB */
        pub(b, "wave", data, NULL);
    struct outq q;
    pull_budget(run_subs[0], &q, 1 << 20);
    cr_assert_eq(q.count, 9);
    outq_deinit(&q);
    run_teardown(b);
}
