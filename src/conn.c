/*
 * conn.c - the connection state machine: read, parse, answer, flush, re-arm (see conn.h for the
 * threading rules this file follows).
 */
#include "conn.h"
#include "conn_batch.h"
#include "conn_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "http_api.h"
#include "log.h"
#include "stats.h"
#include "ws_handshake.h"

/* Most bytes held in the input dmsg: one read window of pipelined requests or body data. */
#define IN_LIMIT (64 * 1024)
/* Reads per event before yielding the worker to other connections. */
#define READS_PER_EVENT 8
/* Deadlines are moved lazily, within this many milliseconds of exact (see touch). */
#define DEADLINE_SLACK_MS 250

static void run(struct conn *c, int worker);

/* Frees the HTTP side (at the upgrade, or with the connection). */
static void http_side_free(struct conn *c)
{
    if (!c->h)
        return;
    dmsg_deinit(&c->h->body);
    http_request_deinit(&c->h->req);
    free(c->h);
    c->h = NULL;
}

struct conn *conn_start(const struct conn_env *env, int fd, int worker)
{
    struct conn *c = calloc(1, sizeof(*c));
    struct conn_http *h = calloc(1, sizeof(*h));
    if (!c || !h) {
        free(c);
        free(h);
        close(fd);
        return NULL;
    }
    c->h = h;
    c->env = env;
    c->fd = fd;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lock, NULL);
    twheel_entry_init(&c->tw);
    dmsg_init(&c->in, IN_LIMIT);
    outq_init(&c->out);
    http_parser_init(&c->h->parser, &env->limits);
    http_request_init(&c->h->req);
    atomic_fetch_add(env->nconns, 1);
    /* Busy until registered: a sweep that reaches it in between (the accepting thread may be
     * descheduled for longer than a timeout) only leaves its wake for us. */
    c->busy = 1;
    twheel_set(env->wheel, &c->tw, twheel_now() + env->cfg->idle_timeout * 1000ull);
    /* Registered disarmed: the first run below reads the waiting request itself, and an
     * EPOLLIN armed now would fire at once and send a second worker after the same bytes. The
     * run's re-arm sets the real interest. */
    struct epoll_event ev = {.events = EPOLLONESHOT, .data.ptr = c};
    if (epoll_ctl(env->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_msg(LOG_WARN, "epoll_ctl add: %s", herald_strerror(-errno));
        twheel_remove(env->wheel, &c->tw);
        conn_destroy(c);
        return NULL;
    }
    /* Still busy: run it right away. The listener defers accepts until data has arrived
     * (TCP_DEFER_ACCEPT), so the request is usually waiting, and answering it now saves a trip
     * through epoll_wait. An event that fires meanwhile is folded into this run. */
    pthread_mutex_lock(&c->lock);
    c->pending_events |= EPOLLIN;
    pthread_mutex_unlock(&c->lock);
    run(c, worker);
    return c;
}

void conn_destroy(struct conn *c)
{
    if (c->fd >= 0 && c->ws)
        ws_conn_goodbye(c);
    if (c->fd >= 0)
        close(c->fd);
    dmsg_deinit(&c->in);
    outq_deinit(&c->out);
    http_side_free(c);
    ws_conn_free(c);
    pthread_mutex_destroy(&c->lock);
    if (!c->closed) /* a closed connection stopped counting when it closed */
        atomic_fetch_sub(c->env->nconns, 1);
    free(c);
}

