/*
 * test_broker_oom.c - the broker's wakes when memory runs out: a publish that cannot allocate what
 * it needs to wake a subscriber must not leave that subscriber unwakeable, because the next
 * publish is what is promised to wake it (broker.h). malloc is wrapped so that chosen sizes fail.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "outq.h"
#include "../../src/broker_internal.h" /* struct slot: the size of the ring's allocation */

#include "malloc_fail.h"

static int dispatched; /* owners handed to the dispatch hook */

static void nop(void *owner)
{
    (void)owner;
}

static void on_dispatch(struct broker_batch *batch, void *ctx)
{
    (void)ctx;
    dispatched += (int)batch->n;
    free(batch);
}

/* Pulls what s has; returns the messages queued. */
static size_t pull(struct broker_session *s)
{
    struct outq q;
    outq_init(&q);
    bool more, lost;
    size_t left;
    broker_pull(s, &q, 1 << 20, &more, &lost, &left);
    size_t n = q.count;
    outq_deinit(&q);
    return n;
}

/* A broker (max_lag as given) with one session subscribed to "t", in *s. */
static struct broker *with_subscriber(size_t max_lag, struct broker_session **s)
{
    struct broker_config cfg = {.history_size = 100, .max_subscriptions = 16, .max_lag = max_lag};
    struct broker_hooks hooks = {.ref = nop, .unref = nop, .dispatch = on_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    *s = broker_session_new(b, (void *)0x1);
    struct broker_sub_result res;
    const char *why;
    cr_assert_eq(broker_subscribe(*s, "t", 1, NULL, &res, &why), 0);
    return b;
}

Test(broker_oom, a_wake_lost_to_a_failed_allocation_comes_with_the_next_publish)
{
    struct broker_session *s;
    struct broker *b = with_subscriber(0, &s);
    const char *why;
    struct broker_pub_result pr;

    /* The first publish runs out of memory for its wake batch: nobody is woken. */
    fail_size = sizeof(struct broker_batch);
    cr_assert_eq(broker_publish(b, "t", 1, "1", 1, &pr, &why), 0);
    fail_size = 0;
    cr_assert_eq(dispatched, 0);

    /* The next one must wake the subscriber, who then gets both messages. */
    cr_assert_eq(broker_publish(b, "t", 1, "2", 1, &pr, &why), 0);
    cr_assert_eq(dispatched, 1, "the subscriber was not woken after the failed wake");
    cr_assert_eq(pull(s), 2);

    /* And the wakes go on as usual afterwards. */
    cr_assert_eq(broker_publish(b, "t", 1, "3", 1, &pr, &why), 0);
    cr_assert_eq(dispatched, 2);
    cr_assert_eq(pull(s), 1);
    broker_session_free(s);
    broker_free(b);
}

/* The same within a hold (broker_hold_begin): the failed wake is made by the next publish of the
 * burst, held with it and dispatched once at the end. */
Test(broker_oom, a_wake_lost_in_a_hold_comes_with_the_next_publish_of_the_burst)
{
    struct broker_session *s;
    struct broker *b = with_subscriber(0, &s);
    const char *why;
    struct broker_pub_result pr;
    broker_hold_begin();
    fail_size = sizeof(struct broker_batch);
    cr_assert_eq(broker_publish(b, "t", 1, "1", 1, &pr, &why), 0);
    fail_size = 0;
    cr_assert_eq(broker_publish(b, "t", 1, "2", 1, &pr, &why), 0);
    cr_assert_eq(dispatched, 0, "held until the end");
    broker_hold_end();
    cr_assert_eq(dispatched, 1, "the subscriber was not woken after the failed wake");
    cr_assert_eq(pull(s), 2);
    broker_session_free(s);
    broker_free(b);
}

/* The ring grows for a subscriber that still needs its oldest message (broker.h); when that
 * allocation fails the oldest gives way after all, and the publish goes through: one lagging
 * subscriber must not make every publisher to its topic fail. (It did: ENOMEM, not published.) */
Test(broker_oom, a_ring_that_cannot_grow_drops_its_oldest_instead_of_failing_the_publish)
{
    struct broker_session *s;
    struct broker *b = with_subscriber(1 << 20, &s);
    const char *why;
    struct broker_pub_result pr;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(broker_publish(b, "t", 1, "1", 1, &pr, &why), 0);
    /* The 101st needs 200 slots: that allocation fails. */
    fail_size = 200 * sizeof(struct slot);
    int rc = broker_publish(b, "t", 1, "2", 1, &pr, &why);
    fail_size = 0;
    cr_assert_eq(rc, 0, "the publish failed: %s", rc ? why : "");
    cr_assert_eq(pr.offset, 101);
    /* The subscriber lost message 1 and is told so (its connection closes it as slow). */
    struct outq q;
    outq_init(&q);
    bool more, lost;
    size_t left;
    broker_pull(s, &q, 1 << 20, &more, &lost, &left);
    cr_assert(lost);
    cr_assert_eq(q.count, 100, "2..101 delivered");
    outq_deinit(&q);
    broker_session_free(s);
    broker_free(b);
}

/* A wildcard subscription that cannot follow a matching topic (its entry cannot be allocated),
 * whether the topic exists when it subscribes or comes later, misses that topic's messages: its
 * pulls say so (lost: the connection closes it, 4008, and the client resubscribes), instead of
 * staying silent for ever. */
Test(broker_oom, a_wildcard_that_cannot_follow_a_topic_is_told_it_lost_messages)
{
    struct broker_session *s;
    struct broker *b = with_subscriber(0, &s); /* on "t" */
    struct broker_session *w = broker_session_new(b, (void *)0x2);
    struct broker_sub_result res;
    struct broker_pub_result pr;
    const char *why;
    cr_assert_eq(broker_subscribe(w, "w.*", 3, NULL, &res, &why), 0);
    fail_size = sizeof(struct entry); /* the wildcard's entry for w.new */
    cr_assert_eq(broker_publish(b, "w.new", 5, "1", 1, &pr, &why), 0);
    fail_size = 0;
    struct outq q;
    outq_init(&q);
    bool more, lost;
    size_t left;
    broker_pull(w, &q, 1 << 20, &more, &lost, &left);
    cr_assert(lost, "w.new's message never comes and nobody says so");
    outq_deinit(&q);
    broker_session_free(w);

    /* The same when the topic exists before the wildcard. */
    w = broker_session_new(b, (void *)0x3);
    fail_size = sizeof(struct entry);
    cr_assert_eq(broker_subscribe(w, "w.>", 3, NULL, &res, &why), 0);
    fail_size = 0;
    outq_init(&q);
    broker_pull(w, &q, 1 << 20, &more, &lost, &left);
    cr_assert(lost);
    outq_deinit(&q);
    broker_session_free(w);
    broker_session_free(s);
    broker_free(b);
}
