/*
 * stats.h - per-worker counters for /metrics.
 *
 * Each worker counts into its own cache line (no sharing, no contention); the metrics handler
 * sums them when scraped. Counters are relaxed atomics: exact at rest, approximate while moving,
 * which is all a scrape needs. A thread that is not a worker has no counters and counts nothing.
 */
#ifndef HERALD_STATS_H
#define HERALD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct worker_stats {
    _Alignas(64) atomic_uint_fast64_t events; /* epoll events and wakes handled */
    atomic_uint_fast64_t bytes_in;            /* read from clients */
    atomic_uint_fast64_t bytes_out;           /* written to clients */
    atomic_uint_fast64_t sends;               /* writes to client sockets that wrote bytes */
    atomic_uint_fast64_t ws_messages_in;      /* WebSocket messages received */
    atomic_uint_fast64_t http_requests;       /* HTTP requests answered */
    atomic_uint_fast64_t epoll_rearms;        /* EPOLL_CTL_MOD calls on connections */
    atomic_uint_fast64_t batched_sends;       /* sends made in an io_uring submission */
    atomic_uint_fast64_t batch_submissions;   /* io_uring submissions of two sends or more */
    atomic_uint_fast64_t fanout_batches;      /* wake batches served from the shared queue */
    /* A gauge, not a counter: the share of the worker's CPU other tasks took in the last window
     * (cpu_share.h), in thousandths; 0 when not measured. */
    atomic_uint_fast64_t cpu_others_permille;
};

/* The calling worker's counters (NULL outside workers). Set by the worker at start. */
extern __thread struct worker_stats *stats_local;

static inline void stats_add(atomic_uint_fast64_t *field, uint64_t n)
{
    atomic_fetch_add_explicit(field, n, memory_order_relaxed);
}

/* stats_count - adds n to the calling worker's counter `field` (a member name). */
#define STATS_COUNT(field, n)                                                                      \
    do {                                                                                           \
        if (stats_local)                                                                           \
            stats_add(&stats_local->field, (n));                                                   \
    } while (0)

#endif