void conn_ref(struct conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void conn_unref(struct conn *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conn_destroy(c);
}

/* The grace period after close has passed: drop the connection's own reference. */
static void free_retired(struct reclaim_item *it)
{
    conn_unref((struct conn *)((char *)it - offsetof(struct conn, rc)));
}

/* Ends the connection: no thread may start running it again, the sweep can no longer reach it,
 * no new epoll event can name it; then its memory waits out the threads that may still hold a
 * pointer (see conn.h). */
static void conn_close(struct conn *c, int worker)
{
    pthread_mutex_lock(&c->lock);
    c->closed = 1;
    pthread_mutex_unlock(&c->lock);
    twheel_remove(c->env->wheel, &c->tw);
    close(c->fd);
    c->fd = -1;
    atomic_fetch_sub(c->env->nconns, 1);
    /* Buffers go now; only the struct itself has to wait. */
    dmsg_deinit(&c->in);
    outq_deinit(&c->out);
    http_side_free(c);
    ws_conn_free(c);
    reclaim_retire(c->env->reclaim, worker, &c->rc, free_retired);
}

/* Pushes the deadline forward after progress. While a request head is arriving, the header
 * timeout caps it, and while its body is, the body timeout: a client trickling bytes cannot hold
 * the connection. */
static void touch(struct conn *c)
{
    if (c->state == CONN_LINGER)
        return;
    const struct herald_config *cfg = c->env->cfg;
    uint64_t deadline = twheel_now() + cfg->idle_timeout * 1000ull;
    uint64_t cap = UINT64_MAX;
    if (c->in_request && c->state == CONN_HEAD)
        cap = c->h->head_started + cfg->header_timeout * 1000ull;
    else if (c->state == CONN_BODY)
        cap = c->h->body_started + cfg->body_timeout * 1000ull;
    if (cap < deadline)
        deadline = cap;
    /* The wheel's lock is taken only when the deadline moves by more than DEADLINE_SLACK_MS: the
     * stored one is then at most that much later than exact (tw.deadline is written only by the
     * thread running the connection, so reading it here is safe). */
    if (c->tw.deadline >= deadline && c->tw.deadline <= deadline + DEADLINE_SLACK_MS)
        return;
    twheel_set(c->env->wheel, &c->tw, deadline + DEADLINE_SLACK_MS);
}

/* Reads what the socket has, up to a budget. `events` are the epoll events that prompted the read
 * (0: none). Returns bytes read (>= 0) or -errno. Sets peer_eof, and drained when it emptied the
 * socket. */
static ssize_t read_input(struct conn *c, uint32_t events)
{
    /* Bytes beyond the dmsg's free space land in this per-thread buffer in the same readv and
     * are then appended: one read per wake-up even when a message is larger than the buffer
     * the geometric chain happens to offer (a 70-byte frame against a 64-byte first buffer
     * would otherwise cost two reads). */
    static __thread char spill[16384];
    ssize_t total = 0;
    c->drained = 0; /* until a read proves the socket empty */
    for (int i = 0; i < READS_PER_EVENT; i++) {
        struct iovec iov[5];
        int n = dmsg_space(&c->in, iov, 4);
        if (n == HERALD_ELIMIT && dmsg_compact(&c->in))
            n = dmsg_space(&c->in, iov, 4);
        if (n == HERALD_ELIMIT)
            break; /* the read window is full of pipelined input: parse some first */
        if (n < 0)
            return n;
        size_t room = 0;
        for (int k = 0; k < n; k++)
            room += iov[k].iov_len;
        size_t window = c->in.limit - c->in.len; /* what the limit still allows */
        size_t extra = window > room ? window - room : 0;
        iov[n].iov_base = spill;
        iov[n].iov_len = extra < sizeof(spill) ? extra : sizeof(spill);
        size_t offered = room + iov[n].iov_len;
        ssize_t r = readv(c->fd, iov, n + (iov[n].iov_len > 0));
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->drained = 1;
                break;
            }
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            c->peer_eof = 1;
            c->drained = 1;
            break;
        }
        size_t in_place = (size_t)r < room ? (size_t)r : room;
        dmsg_commit(&c->in, in_place);
        if ((size_t)r > room && dmsg_append(&c->in, spill, (size_t)r - room) < 0)
            return -ENOMEM; /* within the limit by construction: only memory can fail */
        total += r;
        STATS_COUNT(bytes_in, (uint64_t)r);
        /* A short read took everything the socket had, unless the peer's FIN or an error came
         * with the data: the read stops before it, and with nothing more to arrive no edge would
         * announce it, so read once more (it returns 0 or the error). */
        if ((size_t)r < offered && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            c->drained = 1;
            break;
        }
    }
    return total;
}

