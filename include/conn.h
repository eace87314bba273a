/*
 * conn.h - one client connection: reading into a dmsg, the HTTP/1.1 request cycle, the outbound
 * queue, and how a connection's memory is reclaimed safely.
 *
 * Ownership and threads (the rule every other module relies on):
 *  - A connection's fd is registered in the shared epoll with EPOLLONESHOT. The worker that
 *    receives its event owns the connection until it re-arms the fd (conn_on_event's last action)
 *    or frees it; no other thread touches the connection's fields meanwhile, because the kernel
 *    delivers no second event for a disarmed fd. After re-arming, the worker does not touch the
 *    connection again: it may already be running on another worker.
 *  - The kernel orders the re-arming thread's epoll_ctl before the next owner's epoll_wait, but
 *    the C memory model (and ThreadSanitizer) cannot see that edge, so ownership also passes
 *    through `handoff`: a release store just before every (re-)arm and an acquire load at the
 *    start of every event. On x86 both are plain moves.
 *  - The timeout sweep (twheel_expire, on whichever worker took the timer event) reaches
 *    connections only through the wheel, under the wheel's mutex. It never frees one:
 * conn_expire_cb sets the atomic `expired` flag and calls shutdown(fd, SHUT_RD), which makes the fd
 * readable (EPOLLIN|EPOLLRDHUP are always in the armed set), so the owning worker meets the flag at
 * its next event and closes the connection itself.
 *  - A connection is freed only by its owner, and only after twheel_remove (same mutex), so from
 *    that point no thread can reach it; the fd is closed after that too, so the sweep can never
 *    shut down a descriptor number that was reused by a newer connection.
 *  - At shutdown, once every worker has been joined, the main thread drains the wheel (every live
 *    connection is in it, swept or not) and frees each with conn_destroy.
 *
 * Memory per connection is bounded: the input dmsg by the head limit plus one read, the outbound
 * queue by OUT_HIGH_WATER (the connection stops reading and parsing pipelined requests while more
 * is queued), request bodies are discarded as they arrive and capped by --max-body.
 */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dmsg.h"
#include "http_chunked.h"
#include "http_handler.h"
#include "http_parse.h"
#include "outq.h"
#include "twheel.h"

/* Queued response bytes above which a connection stops reading and parsing new requests. */
#define OUT_HIGH_WATER (256 * 1024)
/* Seconds a connection lingers after an error response, draining input so the response is not
 * destroyed by a reset. */
#define LINGER_SECONDS 2

/* What a connection needs from the server; read-only after start, shared by all workers. */
struct conn_env {
    const struct herald_config *cfg;
    struct http_ctx http;
    struct http_limits limits;
    struct twheel *wheel;
    int epfd;
    atomic_uint *nconns; /* live connections, for --max-connections */
};

enum conn_state { CONN_HEAD, CONN_BODY, CONN_LINGER };

struct conn {
    struct twheel_entry tw; /* first member: the wheel's entry pointer is the connection's */
    const struct conn_env *env;
    int fd;
    uint8_t state;         /* enum conn_state */
    uint8_t peer_eof;      /* a read returned 0: the peer sends nothing more */
    uint8_t close_after;   /* close once the queued output is sent */
    uint8_t linger;        /* ...after lingering: an error reply may leave unread input */
    uint8_t in_request;    /* bytes of a request have arrived and its response is not queued yet */
    uint8_t keep_alive;    /* the current request keeps the connection open */
    uint8_t chunked;       /* the current body is chunked */
    atomic_bool expired;   /* set by the timeout sweep (the only field another thread writes) */
    atomic_uint handoff;   /* release before re-arming, acquire on the next event (see below) */
    uint64_t head_started; /* second at which the current request's first byte arrived */
    uint64_t body_left;    /* Content-Length bytes still to discard */
    uint64_t body_seen;    /* chunked body bytes seen, against --max-body */
    struct http_chunked chunk;
    struct dmsg in;
    struct outq out;
    struct http_parser parser;
    struct http_request req;
};

/*
 * conn_start - creates the connection for the accepted, non-blocking socket `fd`, puts it in the
 * wheel and registers it in the epoll set. From the moment of registration another worker may
 * own it, so the caller must not use the returned pointer for anything but a NULL check.
 * Returns non-NULL on success; NULL on failure (fd closed, nothing leaked).
 */
struct conn *conn_start(const struct conn_env *env, int fd);

/* conn_on_event - handles the epoll events of a connection the calling worker now owns; ends by
 * re-arming or freeing it. */
void conn_on_event(struct conn *c, uint32_t events);

/* conn_expire_cb - the wheel's expiry callback (see the rules above); `arg` is unused. */
void conn_expire_cb(struct twheel_entry *e, void *arg);

/* conn_destroy - closes and frees a connection already out of the wheel and the epoll set's
 * reach (shutdown only). */
void conn_destroy(struct conn *c);

#endif
