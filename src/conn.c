/*
 * conn.c - the connection state machine: read, parse, answer, flush, re-arm (see conn.h for the
 * threading rules this file follows).
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

/* Most bytes held in the input dmsg: one read window of pipelined requests or body data. */
#define IN_LIMIT (64 * 1024)
/* Reads per event before yielding the worker to other connections. */
#define READS_PER_EVENT 8

static void conn_close(struct conn *c);

struct conn *conn_start(const struct conn_env *env, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->env = env;
    c->fd = fd;
    atomic_init(&c->expired, false);
    twheel_entry_init(&c->tw);
    dmsg_init(&c->in, IN_LIMIT);
    outq_init(&c->out);
    http_parser_init(&c->parser, &env->limits);
    http_request_init(&c->req);
    atomic_fetch_add(env->nconns, 1);
    twheel_set(env->wheel, &c->tw, twheel_now() + env->cfg->idle_timeout);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = c};
    atomic_store_explicit(&c->handoff, 1, memory_order_release);
    if (epoll_ctl(env->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_msg(LOG_WARN, "epoll_ctl add: %s", herald_strerror(-errno));
        conn_close(c);
        return NULL;
    }
    /* From here on another worker may own c. */
    return c;
}

void conn_destroy(struct conn *c)
{
    close(c->fd);
    dmsg_deinit(&c->in);
    outq_deinit(&c->out);
    http_request_deinit(&c->req);
    atomic_fetch_sub(c->env->nconns, 1);
    free(c);
}

/* Leaves the wheel first: after that no thread can reach c, and only then is the fd released. */
static void conn_close(struct conn *c)
{
    twheel_remove(c->env->wheel, &c->tw);
    conn_destroy(c);
}

/* Pushes the deadline forward after progress. While a request head is arriving, the header
 * timeout caps it, so a client trickling bytes cannot hold the connection. */
static void touch(struct conn *c)
{
    if (c->state == CONN_LINGER)
        return;
    const struct herald_config *cfg = c->env->cfg;
    uint64_t now = twheel_now();
    uint64_t deadline = now + cfg->idle_timeout;
    if (c->in_request && c->state == CONN_HEAD) {
        uint64_t cap = c->head_started + cfg->header_timeout;
        if (cap < deadline)
            deadline = cap;
    }
    /* tw.deadline is written only by this (owning) thread, so reading it unlocked is safe; the
     * lock is taken only when the deadline really moves, at most about once a second. */
    if (deadline != c->tw.deadline)
        twheel_set(c->env->wheel, &c->tw, deadline);
}

void conn_expire_cb(struct twheel_entry *e, void *arg)
{
    (void)arg;
    struct conn *c = (struct conn *)e;
    atomic_store_explicit(&c->expired, true, memory_order_release);
    /* Wakes the owner (the fd reads EOF) without freeing anything here. */
    shutdown(c->fd, SHUT_RD);
}

/* Reads what the socket has, up to a budget. Returns bytes read (>= 0) or -errno. Sets peer_eof. */
static ssize_t read_input(struct conn *c)
{
    ssize_t total = 0;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        struct iovec iov[4];
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
        ssize_t r = readv(c->fd, iov, n);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            c->peer_eof = 1;
            break;
        }
        dmsg_commit(&c->in, (size_t)r);
        total += r;
        if ((size_t)r < room)
            break; /* the socket is drained */
    }
    return total;
}

/* Queues an error response and arranges to close after it. */
static void fail_request(struct conn *c, int status, const char *reason)
{
    if (log_enabled(LOG_DEBUG))
        log_msg(LOG_DEBUG, "fd %d: %d %s", c->fd, status, reason ? reason : "");
    http_error(&c->out, status, reason, 0, c->req.method == HTTP_HEAD);
    c->close_after = 1;
    c->linger = 1;
    c->in_request = 0;
}