/* An error response is queued: close after it, lingering (the request's unread body, if any, is
 * then read and discarded rather than answered with a reset). */
static void close_after_error(struct conn *c)
{
    c->close_after = 1;
    c->linger = 1;
    c->in_request = 0;
}

/* Queues an error response and arranges to close after it. */
static void fail_request(struct conn *c, int status, const char *reason)
{
    if (log_enabled(LOG_DEBUG))
        log_msg(LOG_DEBUG, "fd %d: %d %s", c->fd, status, reason ? reason : "");
    http_error(&c->out, status, reason, 0, c->h->req.method == HTTP_HEAD);
    close_after_error(c);
}

/* A body the API keeps (up to --max-body) is first authorized on the head: without the key a
 * client could otherwise make the server hold that much per connection. Returns 1 when the
 * request may go on, 0 when it was refused (answered, or closing when out of memory). */
static int authorize_body(struct conn *c)
{
    const struct http_api *api = c->env->http.api;
    if (!api || !http_api_wants_body(&c->h->req))
        return 1;
    int rc = http_api_authorize_head(api, &c->h->req, &c->out);
    if (rc > 0)
        return 1;
    close_after_error(c);
    if (rc < 0)
        c->peer_eof = 1; /* out of memory: close without an answer */
    return 0;
}

/* The request is complete (body consumed): answer it and get ready for the next one. */
static void respond(struct conn *c)
{
    const struct http_api *api = c->env->http.api;
    int rc = api && http_api_route(&c->h->req)
                 ? http_api_handle(api, &c->h->req, &c->h->body, c->keep_alive, &c->out)
                 : http_handle(&c->env->http, &c->h->req, c->keep_alive, &c->out);
    STATS_COUNT(http_requests, 1);
    dmsg_deinit(&c->h->body);
    c->keep_body = 0;
    if (rc < 0) {
        c->close_after = 1; /* out of memory: whatever was queued goes, then the connection */
        c->peer_eof = 1;
    }
    if (!c->keep_alive)
        c->close_after = 1;
    c->in_request = 0;
    c->state = CONN_HEAD;
    http_request_reset(&c->h->req);
    http_parser_init(&c->h->parser, &c->env->limits);
}

/* 0: close after this response; 1: HTTP/1.1 persistence; 2: HTTP/1.0 keep-alive, which the
 * response must confirm with its own Connection: keep-alive. */
static int wants_keep_alive(const struct http_request *req)
{
    if (req->flags & HTTP_F_CONN_CLOSE)
        return 0;
    if (req->version_minor >= 1)
        return 1;
    return (req->flags & HTTP_F_CONN_KEEPALIVE) ? 2 : 0;
}

/* The WebSocket endpoint served at the request's path, or NULL. */
static const struct ws_endpoint *find_endpoint(const struct conn *c)
{
    const struct http_request *req = &c->h->req;
    for (unsigned i = 0; i < c->env->n_ws_endpoints; i++) {
        const struct ws_endpoint *ep = &c->env->ws_endpoints[i];
        if (strlen(ep->path) == req->path_len &&
            memcmp(ep->path, req->buf + req->path_off, req->path_len) == 0)
            return ep;
    }
    return NULL;
}

/* An upgrade request: complete the handshake, or refuse it with the status the RFC asks for. */
static void on_upgrade(struct conn *c)
{
    const struct ws_endpoint *ep = find_endpoint(c);
    if (!ep) {
        fail_request(c, 404, "no WebSocket endpoint at this path");
        return;
    }
    struct ws_handshake hs;
    int rc = ws_handshake_check(&c->h->req, &ep->hs, &hs);
    if (rc < 0) {
        fail_request(c, -rc, hs.reason);
        return;
    }
    if (ws_conn_upgrade(c, ep, &hs) < 0) {
        fail_request(c, 500, "out of memory");
        return;
    }
    c->in_request = 0;
    http_side_free(c); /* nothing below parse_head touches it once the state is CONN_WS */
}

