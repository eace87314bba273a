/*
 * server.h - the listening socket, the shared epoll set, the worker threads, the timeout timer and
 * shutdown.
 *
 * Design (from the seed, made safe): one worker per CPU the process may use, each pinned to its
 * CPU, the calling thread being one of them; all block on one epoll set. Client fds are registered
 * with EPOLLONESHOT (see conn.h). The listening socket is non-blocking and also one-shot: the
 * worker that takes it accepts until EAGAIN (or a batch), then re-arms it, so no thread can block
 * in accept and accepts spread over workers. A timerfd (one-shot, re-armed after each sweep) drives
 * the timeout sweep once a second. Shutdown is a pipe registered level-triggered: once written,
 * every worker sees it at its next wake-up and leaves its loop. Stop signals never run a handler:
 * they stay blocked and arrive through a signalfd in the same epoll set (server_stop_on_signals).
 */
#ifndef HERALD_SERVER_H
#define HERALD_SERVER_H

#include <signal.h>

#include "config.h"

struct server;

/* server_new - opens the document root, binds and listens, creates the epoll set, timer and
 * shutdown pipe. `cfg` must outlive the server. Returns 0 and *out, or -errno (message logged). */
int server_new(struct server **out, const struct herald_config *cfg);

/* server_port - the bound TCP port (useful with port 0). */
int server_port(const struct server *srv);

/* server_threads - how many workers server_run will use. */
int server_threads(const struct server *srv);

/* server_run - starts the workers and runs one on the calling thread until server_stop; then joins
 * them and closes every connection. Returns 0, or -errno if threads could not be started. */
int server_run(struct server *srv);

/* server_stop_on_signals - makes the signals of `set` (SIGINT, SIGTERM) stop the server. Blocks
 * them in the calling thread, which must be the one that calls server_run, before server_run
 * starts the workers (they inherit its mask), and watches them through a signalfd in the shared
 * epoll set: a worker reads the signal and calls server_stop. No asynchronous handler runs, so
 * nothing depends on which thread the kernel picks or on what that thread was doing (a sanitizer
 * runtime defers handlers, and lost a stop that way). Returns 0 or -errno. */
int server_stop_on_signals(struct server *srv, const sigset_t *set);

/* server_stop - asks the workers to stop. Async-signal-safe: only write(2) on the shutdown pipe. */
void server_stop(struct server *srv);

/* server_free - frees everything; call after server_run returned (or instead of it). */
void server_free(struct server *srv);

#endif
