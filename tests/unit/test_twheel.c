/* Unit tests for the deadline wheel. */
#include <criterion/criterion.h>

#include "twheel.h"

struct item {
    struct twheel_entry e; /* first member: the entry's address is the item's */
    int expired;
};

static int on_expire(struct twheel_entry *e, void *arg)
{
    ((struct item *)e)->expired++;
    (*(int *)arg)++;
    return 0;
}

static int refuse(struct twheel_entry *e, void *arg)
{
    (void)e;
    (*(int *)arg)++;
    return -1;
}

Test(twheel, an_entry_the_callback_refuses_comes_up_again)
{
    struct twheel w;
    twheel_init(&w, 1000);
    struct item a = {0};
    twheel_entry_init(&a.e);
    twheel_set(&w, &a.e, 2000);
    int calls = 0;
    cr_assert_eq(twheel_expire(&w, 2000, refuse, &calls), 0);
    cr_assert_eq(calls, 1);
    cr_assert_eq(twheel_expire(&w, 3000, on_expire, &calls), 1, "retried at the next sweep");
    cr_assert_eq(a.expired, 1);
    twheel_remove(&w, &a.e);
    twheel_deinit(&w);
}

Test(twheel, expires_only_due_entries_in_any_order_of_setting)
{
    struct twheel w;
    cr_assert_eq(twheel_init(&w, 1000000), 0);
    struct item it[5] = {0};
    uint64_t deadlines[5] = {1005000, 1002000, 1100000, 1002700, 1003000};
    for (int i = 0; i < 5; i++) {
        twheel_entry_init(&it[i].e);
        twheel_set(&w, &it[i].e, deadlines[i]);
    }
    int calls = 0;
    cr_assert_eq(twheel_expire(&w, 1001000, on_expire, &calls), 0);
    cr_assert_eq(twheel_expire(&w, 1002000, on_expire, &calls), 1);
    cr_assert(it[1].expired && !it[3].expired && !it[0].expired);
    /* Later in the same second: the slot is visited again, and only what is due goes. */
    cr_assert_eq(twheel_expire(&w, 1002699, on_expire, &calls), 0);
    cr_assert_eq(twheel_expire(&w, 1002700, on_expire, &calls), 1);
    cr_assert(it[3].expired);
    /* A jump over several seconds sweeps everything due in between. */
    cr_assert_eq(twheel_expire(&w, 1010000, on_expire, &calls), 2);
    cr_assert_eq(it[2].expired, 0);
    /* 1100 s is more than a turn of the wheel ahead: it survives every pass until it is due. */
    cr_assert_eq(twheel_expire(&w, 1099999, on_expire, &calls), 0);
    cr_assert_eq(twheel_expire(&w, 1100000, on_expire, &calls), 1);
    cr_assert_eq(calls, 5);
    /* Expired entries stay reachable for shutdown until removed. */
    cr_assert_eq(w.count, 5);
    int drained = 0;
    while (twheel_drain(&w))
        drained++;
    cr_assert_eq(drained, 5);
    twheel_deinit(&w);
}

Test(twheel, moving_and_removing)
{
    struct twheel w;
    twheel_init(&w, 1000);
    struct item a = {0}, b = {0};
    twheel_entry_init(&a.e);
    twheel_entry_init(&b.e);
    twheel_set(&w, &a.e, 5000);
    twheel_set(&w, &b.e, 5000);
    twheel_set(&w, &a.e, 9000); /* activity pushes the deadline forward */
    twheel_remove(&w, &b.e);
    twheel_remove(&w, &b.e); /* removing twice is harmless */
    int calls = 0;
    cr_assert_eq(twheel_expire(&w, 8999, on_expire, &calls), 0);
    cr_assert_eq(twheel_expire(&w, 9000, on_expire, &calls), 1);
    cr_assert_eq(a.expired, 1);
    cr_assert_eq(b.expired, 0);
    /* A deadline in the past is expired by the next sweep, not lost behind the hand. */
    twheel_set(&w, &b.e, 3000);
    cr_assert_eq(twheel_expire(&w, 10000, on_expire, &calls), 1);
    cr_assert_eq(w.count, 2);
    twheel_remove(&w, &a.e);
    twheel_remove(&w, &b.e);
    cr_assert_eq(w.count, 0);
    cr_assert_null(twheel_drain(&w));
    twheel_deinit(&w);
}