/* The head is parsed: decide on the body, then answer (now or once the body is consumed). */
static void on_head(struct conn *c)
{
    struct http_request *req = &c->h->req;
    if (ws_is_upgrade(req)) {
        on_upgrade(c);
        return;
    }
    c->keep_alive = (uint8_t)wants_keep_alive(req);
    if (req->flags & HTTP_F_EXPECT_OTHER) {
        fail_request(c, 417, "only 100-continue is supported");
        return;
    }
    int has_body = (req->flags & HTTP_F_CHUNKED) ||
                   ((req->flags & HTTP_F_CONTENT_LENGTH) && req->content_length > 0);
    if (!has_body) {
        respond(c);
        return;
    }
    if (!authorize_body(c))
        return;
    if ((req->flags & HTTP_F_CONTENT_LENGTH) && req->content_length > c->env->cfg->max_body) {
        fail_request(c, 413, "request body too large");
        return;
    }
    if ((req->flags & HTTP_F_EXPECT_CONTINUE) && req->version_minor >= 1)
        http_continue(&c->out);
    c->state = CONN_BODY;
    c->h->body_started = twheel_now();
    c->chunked = (req->flags & HTTP_F_CHUNKED) != 0;
    c->h->body_left = req->content_length;
    c->h->body_seen = 0;
    /* Bodies are discarded as they arrive, except the few the API reads. */
    c->keep_body = c->env->http.api && http_api_wants_body(req);
    dmsg_init(&c->h->body, c->env->cfg->max_body);
    if (c->chunked)
        http_chunked_init(&c->h->chunk, 0);
}

/* Feeds buffered input to the head parser. Returns 1 when a head completed, else 0. */
static int parse_head(struct conn *c)
{
    struct iovec iov[16];
    int n = dmsg_iov(&c->in, 0, iov, 16);
    for (int i = 0; i < n; i++) {
        size_t used = 0;
        int rc = http_parse_feed(&c->h->parser, &c->h->req, iov[i].iov_base, iov[i].iov_len, &used);
        dmsg_consume(&c->in, used);
        if (rc == HTTP_PARSE_DONE) {
            on_head(c);
            return 1;
        }
        if (rc < 0) {
            fail_request(c, -rc, c->h->parser.reason);
            return 0;
        }
    }
    return 0;
}

/* Copies the first n input bytes to the kept body. Returns 0, or -1 (answered 500). */
static int keep_input(struct conn *c, size_t n)
{
    struct iovec iov[16];
    int cnt = dmsg_iov(&c->in, 0, iov, 16);
    for (int i = 0; i < cnt && n > 0; i++) {
        size_t take = iov[i].iov_len < n ? iov[i].iov_len : n;
        if (dmsg_append(&c->h->body, iov[i].iov_base, take) < 0) {
            fail_request(c, 500, "out of memory");
            return -1;
        }
        n -= take;
    }
    return 0;
}

/* Discards body bytes as they arrive. Returns 1 when the body is complete, else 0. */
static int consume_body(struct conn *c)
{
    if (!c->chunked) {
        size_t take = dmsg_len(&c->in) < c->h->body_left ? dmsg_len(&c->in) : c->h->body_left;
        if (c->keep_body && keep_input(c, take) < 0)
            return 0;
        dmsg_consume(&c->in, take);
        c->h->body_left -= take;
        return c->h->body_left == 0;
    }
    struct iovec iov[16];
    int n = dmsg_iov(&c->in, 0, iov, 16);
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t used = 0, dlen = 0;
            const char *data;
            int rc = http_chunked_feed(&c->h->chunk, p, left, &used, &data, &dlen);
            /* Kept before it is consumed: consuming may free the buffer `data` points into. */
            if (c->keep_body && dlen && c->h->body_seen + dlen <= c->env->cfg->max_body &&
                dmsg_append(&c->h->body, data, dlen) < 0) {
                fail_request(c, 500, "out of memory");
                return 0;
            }
            dmsg_consume(&c->in, used);
            p += used;
            left -= used;
            c->h->body_seen += dlen;
            /* A chunk announced past the limit is refused at its size line, not after the limit's
             * worth of its data has been read (as a Content-Length past it is, at the head). */
            uint64_t max = c->env->cfg->max_body;
            if (rc < 0 || c->h->body_seen > max || c->h->chunk.remaining > max - c->h->body_seen) {
                fail_request(c, rc < 0 ? 400 : 413,
                             rc < 0 ? c->h->chunk.reason : "request body too large");
                return 0;
            }
            if (rc == HTTP_PARSE_DONE)
                return 1;
            if (rc == HTTP_PARSE_AGAIN)
                break;
        }
    }
    return 0;
}

