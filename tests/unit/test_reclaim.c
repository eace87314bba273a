/* Unit tests for deferred reclamation: an item is freed only after every worker left its batch. */
#include <criterion/criterion.h>

#include "reclaim.h"

static int freed;

static void count_free(struct reclaim_item *it)
{
    (void)it;
    freed++;
}

Test(reclaim, waits_for_a_working_worker_to_finish_its_batch)
{
    struct reclaim r;
    cr_assert_eq(reclaim_init(&r, 2), 0);
    freed = 0;
    /* Both workers are working (each returned from epoll_wait). */
    for (int w = 0; w < 2; w++) {
        reclaim_enter_wait(&r, w);
        reclaim_leave_wait(&r, w);
    }
    struct reclaim_item it;
    reclaim_retire(&r, 0, &it, count_free);
    cr_assert_eq(reclaim_poll(&r, 0), 0, "worker 1 may still hold it");
    reclaim_enter_wait(&r, 0);
    cr_assert_eq(reclaim_poll(&r, 0), 0);
    reclaim_enter_wait(&r, 1); /* worker 1 finished its batch */
    cr_assert_eq(reclaim_poll(&r, 0), 1);
    cr_assert_eq(freed, 1);
    reclaim_deinit(&r);
}

Test(reclaim, a_waiting_worker_must_count_twice)
{
    struct reclaim r;
    cr_assert_eq(reclaim_init(&r, 2), 0);
    freed = 0;
    reclaim_enter_wait(&r, 0);
    reclaim_leave_wait(&r, 0);
    reclaim_enter_wait(&r, 1); /* worker 1 seems to wait: it may have just returned with it */
    struct reclaim_item it;
    reclaim_retire(&r, 0, &it, count_free);
    cr_assert_eq(reclaim_poll(&r, 0), 0); /* end of worker 0's batch: the snapshot */
    reclaim_enter_wait(&r, 0);
    reclaim_leave_wait(&r, 1); /* it returns from epoll_wait ... */
    cr_assert_eq(reclaim_poll(&r, 0), 0, "... and may be processing the item now");
    reclaim_enter_wait(&r, 1); /* done with that batch */
    cr_assert_eq(reclaim_poll(&r, 0), 1);
    reclaim_deinit(&r);
}

Test(reclaim, deinit_frees_what_is_left)
{
    struct reclaim r;
    cr_assert_eq(reclaim_init(&r, 3), 0);
    freed = 0;
    struct reclaim_item a, b, c;
    reclaim_retire(&r, 0, &a, count_free);
    reclaim_poll(&r, 0); /* a waits in a snapshotted batch */
    reclaim_retire(&r, 1, &b, count_free);
    reclaim_retire(&r, 1, &c, count_free); /* b and c still pending */
    reclaim_deinit(&r);
    cr_assert_eq(freed, 3);
}
