/*
 * fanout.h - the shared queue of wake batches, served by the workers whose CPUs are free.
 *
 * Why: a publish to a large topic wakes thousands of subscribers, in batches (broker.h). Queued
 * here, they are served by several workers at once. But workers are pinned, and one whose CPU
 * another process keeps busy takes its time from that process when it serves, while another
 * worker's CPU may idle: with a load generator on one of two CPUs, serving 10,000 subscribers
 * with both workers delivered less than with one. So when the workers' CPUs differ (cpu_share.h:
 * some crowded by other tasks, some free), only the free ones serve the queue; when all are
 * crowded, or none, all do.
 *
 * How: serving takes a token, counted on a semaphore eventfd that is level-triggered in the
 * shared epoll set. A worker holding a token serves FANOUT_CHUNK batches after each of its epoll
 * waits, which it makes without blocking while it holds one, and gives the token back when the
 * queue is empty. Pushing a batch adds a token while fewer are out than workers allowed to serve
 * and than batches queued: the pushing worker takes it itself when it may serve and holds none,
 * else it is posted, so an idle worker wakes only when there is work for it. A holder leaves
 * further counts to other workers. A post wakes whichever worker waits, which may be a crowded
 * one: a crowded worker that takes a token, or finds itself crowded while holding one, passes it
 * on: dropped if another token is out, else posted again for a free worker. Until a free worker
 * takes it, the crowded one finds it again after each epoll_wait; it yields its CPU each time,
 * so the wait costs the free worker's latency, not the crowding task's time.
 *
 * Threads: fanout_push from any thread (a worker names itself); fanout_on_ready, fanout_holding and
 * fanout_next from the worker they name; fanout_set_crowded by the worker itself, read by all
 * (relaxed: a stale verdict only misplaces a batch). One mutex guards the queue and the token
 * count.
 */
#ifndef HERALD_FANOUT_H
#define HERALD_FANOUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker.h"

/* Batches a token holder serves between two epoll waits: 1,024 subscribers at most, so its other
 * connections' events wait no longer than that. */
#define FANOUT_CHUNK 4

struct fanout_worker {
    _Alignas(64) atomic_bool crowded; /* written by the worker, read by all */
    bool holding;                     /* the worker's own: it holds a token */
};

struct fanout {
    pthread_mutex_t lock;
    struct broker_batch **q; /* ring of pending batches */
    size_t head, n, cap;
    unsigned tokens; /* posted on the eventfd or held by a worker */
    bool closed;     /* shutting down: no more batches are queued */
    int efd;         /* semaphore eventfd: one count per posted token */
    int nworkers;
    bool steer;              /* leave the queue to free workers (false: everyone serves) */
    struct fanout_worker *w; /* one per worker */
};

/* fanout_init - an empty queue for nworkers workers; the caller adds f->efd to its epoll set
 * (EPOLLIN, level-triggered). steer: whether crowded workers leave the queue to free ones.
 * Returns 0 or -errno. */
int fanout_init(struct fanout *f, int nworkers, bool steer);
/* fanout_deinit - frees the queue, which must be empty (fanout_close), and closes the eventfd.
 * Does nothing to a zeroed struct (a server that failed before fanout_init). */
void fanout_deinit(struct fanout *f);

/* fanout_push - queues `b`, and a token if one more worker should serve: taken by the pushing
 * `worker` when it may serve and holds none (it serves after its current events), else posted.
 * `worker` is -1 off the workers. Returns 0, or -ESHUTDOWN when closed or -ENOMEM: then the caller
 * still owns the batch. */
int fanout_push(struct fanout *f, struct broker_batch *b, int worker);

/* fanout_on_ready - `worker` saw the eventfd readable: unless it holds a token already, it takes
 * one if one is still there (then fanout_holding is true), or passes it on if its CPU is crowded.
 * On the worker named. */
void fanout_on_ready(struct fanout *f, int worker);
/* fanout_holding - whether `worker` holds a token: it must call fanout_next after each wait and
 * not block in epoll_wait. */
bool fanout_holding(const struct fanout *f, int worker);
/* fanout_next - the next batch for the token holder `worker` (the caller serves and frees it), or
 * NULL when the queue is empty or the worker has become crowded: its token is given back. */
struct broker_batch *fanout_next(struct fanout *f, int worker);

/* fanout_set_crowded - the worker's own CPU verdict (cpu_share.h). */
void fanout_set_crowded(struct fanout *f, int worker, bool crowded);

/* fanout_close - no more batches are queued; returns those still queued, one per call, then NULL
 * (for the caller to drop). Tokens workers still hold do not matter any more. On the thread that
 * stops the server, after every worker has stopped. */
struct broker_batch *fanout_close(struct fanout *f);

#endif