/* Parses and answers buffered requests in order, while the output queue has room. */
static void process_input(struct conn *c)
{
    while (c->state != CONN_WS && !c->close_after && outq_cost(&c->out) < OUT_HIGH_WATER &&
           dmsg_len(&c->in) > 0) {
        if (c->state == CONN_HEAD) {
            bool fresh = !c->in_request;
            if (fresh) {
                c->in_request = 1;
                c->h->head_started = twheel_now();
            }
            int done = parse_head(c);
            /* Empty lines before a request are skipped (RFC 9112 2.2), and are no request: the
             * idle timeout then closes quietly, without a 408 nobody asked for. */
            if (fresh && !done && c->state == CONN_HEAD && !http_parse_started(&c->h->parser))
                c->in_request = 0;
            if (!done)
                break;
        } else if (consume_body(c)) {
            respond(c);
        } else {
            break;
        }
    }
    /* Frames may follow the upgrade request in the same read. */
    if (c->state == CONN_WS)
        ws_conn_process(c);
}

/* After an error response or a close frame Herald sent: stop sending, keep draining input for a
 * short while, so the client reads the response instead of a reset. A WebSocket is over once its
 * close frame is out: its session (subscriptions, presence) ends now, not when lingering does,
 * which for a peer that keeps its socket open is LINGER_SECONDS later. */
static void start_linger(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    ws_conn_free(c);
    c->state = CONN_LINGER;
    twheel_set(c->env->wheel, &c->tw, twheel_now() + LINGER_SECONDS * 1000);
}

/* Whether reading now could make progress. Asking for EPOLLIN when it cannot (a full input
 * window behind a full output queue, or a connection that will read nothing more) would make a
 * level-triggered fd fire again at once, for ever. */
static bool want_input(const struct conn *c)
{
    if (c->peer_eof)
        return false;
    if (c->state == CONN_LINGER)
        return true; /* draining until EOF */
    if (c->close_after)
        return false; /* the answer is queued; after it, lingering reads what is left */
    return outq_cost(&c->out) < OUT_HIGH_WATER && dmsg_len(&c->in) < IN_LIMIT;
}

/* The epoll interest for what the connection waits for. EPOLLHUP and EPOLLERR are always
 * reported, so a vanished peer is noticed even with no interest set.
 * An upgraded connection that wants input and has read its socket empty stays armed,
 * edge-triggered, so that a message costs no epoll_ctl (conn.h says why that is safe). Anything
 * else (HTTP, back-pressure, input left in the socket, closing) is one-shot and level-triggered:
 * an edge would not fire again for input already waiting. Switching back with EPOLL_CTL_MOD
 * reports whatever is ready at that moment, so no edge is lost between the modes. EPOLLOUT is
 * asked for only with output waiting: a socket is nearly always writable, and the switch would
 * otherwise report it at once and send another worker to run the connection for nothing. */
static uint32_t interest(const struct conn *c)
{
    bool in = want_input(c);
    if (c->state == CONN_WS && c->drained && !c->env->cfg->ws_oneshot && in)
        return EPOLLET | EPOLLIN | EPOLLRDHUP | (outq_bytes(&c->out) > 0 ? EPOLLOUT : 0);
    uint32_t ev = EPOLLONESHOT;
    if (in)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (outq_bytes(&c->out) > 0)
        ev |= EPOLLOUT;
    return ev;
}

