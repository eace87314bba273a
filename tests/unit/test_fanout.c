/* Unit tests for the shared fan-out queue: its tokens, and steering away from crowded workers.
 * Workers are played by the test on one thread; the eventfd is the real one. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "fanout.h"

static struct broker_batch *batch(unsigned tag)
{
    struct broker_batch *b = calloc(1, sizeof(*b));
    cr_assert_not_null(b);
    b->n = tag; /* only compared, never served */
    return b;
}

/* Whether a token is posted: the eventfd is readable, as the workers' epoll would see it. */
static bool posted(const struct fanout *f)
{
    struct pollfd p = {.fd = f->efd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* The next batch for `worker`, checked against `tag`, and freed. */
static void serves(struct fanout *f, int worker, unsigned tag)
{
    struct broker_batch *b = fanout_next(f, worker);
    cr_assert_not_null(b, "worker %d got nothing, wanted batch %u", worker, tag);
    cr_assert_eq(b->n, tag, "worker %d got batch %u, wanted %u", worker, b->n, tag);
    free(b);
}

static void drain(struct fanout *f)
{
    struct broker_batch *b;
    while ((b = fanout_close(f)))
        free(b);
    fanout_deinit(f);
}

Test(fanout, the_pushing_worker_serves_and_a_second_batch_wakes_another)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, true), 0);
    cr_assert_eq(fanout_push(&f, batch(1), 0), 0);
    cr_assert(fanout_holding(&f, 0), "the pusher takes the token itself");
    cr_assert_not(posted(&f), "nobody else is woken for one batch");
    cr_assert_eq(fanout_push(&f, batch(2), 0), 0);
    cr_assert(posted(&f), "a second batch is worth a second worker");
    fanout_on_ready(&f, 1);
    cr_assert(fanout_holding(&f, 1));
    cr_assert_not(posted(&f));
    serves(&f, 0, 1);
    serves(&f, 1, 2);
    cr_assert_null(fanout_next(&f, 0), "empty: the token goes back");
    cr_assert_null(fanout_next(&f, 1));
    cr_assert_not(fanout_holding(&f, 0));
    cr_assert_not(fanout_holding(&f, 1));
    /* Both tokens came back: the next push is served again. */
    cr_assert_eq(fanout_push(&f, batch(3), -1), 0);
    cr_assert(posted(&f), "off the workers, the token is posted");
    fanout_on_ready(&f, 0);
    serves(&f, 0, 3);
    drain(&f);
}

Test(fanout, no_more_tokens_than_batches_nor_than_workers)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, true), 0);
    for (unsigned i = 1; i <= 5; i++)
        cr_assert_eq(fanout_push(&f, batch(i), -1), 0);
    fanout_on_ready(&f, 0);
    fanout_on_ready(&f, 1);
    cr_assert_not(posted(&f), "two workers, two tokens, for five batches");
    serves(&f, 0, 1);
    serves(&f, 1, 2);
    serves(&f, 0, 3);
    serves(&f, 0, 4);
    serves(&f, 1, 5);
    cr_assert_null(fanout_next(&f, 0));
    cr_assert_null(fanout_next(&f, 1));
    drain(&f);
}

Test(fanout, a_holder_leaves_a_second_token_to_another_worker)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, true), 0);
    cr_assert_eq(fanout_push(&f, batch(1), -1), 0);
    cr_assert_eq(fanout_push(&f, batch(2), -1), 0);
    fanout_on_ready(&f, 0);
    fanout_on_ready(&f, 0); /* it saw the eventfd again before worker 1 did */
    cr_assert(fanout_holding(&f, 0));
    cr_assert(posted(&f), "the second token waits for worker 1");
    fanout_on_ready(&f, 1);
    cr_assert(fanout_holding(&f, 1));
    serves(&f, 0, 1);
    serves(&f, 1, 2);
    cr_assert_null(fanout_next(&f, 0));
    cr_assert_null(fanout_next(&f, 1));
    /* Both tokens came back: two batches get two again. */
    cr_assert_eq(fanout_push(&f, batch(3), -1), 0);
    cr_assert_eq(fanout_push(&f, batch(4), -1), 0);
    fanout_on_ready(&f, 1);
    fanout_on_ready(&f, 0);
    cr_assert(fanout_holding(&f, 1) && fanout_holding(&f, 0), "two batches, two tokens");
    serves(&f, 1, 3);
    serves(&f, 0, 4);
    drain(&f);
}

