/*
 * twheel.h - connection deadlines, shared by every worker and swept by a timerfd.
 *
 * The seed keeps connections in one list ordered by last activity and sweeps it from the oldest
 * end. Herald needs several kinds of deadline (idle, header completion, lingering close, later
 * WebSocket ping and pong), which one ordered list cannot hold without sorting, so the list is
 * split into a wheel of one-second slots: each slot is such a list, and the sweep walks the slots
 * whose second has come, oldest first. Deadlines are in milliseconds, so a timeout is never cut
 * short by rounding; the sweep runs once a second, so an entry expires at most about a second
 * after its deadline. Setting a deadline is O(1); a sweep costs the entries in the slots it
 * visits.
 *
 * Concurrency: one mutex guards every list and the `in_wheel` state of each entry. An entry's
 * deadline is written only by the thread that owns the connection, under the mutex. The sweep
 * moves expired entries to an `expired` list (still inside the wheel) and calls the expiry
 * callback under the mutex, so an entry reached by the sweep is always one that no thread has freed
 * yet: a connection is freed only after twheel_remove, which takes the same mutex.
 */
#ifndef HERALD_TWHEEL_H
#define HERALD_TWHEEL_H

#include <pthread.h>
#include <stdint.h>

#define TWHEEL_SLOTS 64

struct twheel_entry {
    struct twheel_entry *prev, *next;
    uint64_t deadline; /* milliseconds on the wheel's clock */
    uint8_t where;     /* 0 nowhere, 1 in a slot, 2 on the expired list (guarded by the mutex) */
};

struct twheel {
    pthread_mutex_t lock;
    struct twheel_entry slots[TWHEEL_SLOTS]; /* list heads */
    struct twheel_entry expired;             /* list head */
    uint64_t swept;                          /* every deadline before (swept + 1) s has expired */
    uint64_t count;                          /* entries in slots or expired */
};

/* twheel_init - an empty wheel whose sweep starts at `now` (ms). Returns 0 or -errno. */
int twheel_init(struct twheel *w, uint64_t now);

/* twheel_deinit - destroys the mutex; entries still inside are forgotten, not freed. */
void twheel_deinit(struct twheel *w);

/* twheel_entry_init - an entry that is in no wheel. */
void twheel_entry_init(struct twheel_entry *e);

/* twheel_set - places `e` (inserting or moving it, also off the expired list) to expire at
 * `deadline` (ms). Called by the thread that runs the entry's connection. */
void twheel_set(struct twheel *w, struct twheel_entry *e, uint64_t deadline);

/* twheel_remove - takes `e` out of the wheel (a no-op if it is not in). After it returns the sweep
 * can no longer reach `e`, so its memory may be freed. */
void twheel_remove(struct twheel *w, struct twheel_entry *e);

/* twheel_expire - moves every entry whose deadline is <= now (ms) to the expired list and calls
 * `cb(e, arg)` for each, with the wheel's mutex held: cb must be short and must not call back into
 * the wheel. When cb returns non-zero (it could not take the entry), the entry stays in the wheel
 * and comes up again at the next sweep. Returns how many expired. Called by the one thread that
 * took the timer event. */
unsigned twheel_expire(struct twheel *w, uint64_t now, int (*cb)(struct twheel_entry *, void *),
                       void *arg);

/* twheel_drain - removes and returns one entry (from a slot or the expired list), or NULL when the
 * wheel is empty. For shutdown, after every worker has stopped. */
struct twheel_entry *twheel_drain(struct twheel *w);

/* twheel_now - milliseconds on the (coarse) monotonic clock, the wheel's clock. */
uint64_t twheel_now(void);

#endif