/* Results of the handlers below. */
#define KEEP     0
#define CLOSE    -1
#define DEFERRED 1 /* its send waits in the worker's batch: the connection stays busy */

/* The deadline passed (checked again: activity may have moved it since the sweep looked). */
static int on_deadline(struct conn *c)
{
    if (c->state == CONN_WS) {
        if (ws_conn_on_deadline(c) < 0)
            return CLOSE;
        int rc = outq_flush(&c->out, c->fd, NULL); /* the ping, if one was queued */
        return rc < 0 && rc != -EAGAIN ? CLOSE : KEEP;
    }
    if (c->tw.deadline > twheel_now())
        return KEEP;
    if ((c->state == CONN_BODY || (c->state == CONN_HEAD && c->in_request)) &&
        outq_bytes(&c->out) == 0) {
        /* A head or body that never completed gets a 408 on a best-effort basis. */
        bool body = c->state == CONN_BODY; /* then the head is known: a HEAD gets no body */
        http_error(&c->out, 408,
                   body ? "request body not received in time" : "request head not received in time",
                   0, body && c->h->req.method == HTTP_HEAD);
        outq_flush(&c->out, c->fd, NULL);
    }
    if (log_enabled(LOG_DEBUG))
        log_msg(LOG_DEBUG, "fd %d: timed out", c->fd);
    return CLOSE;
}

static int on_linger_event(struct conn *c)
{
    if (read_input(c, 0) < 0 || c->peer_eof)
        return CLOSE;
    dmsg_consume(&c->in, dmsg_len(&c->in));
    return KEEP;
}

/* Reads, parses, answers and flushes: one turn of the connection. Unless it is at a deadline
 * (`may_defer` false), a WebSocket turn may leave its send to the worker's batch and return
 * DEFERRED (conn_batch.h). */
static int on_io(struct conn *c, uint32_t events, bool may_defer)
{
    int progress = 0;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->peer_eof) {
        ssize_t r = read_input(c, events);
        if (r < 0)
            return CLOSE; /* ECONNRESET and friends: nothing can be delivered */
        progress |= r > 0;
        /* A WebSocket peer proves itself alive by sending; what we send proves nothing. */
        if (r > 0 && c->state == CONN_WS)
            ws_conn_on_input(c);
    }
    /* Parse, answer and flush until the input is used up or the socket is full. */
    for (;;) {
        process_input(c);
        bool more = c->state == CONN_WS && ws_conn_run(c);
        if (may_defer && conn_batch_defer(c, more))
            return DEFERRED;
        size_t sent = 0;
        int rc = outq_flush(&c->out, c->fd, &sent);
        progress |= sent > 0;
        STATS_COUNT(bytes_out, sent);
        if (rc < 0 && rc != -EAGAIN)
            return CLOSE; /* EPIPE, ECONNRESET: close and free at once */
        if (rc == -EAGAIN || c->close_after || sent == 0 || (dmsg_len(&c->in) == 0 && !more))
            break;
    }
    if (outq_bytes(&c->out) == 0 && (c->close_after || c->peer_eof)) {
        /* Everything answered. A peer that half-closed has had its answers. Closing with unread
         * input would send a reset that can destroy the response in flight, so after an error,
         * or with input left over, the connection lingers (as nginx's lingering_close does). */
        if (c->peer_eof || (!c->linger && dmsg_len(&c->in) == 0))
            return CLOSE;
        start_linger(c);
    } else if (progress && c->state != CONN_WS) {
        touch(c);
    }
    return KEEP;
}