Test(fanout, a_crowded_worker_leaves_the_queue_to_a_free_one)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, true), 0);
    fanout_set_crowded(&f, 1, true);
    /* Worker 1 read the publish: it does not keep the token. */
    cr_assert_eq(fanout_push(&f, batch(1), 1), 0);
    cr_assert_not(fanout_holding(&f, 1));
    cr_assert(posted(&f));
    cr_assert_eq(fanout_push(&f, batch(2), 1), 0);
    /* One server only: the free worker; no token for the second batch. */
    fanout_on_ready(&f, 1); /* it saw the token first: passes it on */
    cr_assert_not(fanout_holding(&f, 1));
    cr_assert(posted(&f), "the token is there again for worker 0");
    fanout_on_ready(&f, 0);
    cr_assert(fanout_holding(&f, 0));
    cr_assert_not(posted(&f), "one token for one free worker");
    serves(&f, 0, 1);
    serves(&f, 0, 2);
    cr_assert_null(fanout_next(&f, 0));
    drain(&f);
}

Test(fanout, a_holder_that_becomes_crowded_hands_its_token_on)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, true), 0);
    cr_assert_eq(fanout_push(&f, batch(1), 1), 0);
    cr_assert_eq(fanout_push(&f, batch(2), 1), 0);
    cr_assert(fanout_holding(&f, 1));
    serves(&f, 1, 1);
    fanout_set_crowded(&f, 1, true);
    /* Worker 0 has the other token, posted for the second batch: worker 1's is dropped. */
    cr_assert_null(fanout_next(&f, 1));
    cr_assert_not(fanout_holding(&f, 1));
    fanout_on_ready(&f, 0);
    serves(&f, 0, 2);
    cr_assert_null(fanout_next(&f, 0));
    /* Alone with a token and work left, a crowded holder posts it for the free worker. */
    cr_assert_eq(fanout_push(&f, batch(3), 0), 0);
    cr_assert_eq(fanout_push(&f, batch(4), 0), 0);
    cr_assert(fanout_holding(&f, 0));
    cr_assert_not(posted(&f), "one free worker: one token");
    fanout_set_crowded(&f, 1, false);
    fanout_set_crowded(&f, 0, true);
    cr_assert_null(fanout_next(&f, 0));
    cr_assert(posted(&f));
    fanout_on_ready(&f, 1);
    serves(&f, 1, 3);
    serves(&f, 1, 4);
    drain(&f);
}

Test(fanout, when_every_worker_is_crowded_every_worker_serves)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, true), 0);
    fanout_set_crowded(&f, 0, true);
    fanout_set_crowded(&f, 1, true);
    cr_assert_eq(fanout_push(&f, batch(1), 1), 0);
    cr_assert(fanout_holding(&f, 1));
    cr_assert_eq(fanout_push(&f, batch(2), 1), 0);
    fanout_on_ready(&f, 0);
    cr_assert(fanout_holding(&f, 0));
    serves(&f, 1, 1);
    serves(&f, 0, 2);
    drain(&f);
}

Test(fanout, without_steering_a_crowded_worker_serves_too)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 2, false), 0);
    fanout_set_crowded(&f, 1, true);
    cr_assert_eq(fanout_push(&f, batch(1), 1), 0);
    cr_assert(fanout_holding(&f, 1));
    cr_assert_eq(fanout_push(&f, batch(2), 1), 0);
    cr_assert(posted(&f));
    fanout_on_ready(&f, 1); /* already holding: left for worker 0 */
    fanout_on_ready(&f, 0);
    cr_assert(fanout_holding(&f, 0), "the second token went to worker 0");
    serves(&f, 1, 1);
    serves(&f, 0, 2);
    drain(&f);
}

Test(fanout, once_closed_it_queues_nothing_and_returns_what_it_held)
{
    struct fanout f;
    cr_assert_eq(fanout_init(&f, 1, true), 0);
    cr_assert_eq(fanout_push(&f, batch(1), -1), 0);
    cr_assert_eq(fanout_push(&f, batch(2), -1), 0);
    struct broker_batch *b = fanout_close(&f);
    cr_assert(b && b->n == 1);
    free(b);
    struct broker_batch *late = batch(3);
    cr_assert_eq(fanout_push(&f, late, -1), -ESHUTDOWN, "the caller keeps it");
    free(late);
    b = fanout_close(&f);
    cr_assert(b && b->n == 2);
    free(b);
    cr_assert_null(fanout_close(&f));
    fanout_deinit(&f);
    fanout_deinit(&f);
}
