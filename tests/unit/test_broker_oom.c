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

Test(broker_oom, a_wake_lost_to_a_failed_allocation_comes_with_the_next_publish)
{
    struct broker_config cfg = {.history_size = 100, .max_subscriptions = 16};
    struct broker_hooks hooks = {.ref = nop, .unref = nop, .dispatch = on_dispatch};
    struct broker *b = broker_new(&cfg, &hooks);
    struct broker_session *s = broker_session_new(b, (void *)0x1);
    struct broker_sub_result res;
    const char *why;
    cr_assert_eq(broker_subscribe(s, "t", 1, NULL, &res, &why), 0);
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