static int handle(struct conn *c, uint32_t events, uint32_t wake)
{
    int timer = (wake & CONN_WAKE_TIMER) != 0;
    if (c->state == CONN_LINGER) {
        if (timer && c->tw.deadline <= twheel_now())
            return CLOSE;
        return events ? on_linger_event(c) : KEEP;
    }
    /* At the deadline, look for input first: a request that raced the sweep is answered (and
     * moves the deadline) rather than cut off. Not when it does not want input: a connection held
     * back by its unread output would take more requests past the high-water mark, and, being
     * read, pass as alive to the keepalive. */
    int rc = on_io(c, events | (timer && want_input(c) ? EPOLLIN : 0), !timer);
    if (rc != KEEP)
        return rc;
    return timer ? on_deadline(c) : KEEP;
}

/* Takes the right to run c, or records the work for the thread that has it. Returns 1 if the
 * caller now runs c. */
static int acquire(struct conn *c, uint32_t events, uint32_t wake)
{
    pthread_mutex_lock(&c->lock);
    int mine = !c->closed && !c->busy;
    if (!c->closed) {
        c->pending_events |= events;
        c->pending_wake |= wake;
        if (events && (c->armed & EPOLLONESHOT))
            c->armed = 0; /* a one-shot event was delivered: the fd is disarmed */
        if (c->busy)
            c->again = 1;
        c->busy = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return mine;
}

/* Runs c until no work is left, then re-arms it and lets go, or closes it. `resumed`: the turn
 * already ran and its batched send is accounted for (conn_batch.c: flush); go on from there. */
static void run_from(struct conn *c, int worker, bool resumed)
{
    for (;; resumed = false) {
        if (!resumed) {
            pthread_mutex_lock(&c->lock);
            uint32_t events = c->pending_events, wake = c->pending_wake;
            c->pending_events = c->pending_wake = 0;
            c->again = 0;
            pthread_mutex_unlock(&c->lock);

            STATS_COUNT(events, 1);
            int rc = handle(c, events, wake);
            if (rc == CLOSE) {
                conn_close(c, worker);
                return;
            }
            if (rc == DEFERRED)
                return; /* still busy: the batch's flush finishes the turn */
        }
        /* Most WebSocket connections are idle most of the time: between messages they keep no
         * buffers (a few small allocations per message cost far less than the system calls). */
        if (c->ws) {
            if (dmsg_len(&c->in) == 0)
                dmsg_deinit(&c->in);
            if (c->out.count == 0)
                outq_deinit(&c->out);
        }
        pthread_mutex_lock(&c->lock);
        if (c->again) {
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        /* Re-arming under the mutex: a waker that finds `busy` clear may re-arm too, and the
         * two must not interleave with the clearing. A run started by a wake (a delivery) finds
         * the fd still armed, usually for what it wants now: then there is nothing to re-arm,
         * which saves a system call per delivery. */
        struct epoll_event e = {.events = interest(c), .data.ptr = c};
        int rc = 0;
        if (c->armed != e.events) {
            STATS_COUNT(epoll_rearms, 1);
            if ((rc = epoll_ctl(c->env->epfd, EPOLL_CTL_MOD, c->fd, &e)) == 0)
                c->armed = e.events;
        }
        if (rc == 0)
            c->busy = 0;
        pthread_mutex_unlock(&c->lock);
        if (rc == 0)
            return;
        log_msg(LOG_WARN, "epoll_ctl mod: %s", herald_strerror(-errno));
        conn_close(c, worker);
        return;
    }
}

static void run(struct conn *c, int worker)
{
    run_from(c, worker, false);
}

void conn_turn_resume(struct conn *c, int worker, bool again)
{
    if (again) {
        pthread_mutex_lock(&c->lock);
        c->again = 1;
        pthread_mutex_unlock(&c->lock);
    }
    run_from(c, worker, true);
}

void conn_turn_close(struct conn *c, int worker)
{
    conn_close(c, worker);
}

void conn_on_event(struct conn *c, uint32_t events, int worker)
{
    if (acquire(c, events, 0))
        run(c, worker);
}

void conn_wake(struct conn *c, uint32_t reasons, int worker)
{
    /* Taking c over here is safe even though its fd stays armed: an event that fires meanwhile
     * finds `busy` set and is folded into this run. */
    if (acquire(c, 0, reasons))
        run(c, worker);
}
