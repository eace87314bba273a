/*
 * reclaim.h - deferred freeing of connections that other threads may still hold a pointer to.
 *
 * Why: a connection can be reached outside its owner's hands by a pointer taken before it closed:
 * an epoll event already returned to another worker (a wake-up re-arms the fd, so a second event
 * may be in flight), or the timeout sweep's list of expired connections. Such holders only keep
 * the pointer until the end of their current batch of events. So a closed connection is retired
 * here and freed only once every worker has finished the batch it was in when the connection was
 * retired (quiescent-state-based reclamation, with epoll_wait as the quiescent state).
 *
 * How: each worker has a sequence counter it increments just before epoll_wait and just after it
 * returns (odd: waiting; even: working). A retired item carries a snapshot of all counters and is
 * freed when every counter has moved on by 2 (a worker caught between returning from the kernel
 * and counting has surely finished that batch), or by 1 from an even value (it was working then,
 * and has since gone back to waiting). Workers wait with a timeout so that idle ones keep counting.
 * An item must no longer be reachable for new holders when it is retired: its fd closed (no new
 * epoll events), out of the wheel, out of every shared list.
 *
 * Threads: reclaim_enter/leave/retire/poll are called by the worker they name; the counters are
 * atomics read by all. Retired lists are per worker, so retiring takes no lock.
 */
#ifndef HERALD_RECLAIM_H
#define HERALD_RECLAIM_H

#include <stdatomic.h>
#include <stdint.h>

struct reclaim_item {
    struct reclaim_item *next;
    void (*free_cb)(struct reclaim_item *);
};

struct reclaim_batch; /* retired items sharing one snapshot */

struct reclaim_worker {
    _Alignas(64) atomic_uint_fast64_t seq; /* own cache line: written on every wake-up */
    struct reclaim_item *pending;          /* retired during the current batch */
    struct reclaim_batch *waiting;         /* snapshotted, oldest first */
    struct reclaim_batch *waiting_tail;
};

struct reclaim {
    int nworkers;
    struct reclaim_worker *workers;
};

/* reclaim_init - counters for n workers. Returns 0 or -ENOMEM. */
int reclaim_init(struct reclaim *r, int nworkers);
/* reclaim_deinit - frees everything still retired (call once no worker runs). */
void reclaim_deinit(struct reclaim *r);

/* reclaim_enter_wait / reclaim_leave_wait - worker `w` is about to call / has returned from
 * epoll_wait. */
void reclaim_enter_wait(struct reclaim *r, int w);
void reclaim_leave_wait(struct reclaim *r, int w);

/* reclaim_retire - hands an unreachable item to worker `w` for freeing later with free_cb. */
void reclaim_retire(struct reclaim *r, int w, struct reclaim_item *it,
                    void (*free_cb)(struct reclaim_item *));

/* reclaim_poll - at the end of a batch: snapshots what was retired in it and frees what every
 * worker has moved past. Returns how many items were freed. */
unsigned reclaim_poll(struct reclaim *r, int w);

#endif