/* The request is complete (body consumed): answer it and get ready for the next one. */
static void respond(struct conn *c)
{
    if (http_handle(&c->env->http, &c->req, c->keep_alive, &c->out) < 0) {
        c->close_after = 1; /* out of memory: whatever was queued goes, then the connection */
        c->peer_eof = 1;
    }
    if (!c->keep_alive)
        c->close_after = 1;
    c->in_request = 0;
    c->state = CONN_HEAD;
    http_request_reset(&c->req);
    http_parser_init(&c->parser, &c->env->limits);
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

/* The head is parsed: decide on the body, then answer (now or once the body is consumed). */
static void on_head(struct conn *c)
{
    struct http_request *req = &c->req;
    c->keep_alive = (uint8_t)wants_keep_alive(req);
    size_t len;
    if (http_header_get(req, "expect", &len) && !(req->flags & HTTP_F_EXPECT_CONTINUE)) {
        fail_request(c, 417, "only 100-continue is supported");
        return;
    }
    int has_body = (req->flags & HTTP_F_CHUNKED) ||
                   ((req->flags & HTTP_F_CONTENT_LENGTH) && req->content_length > 0);
    if (!has_body) {
        respond(c);
        return;
    }
    if ((req->flags & HTTP_F_CONTENT_LENGTH) && req->content_length > c->env->cfg->max_body) {
        fail_request(c, 413, "request body too large");
        return;
    }
    if ((req->flags & HTTP_F_EXPECT_CONTINUE) && req->version_minor >= 1)
        http_continue(&c->out);
    c->state = CONN_BODY;
    c->chunked = (req->flags & HTTP_F_CHUNKED) != 0;
    c->body_left = req->content_length;
    c->body_seen = 0;
    if (c->chunked)
        http_chunked_init(&c->chunk, 0);
}

/* Feeds buffered input to the head parser. Returns 1 when a head completed, else 0. */
static int parse_head(struct conn *c)
{
    struct iovec iov[16];
    int n = dmsg_iov(&c->in, 0, iov, 16);
    for (int i = 0; i < n; i++) {
        size_t used = 0;
        int rc = http_parse_feed(&c->parser, &c->req, iov[i].iov_base, iov[i].iov_len, &used);
        dmsg_consume(&c->in, used);
        if (rc == HTTP_PARSE_DONE) {
            on_head(c);
            return 1;
        }
        if (rc < 0) {
            fail_request(c, -rc, c->parser.reason);
            return 0;
        }
    }
    return 0;
}

/* Discards body bytes as they arrive. Returns 1 when the body is complete, else 0. */
static int consume_body(struct conn *c)
{
    if (!c->chunked) {
        size_t take = dmsg_len(&c->in) < c->body_left ? dmsg_len(&c->in) : c->body_left;
        dmsg_consume(&c->in, take);
        c->body_left -= take;
        return c->body_left == 0;
    }
    struct iovec iov[16];
    int n = dmsg_iov(&c->in, 0, iov, 16);
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t used = 0, dlen = 0;
            const char *data;
            int rc = http_chunked_feed(&c->chunk, p, left, &used, &data, &dlen);
            dmsg_consume(&c->in, used);
            p += used;
            left -= used;
            c->body_seen += dlen;
            if (rc < 0 || c->body_seen > c->env->cfg->max_body) {
                fail_request(c, rc < 0 ? 400 : 413,
                             rc < 0 ? c->chunk.reason : "request body too large");
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
    while (!c->close_after && outq_bytes(&c->out) < OUT_HIGH_WATER && dmsg_len(&c->in) > 0) {
        if (c->state == CONN_HEAD) {
            if (!c->in_request) {
                c->in_request = 1;
                c->head_started = twheel_now();
            }
            if (!parse_head(c))
                return;
        } else if (consume_body(c)) {
            respond(c);
        } else {
            return;
        }
    }
}

/* After an error response: stop sending, keep draining input for a short while, so the client
 * reads the response instead of a reset. */
static void start_linger(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    twheel_set(c->env->wheel, &c->tw, twheel_now() + LINGER_SECONDS);
}

/* Re-arms the fd for what the connection waits for. The connection must not be used afterwards.
 * Returns 0, or -1 when it could not be re-armed (the caller then still owns and closes it). */
static int rearm(struct conn *c)
{
    uint32_t ev = EPOLLONESHOT;
    if (!c->peer_eof) {
        ev |= EPOLLRDHUP;
        if (outq_bytes(&c->out) < OUT_HIGH_WATER || c->state == CONN_LINGER)
            ev |= EPOLLIN;
    }
    if (outq_bytes(&c->out) > 0)
        ev |= EPOLLOUT;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    /* Everything the call needs is read before the handoff: after it, c belongs to whoever
     * receives its next event. */
    int epfd = c->env->epfd, fd = c->fd;
    atomic_store_explicit(&c->handoff, 1, memory_order_release);
#if defined(__SANITIZE_THREAD__)
    /* TSan's epoll_ctl interceptor records a read of the fd after the handoff above, which the
     * next owner's close() then appears to race with; the kernel orders them. The raw syscall
     * keeps TSan's model to the handoff, which is the real ordering. */
    return (int)syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_MOD, fd, &e);
#else
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
#endif
}

/* The sweep marked this connection: it has been idle, silent or stuck too long. */
static void on_expired(struct conn *c)
{
    if (c->state == CONN_HEAD && c->in_request && outq_bytes(&c->out) == 0) {
        /* A head that never completed gets a 408 on a best-effort basis. */
        http_error(&c->out, 408, "request head not received in time", 0, 0);
        outq_flush(&c->out, c->fd, NULL);
    }
    if (log_enabled(LOG_DEBUG))
        log_msg(LOG_DEBUG, "fd %d: timed out", c->fd);
    conn_close(c);
}

static void on_linger_event(struct conn *c)
{
    if (read_input(c) < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    dmsg_consume(&c->in, dmsg_len(&c->in));
    if (rearm(c) < 0)
        conn_close(c);
}

void conn_on_event(struct conn *c, uint32_t events)
{
    (void)atomic_load_explicit(&c->handoff, memory_order_acquire); /* see conn.h */
    if (atomic_load_explicit(&c->expired, memory_order_acquire)) {
        on_expired(c);
        return;
    }
    if (c->state == CONN_LINGER) {
        on_linger_event(c);
        return;
    }
    int progress = 0;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->peer_eof) {
        ssize_t r = read_input(c);
        if (r < 0) {
            conn_close(c); /* ECONNRESET and friends: nothing can be delivered */
            return;
        }
        progress |= r > 0;
    }
    /* Parse, answer and flush until the input is used up or the socket is full. */
    for (;;) {
        process_input(c);
        size_t sent = 0;
        int rc = outq_flush(&c->out, c->fd, &sent);
        progress |= sent > 0;
        if (rc < 0 && rc != -EAGAIN) {
            conn_close(c); /* EPIPE, ECONNRESET: close and free at once */
            return;
        }
        if (rc == -EAGAIN || c->close_after || dmsg_len(&c->in) == 0 || sent == 0)
            break;
    }
    if (outq_bytes(&c->out) == 0 && (c->close_after || c->peer_eof)) {
        /* Everything answered. A peer that half-closed has had its answers. Closing with unread
         * input would send a reset that can destroy the response in flight, so after an error,
         * or with input left over, the connection lingers (as nginx's lingering_close does). */
        if (c->peer_eof || (!c->linger && dmsg_len(&c->in) == 0)) {
            conn_close(c);
            return;
        }
        start_linger(c);
    } else if (progress) {
        touch(c);
    }
    if (rearm(c) < 0)
        conn_close(c);
}
