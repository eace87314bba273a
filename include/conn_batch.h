/*
 * conn_batch.h - a worker's sends to many connections, made together in one system call.
 *
 * A worker that runs many connections in a row (the events of one epoll_wait, a broker wake batch:
 * one publish, hundreds of subscribers) has their sends made together through io_uring
 * (sendring.h) instead of one sendmsg each. While a batch is open on a worker, a WebSocket
 * connection's turn that is not at a deadline and ends with output queues that send in the batch
 * instead of making it, and returns with the connection still busy: no other thread runs it, and
 * events or wakes for it wait in `again` as usual (conn.h). conn_batch_flush makes every queued
 * send (two or more in one io_uring submission, a lone one with sendmsg) and finishes each turn:
 * what the socket did not take waits for EPOLLOUT, a failed socket is closed, and a turn with more
 * to do goes on with ordinary sends.
 *
 * Flushing runs other connections' turns, so it is only called where the caller runs none: a
 * worker between two events or two wakes.
 *
 * Thread safety: worker threads only; a batch belongs to the worker that created it, and at most
 * one is open per thread.
 */
#ifndef HERALD_CONN_BATCH_H
#define HERALD_CONN_BATCH_H

#include <stdbool.h>

struct conn;
struct conn_batch;

/* conn_batch_new - a batch for the calling worker; NULL (with *err) when the kernel has no
 * io_uring for it (the worker then sends one sendmsg at a time). */
struct conn_batch *conn_batch_new(int *err);
/* conn_batch_free - frees a batch with nothing queued. NULL is ignored. */
void conn_batch_free(struct conn_batch *b);
/* conn_batch_begin - opens `b` (NULL: no batching) on the calling worker. */
void conn_batch_begin(struct conn_batch *b);
/* conn_batch_full - whether the open batch cannot take another send (false with none open): the
 * caller should flush before running another connection, or its send will be an ordinary one. */
bool conn_batch_full(void);
/* conn_batch_flush - makes the sends the open batch holds and finishes those turns; the batch
 * stays open. `worker` is the caller's index. */
void conn_batch_flush(int worker);
/* conn_batch_end - flushes and closes the open batch. */
void conn_batch_end(int worker);

/* conn_batch_defer - conn.c's hook, by the thread running c at the end of a turn not at a
 * deadline: queues c's next send in the open batch. Returns true if it did (c stays busy until
 * the next conn_batch_flush or conn_batch_end),
 * false to send the ordinary way (no batch open, batch full, not a plain WebSocket turn). `more`:
 * the turn has more deliveries to pull after this send. */
bool conn_batch_defer(struct conn *c, bool more);

#endif
