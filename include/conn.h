/*
 * conn.h - one client connection: reading into a dmsg, the HTTP/1.1 request cycle, the outbound
 * queue, and how threads share a connection and reclaim its memory safely.
 *
 * Ownership (the rule every other module relies on):
 *  - A connection's fd is in the shared epoll set, one-shot (an upgraded WebSocket connection
 *    edge-triggered between messages, as explained below). At most one thread at a time runs a
 *    connection: the one that set `busy` under the connection's mutex. A worker that
 *    receives an event, or another thread that wakes the connection (conn_wake: the timeout
 *    sweep, the broker's fan-out), tries to set `busy`; if another thread already runs it, the
 *    newcomer only records its events or wake reasons and sets `again`, and the running thread
 *    loops once more before it lets go. Letting go (re-arming the fd with EPOLL_CTL_MOD when the
 *    interest changed, and clearing `busy`) happens under the mutex, and nothing is touched
 *    afterwards.
 *  - So `busy`, not EPOLLONESHOT, is what keeps a connection on one thread: a wake takes the
 *    connection over while its fd stays armed, and an event that fires meanwhile finds `busy` set
 *    (and adds `again`) or `closed` set (and drops it). That is why an upgraded WebSocket
 *    connection may stay armed edge-triggered (EPOLLET without EPOLLONESHOT) between messages
 *    and save the EPOLL_CTL_MOD per event that one-shot costs (--ws-oneshot keeps one-shot):
 *    events that reach a second worker while it runs are folded into the running thread's loop.
 *    It is edge-triggered only while it wants input and its last read emptied the socket; with
 *    input left behind or under back-pressure it is one-shot and level-triggered (see interest()).
 *  - So a pointer to a connection may outlive its close for the rest of some worker's batch. A
 *    closed connection (closed flag set under the mutex, out of the wheel, fd closed so no new
 *    events) is therefore not freed but retired to reclaim.h, which frees it once every worker has
 *    finished the batch it was in.
 *  - The wheel's mutex and the connection's are never held together by the owner; the sweep takes
 *    only the wheel's (to collect expired connections) and wakes them after releasing it.
 *  - At shutdown, once every worker has been joined, the main thread drains the wheel (every live
 *    connection is in it) and frees each with conn_destroy; reclaim_deinit frees the retired ones.
 *
 * Memory per connection is bounded: the input dmsg by one read window, the outbound queue by
 * OUT_HIGH_WATER (the connection stops reading and parsing pipelined requests while more is
 * queued), request bodies are discarded as they arrive and capped by --max-body.
 */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "config.h"
#include "dmsg.h"
#include "http_chunked.h"
#include "http_handler.h"
#include "http_parse.h"
#include "outq.h"
#include "reclaim.h"
#include "twheel.h"
#include "ws_conn.h"

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
    atomic_uint *nconns;                    /* live connections, for --max-connections */
    struct reclaim *reclaim;                /* where closed connections wait to be freed */
    const struct ws_endpoint *ws_endpoints; /* WebSocket endpoints, matched by exact path */
    unsigned n_ws_endpoints;
};

/* Reasons for conn_wake (bits). */
#define CONN_WAKE_TIMER 0x1u /* the timeout sweep found the deadline passed */
#define CONN_WAKE_DATA  0x2u /* the broker has messages for it */

enum conn_state { CONN_HEAD, CONN_BODY, CONN_LINGER, CONN_WS };

/* The HTTP side of a connection, allocated apart so that a WebSocket connection, which no longer
 * needs it, does not carry it (most connections of a broker are idle WebSockets). */
struct conn_http {
    uint64_t head_started; /* ms (wheel clock) when the current request's first byte came */
    uint64_t body_started; /* ms (wheel clock) when its head was complete and a body expected */
    uint64_t body_left;    /* Content-Length bytes still to discard */
    uint64_t body_seen;    /* chunked body bytes seen, against --max-body */
    struct http_chunked chunk;
    struct dmsg body; /* a kept request body, bounded by --max-body */
    struct http_parser parser;
    struct http_request req;
};

struct conn {
    struct twheel_entry tw; /* first member: the wheel's entry pointer is the connection's */
    struct reclaim_item rc; /* for deferred freeing after close */
    atomic_uint refs;       /* 1 while open or retired, plus one per wake batch holding it */
    int fd;
    const struct conn_env *env;

    /* Shared between threads: guarded by `lock` (see the rules above). */
    pthread_mutex_t lock;
    uint8_t busy;            /* a thread runs the connection */
    uint8_t again;           /* events or wakes arrived while it ran: run once more */
    uint8_t closed;          /* closed: drop any event or wake */
    uint32_t pending_events; /* epoll events not handled yet */
    uint32_t pending_wake;   /* CONN_WAKE_* not handled yet */
    uint32_t armed;          /* the epoll interest armed now; 0 once an event has disarmed it */

    /* Owned by the thread that runs the connection. */
    uint8_t state;         /* enum conn_state */
    uint8_t peer_eof;      /* a read returned 0: the peer sends nothing more */
    uint8_t close_after;   /* close once the queued output is sent */
    uint8_t linger;        /* ...after lingering: an error reply may leave unread input */
    uint8_t in_request;    /* bytes of a request have arrived and its response is not queued yet */
    uint8_t keep_alive;    /* the current request keeps the connection open */
    uint8_t chunked;       /* the current body is chunked */
    uint8_t keep_body : 1; /* the current body is kept in `body` (the API reads it) */
    uint8_t drained : 1;   /* the last read emptied the socket (EAGAIN, short read or EOF) */
    struct conn_http *h;   /* while the connection speaks HTTP: freed at the upgrade */
    struct dmsg in;
    struct outq out;
    struct ws_conn *ws; /* after the WebSocket upgrade */
    void *app;          /* the endpoint's per-connection state (the broker's session) */
};

/*
 * conn_start - creates the connection for the accepted, non-blocking socket `fd`, puts it in the
 * wheel, registers it in the epoll set and runs it once on the calling worker (`worker`), since
 * its first request has usually arrived already. Afterwards another worker may run it, so the
 * caller must not use the returned pointer for anything but a NULL check.
 * Returns non-NULL on success; NULL on failure (fd closed, nothing leaked).
 */
struct conn *conn_start(const struct conn_env *env, int fd, int worker);

/* conn_on_event - handles epoll events for `c` on worker `worker` (index for reclaim). With a
 * batch open on the worker (conn_batch.h), its send may wait there, `c` still busy. */
void conn_on_event(struct conn *c, uint32_t events, int worker);

/* conn_wake - asks that `c` handle the CONN_WAKE_* `reasons` soon; any thread, without holding
 * another connection's or the wheel's mutex. The caller must be a worker inside its batch (so `c`
 * cannot be freed under it); `worker` is its index. The connection may be run right here, or its
 * send left to the caller's open batch (conn_batch.h). */
void conn_wake(struct conn *c, uint32_t reasons, int worker);

/* conn_ref / conn_unref - keep a connection's memory (not the connection) alive while a pointer to
 * it waits in a queue outside any worker's batch. The last unref of a retired connection frees
 * it. Any thread. */
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* conn_destroy - closes and frees a connection already out of the wheel and the epoll set's
 * reach (shutdown only). A WebSocket connection is told first (1001, best effort). */
void conn_destroy(struct conn *c);

#endif
