/*
 * wsload.c - a WebSocket load generator for Herald's benchmarks (bench/echo.sh, bench/pubsub.sh).
 *
 *   wsload --url ws://127.0.0.1:PORT/echo [--scenario echo|fanout|rooms] [-c CONNS] [-w IN_FLIGHT]
 *          [-b BYTES] [-d SECONDS] [--warmup SECONDS] [--text|--binary] [-t THREADS]
 *
 * One process; each thread (-t, default 1) runs its own epoll loop over its share of the
 * connections, all non-blocking. The WebSocket client is minimal and in this file: a fixed-key
 * handshake, masked client frames, and Herald's own resumable decoder (src/ws_frame.c) for the
 * server's frames, so any split of the input and any number of frames per read are handled.
 *
 * A run has phases, the same for every thread: connect (all connections opened and upgraded, at
 * most CONNECT_BATCH at a time per thread), subscribe (pub/sub scenarios: each subscriber sends its
 * request and waits for --skip-first messages, the server's confirmation), then load (a warm-up,
 * then the measured window of -d seconds), settle (pub/sub: publishing has stopped; up to
 * --settle seconds for the deliveries still on their way, so that what is missing is lost), then
 * drain (a close frame on every connection, up to DRAIN_US to see them closed). What is sent is
 * the scenario's business (struct scenario in wsload.h): `echo` is here, the pub/sub scenarios
 * `fanout` and `rooms` in wsload_pubsub.c; a connection-rate scenario would be another table entry
 * reusing the transport and the stats.
 *
 * echo: every connection keeps W messages of B bytes in flight. A payload is
 * "seq=N ts=T " padded with 'x' (valid UTF-8, so it can go as text), T the send time in
 * microseconds on CLOCK_MONOTONIC. A round trip completes when the echo comes back; it is counted,
 * with its latency, if it completes inside the measured window. Echoes must come back in order,
 * whole and with the opcode sent; anything else counts as a bad echo.
 *
 * Output: a readable line and one `JSON {...}` line on stdout, with the generator's own CPU time
 * over the window (getrusage) so a saturated generator shows. Exit 0 when messages completed, 1 on
 * failure, 2 on bad usage.
 *
 * Files: this one (transport, phases, echo, main), wsload_pubsub.c (the pub/sub scenarios),
 * wsload_opts.c (the command line) and wsload_report.c (histogram, CPU counters, the report).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsc_wire.h"
#include "wsload.h"

#define CONNECT_BATCH 256        /* connects in progress at once, per thread */
#define DRAIN_US      2000000ULL /* how long the closing handshakes may take */
#define HS_MAX        4096       /* largest handshake response accepted */
#define OUT_MAX       (64u << 20) /* a client's unsent bytes beyond this: the server is not reading */

/* The RFC 6455 example key and its accept value: a fixed key is fine for a benchmark. */

/* ---- run, workers, clients --------------------------------------------------------------- */

uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("wsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- output ------------------------------------------------------------------------------ */

/* Room for n more bytes at the end of the output buffer, or NULL past OUT_MAX. */
static uint8_t *client_reserve(struct client *c, size_t n)
{
    size_t cap;
    uint8_t *p;

    if (c->out_off > 0 && c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
        cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + n)
            cap *= 2;
        if (cap > OUT_MAX)
            return NULL;
        p = realloc(c->out, cap);
        if (!p)
            die("out of memory");
        c->out = p;
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

uint8_t *client_frame(struct client *c, uint8_t opcode, size_t len, uint8_t **payload)
{
    size_t hl = ws_frame_header_size(len, true);
    uint8_t *f = client_reserve(c, hl + len);

    if (!f)
        return NULL;
    wsc_frame_header(f, true, 0, opcode, len, c->mask);
    *payload = f + hl;
    c->out_len += hl + len;
    return f;
}

/* Masks the payload of the frame just queued by client_frame. */
void client_frame_done(struct client *c, uint8_t *payload, size_t len)
{
    ws_mask(payload, len, c->mask, 0);
}

/* Sockets are registered edge-triggered: on_event reads until a short read, so a socket with
 * input left always gets another event, and epoll_wait does not poll every socket it reported
 * again on its next call, as it does for level-triggered ones (sock_poll was 9% of wsload's
 * samples in a 10,000-subscriber fan-out). EPOLLRDHUP tells when the peer's end of the stream came
 * too: a short read then is not the end, the next read sees the close. */
#define EV_MODE (EPOLLET | EPOLLRDHUP)

static void client_set_events(struct client *c, uint32_t events)
{
    struct epoll_event ev = {.events = events | EV_MODE, .data.ptr = c};

    if (events != c->events && epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

int client_flush(struct client *c)
{
    ssize_t n;

    while (c->out_off < c->out_len) {
        n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            client_set_events(c, EPOLLIN | EPOLLOUT);
            return 0;
        } else {
            return -1;
        }
    }
    c->out_off = c->out_len = 0;
    client_set_events(c, EPOLLIN);
    return 0;
}

/* ---- the echo scenario ------------------------------------------------------------------- */

static void echo_send(struct client *c, uint64_t now)
{
    const struct opts *o = &c->w->run->o;
    uint8_t *p;
    int n;

    if (!client_frame(c, o->opcode, o->bytes, &p)) {
        c->w->st.proto_err++;
        client_close(c, C_DEAD);
        return;
    }
    /* MIN_BYTES leaves room for any sequence number and timestamp of a run lasting days. */
    n = snprintf((char *)p, o->bytes, "seq=%" PRIu64 " ts=%" PRIu64 " ", c->next_seq++, now);
    if (n < 0 || (size_t)n >= o->bytes)
        die("-b %zu is too small for \"seq=%" PRIu64 " ts=%" PRIu64 " \"", o->bytes, c->next_seq,
            now);
    memset(p + n, 'x', o->bytes - (size_t)n);
    client_frame_done(c, p, o->bytes);
}

static void echo_start(struct client *c, uint64_t now)
{
    for (unsigned i = 0; i < c->w->run->o.inflight && c->state == C_OPEN; i++)
        echo_send(c, now);
}

/* Parses "seq=N ts=T " at the start of head. 0, or -1 if it is not there. */
static int echo_parse(const uint8_t *head, size_t len, uint64_t *seq, uint64_t *ts)
{
    const char *keys[2] = {"seq=", " ts="};
    uint64_t *vals[2] = {seq, ts};
    size_t i = 0;

    for (int k = 0; k < 2; k++) {
        if (len - i < 4 || memcmp(head + i, keys[k], 4) != 0)
            return -1;
        i += 4;
        if (i >= len || head[i] < '0' || head[i] > '9')
            return -1;
        *vals[k] = 0;
        while (i < len && head[i] >= '0' && head[i] <= '9')
            *vals[k] = *vals[k] * 10 + (uint64_t)(head[i++] - '0');
    }
    return (i < len && head[i] == ' ') ? 0 : -1;
}

static void echo_message(struct client *c, uint8_t opcode, uint64_t len, const uint8_t *head,
                         uint64_t now)
{
    struct worker *w = c->w;
    const struct opts *o = &w->run->o;
    uint64_t seq, ts;
    size_t hl = len < HEAD_MAX ? (size_t)len : HEAD_MAX;

    if (opcode != o->opcode || len != o->bytes || echo_parse(head, hl, &seq, &ts) < 0 ||
        seq != c->expect_seq || ts > now) {
        w->st.bad_echo++;
    } else if (now >= w->run->t_meas && now < w->run->t_end) {
        hist_add(&w->st.lat, now - ts);
        w->st.rx_bytes += len;
    }
    c->expect_seq++;
    /* A bad echo still frees its slot, so a misbehaving server cannot stall the load. */
    if (w->loading)
        echo_send(c, now);
}

const struct scenario scenario_echo = {
    .name = "echo",
    .start_cb = echo_start,
    .message_cb = echo_message,
};

/* ---- input ------------------------------------------------------------------------------- */

/* A whole control frame from the server. */
static void on_control(struct client *c, uint8_t opcode)
{
    uint8_t *p;

    if (opcode == WS_OP_PING && c->state == C_OPEN) {
        if (client_frame(c, WS_OP_PONG, c->ctrl_len, &p)) {
            memcpy(p, c->ctrl, c->ctrl_len);
            client_frame_done(c, p, c->ctrl_len);
        }
    } else if (opcode == WS_OP_CLOSE) {
        if (c->state == C_OPEN)
            c->w->st.closed++;
        client_close(c, c->state == C_OPEN ? C_DEAD : C_IDLE);
    }
}

/* Feeds server bytes to the decoder (state machine over its events). 0, or -1 if closed. */
static int client_feed(struct client *c, uint8_t *in, size_t len, uint64_t now)
{
    const struct scenario *s = c->w->run->o.scenario;
    uint8_t *out, op;
    size_t used, n, take;
    int r;

    for (;;) {
        r = ws_decode(&c->dec, in, len, &used, &out, &n);
        in += used;
        len -= used;
        if (r == WS_DEC_AGAIN) {
            return 0;
        } else if (r < 0) {
            client_warn(c->w, "bad frame from server: %s", c->dec.reason);
            c->w->st.proto_err++;
            client_close(c, C_DEAD);
            return -1;
        }
        op = c->dec.frame.opcode;
        if (r == WS_DEC_HEADER) {
            if (op >= WS_OP_CLOSE) {
                c->ctrl_len = 0;
            } else if (op != WS_OP_CONT) {
                c->msg_op = op;
                c->msg_len = 0;
            }
        } else if (r == WS_DEC_PAYLOAD && op >= WS_OP_CLOSE) {
            memcpy(c->ctrl + c->ctrl_len, out, n); /* the decoder caps control frames at 125 */
            c->ctrl_len += n;
        } else if (r == WS_DEC_PAYLOAD && c->w->run->o.multi) {
            if (c->msg_len + n > c->big_cap) {
                size_t cap = c->big_cap ? c->big_cap : 4096;
                uint8_t *b;

                while (cap < c->msg_len + n)
                    cap *= 2;
                if (!(b = realloc(c->big, cap)))
                    die("out of memory");
                c->big = b;
                c->big_cap = cap;
            }
            memcpy(c->big + c->msg_len, out, n);
            c->msg_len += n;
        } else if (r == WS_DEC_PAYLOAD) {
            take = c->msg_len < HEAD_MAX ? HEAD_MAX - (size_t)c->msg_len : 0;
            memcpy(c->head + c->msg_len, out, take < n ? take : n);
            c->msg_len += n;
        } else if (op >= WS_OP_CLOSE) { /* WS_DEC_END */
            on_control(c, op);
            if (c->state != C_OPEN && c->state != C_CLOSING)
                return -1;
        } else if (c->dec.frame.fin && c->state == C_OPEN) {
            s->message_cb(c, c->msg_op, c->msg_len, c->w->run->o.multi && c->big ? c->big : c->head,
                          now);
            if (c->state != C_OPEN)
                return -1;
        }
    }
}

/* The 101 response, possibly followed by frames. 0, or -1 if it failed (connection closed). */
static int client_handshake(struct client *c, const uint8_t *in, size_t len, uint64_t now)
{
    char *end;
    size_t hdr;

    if (c->hs_len + len > HS_MAX)
        goto fail;
    memcpy(c->hs + c->hs_len, in, len);
    c->hs_len += len;
    c->hs[c->hs_len] = '\0';
    end = strstr(c->hs, "\r\n\r\n");
    if (!end)
        return 0;
    hdr = (size_t)(end + 4 - c->hs);
    *end = '\0';
    /* The handshake is the C client's (clients/c/wsc_wire.h); no extension may be agreed, since
     * the generator never offers one. */
    bool accepted, extensions;
    if (wsc_upgrade_check(c->hs, &accepted, &extensions) != 101 || !accepted || extensions)
        goto fail;
    c->state = C_OPEN;
    c->w->st.open++;
    c->w->connecting--;
    c->w->settled++;
    /* Frames may follow the head in the same read. */
    memmove(c->w->rbuf, c->hs + hdr, c->hs_len - hdr);
    len = c->hs_len - hdr;
    free(c->hs);
    c->hs = NULL;
    return client_feed(c, c->w->rbuf, len, now);
fail:
    c->hs[c->hs_len < HS_MAX ? c->hs_len : HS_MAX] = '\0';
    client_warn(c->w, "handshake refused: %.200s", c->hs);
    client_close(c, C_DEAD);
    return -1;
}

/* ---- connections ------------------------------------------------------------------------- */

void client_close(struct client *c, enum client_state to)
{
    struct worker *w = c->w;

    if (c->fd < 0)
        return;
    if (c->state == C_OPEN && w->run->o.scenario->closed_cb)
        w->run->o.scenario->closed_cb(c);
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        w->connecting--;
        w->settled++;
        w->st.connect_err++;
    }
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->state = to;
    free(c->hs);
    c->hs = NULL;
    free(c->big);
    c->big = NULL;
    c->big_cap = 0;
}

/*
 * --bind-range: connection i gets source address first + i % count. The kernel picks the port at
 * connect time (IP_BIND_ADDRESS_NO_PORT), so the whole 4-tuple decides uniqueness and each address
 * has the full ephemeral range. 0, or -1 with errno.
 */
static int client_bind(struct client *c)
{
    const struct opts *o = &c->w->run->o;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int one = 1;

    if (c->w->run->addr.ss_family != AF_INET) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    sa.sin_addr.s_addr = htonl(o->bind_first + c->id % o->bind_count);
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
}

static void client_connect(struct worker *w, struct client *c)
{
    struct run *run = w->run;
    struct epoll_event ev = {.events = EPOLLOUT | EV_MODE, .data.ptr = c};
    int one = 1;

    c->w = w;
    c->state = C_CONNECTING;
    w->connecting++;
    c->fd = socket(run->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        client_warn(w, "socket: %s", strerror(errno));
        c->state = C_DEAD;
        w->connecting--;
        w->settled++;
        w->st.connect_err++;
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (run->o.bind_count && client_bind(c) < 0) {
        client_warn(w, "bind: %s", strerror(errno));
        client_close(c, C_DEAD);
        return;
    }
    ws_decoder_init(&c->dec, false, false, 0);
    for (int i = 0; i < 4; i++)
        c->mask[i] = (uint8_t)(rand() | 1);
    if ((connect(c->fd, (struct sockaddr *)&run->addr, run->addr_len) < 0 &&
         errno != EINPROGRESS) ||
        epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        client_warn(w, "connect: %s", strerror(errno));
        client_close(c, C_DEAD);
        return;
    }
    c->events = EPOLLOUT;
}

/* The socket connected (or failed): send the upgrade request. */
static void client_connected(struct client *c)
{
    const struct opts *o = &c->w->run->o;
    int err = 0, n;
    socklen_t el = sizeof(err);
    uint8_t *p;
    char path[512 + 256];
    const char *ph;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
        client_warn(c->w, "connect: %s", strerror(err ? err : errno));
        client_close(c, C_DEAD);
        return;
    }
    c->state = C_HANDSHAKE;
    c->hs = malloc(HS_MAX + 1);
    p = client_reserve(c, 1024);
    if (!c->hs || !p)
        die("out of memory");
    ph = c->topic ? strstr(o->path, "{topic}") : NULL;
    if (ph)
        snprintf(path, sizeof(path), "%.*s%.*s%s", (int)(ph - o->path), o->path, (int)c->topic_len,
                 c->topic, ph + 7);
    else
        snprintf(path, sizeof(path), "%s", o->path);
    n = wsc_upgrade_request((char *)p, 1024, o->host, path, o->subprotocol, NULL);
    if (n < 0)
        die("upgrade request too long for %s", path);
    c->out_len += (size_t)n;
    if (client_flush(c) < 0)
        client_close(c, C_DEAD);
}

static void on_event(struct client *c, uint32_t events)
{
    struct worker *w = c->w;
    uint64_t now;
    ssize_t n;

    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        client_connected(c);
        return;
    }
    if ((events & EPOLLOUT) && client_flush(c) < 0)
        goto lost;
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        return;
    /* Edge-triggered: read until the socket is empty. A read shorter than the buffer emptied it
     * (data that arrives later raises a new edge), which saves the read that would return EAGAIN;
     * unless the event says the stream ended: its last bytes and its end then came before this
     * event, no edge follows, and only reading until recv returns 0 (or fails) notices the close.
     */
    bool ended = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    do {
        n = recv(c->fd, w->rbuf, RBUF_SIZE, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            goto lost;
        now = now_us();
        if (now >= w->run->t_meas && now < w->run->t_end)
            w->st.reads++;
        if (c->state == C_HANDSHAKE) {
            if (client_handshake(c, w->rbuf, (size_t)n, now) < 0)
                return;
        } else if (client_feed(c, w->rbuf, (size_t)n, now) < 0) {
            return;
        }
    } while (n < 0 || ended || (size_t)n == RBUF_SIZE);
    if (client_flush(c) < 0)
        goto lost;
    return;
lost:
    if (c->state == C_OPEN)
        w->st.closed++;
    client_close(c, c->state == C_CLOSING ? C_IDLE : C_DEAD);
}

/* One epoll_wait (up to timeout_ms) and its events; how many. */
static int worker_poll(struct worker *w, int timeout_ms)
{
    struct epoll_event ev[256];
    int n = epoll_wait(w->ep, ev, 256, timeout_ms);

    if (n < 0 && errno != EINTR)
        die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr) {
            on_event(ev[i].data.ptr, ev[i].events);
        } else { /* worker_wake: its count only ended the wait */
            uint64_t v;
            if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                die("eventfd read: %s", strerror(errno));
        }
    }
    return n;
}

/*
 * --spin-us: one poll that does not sleep, if events came less than spin_us ago; false if the
 * caller should wait instead. On loopback the server's send runs the wake-up of a reader that
 * sleeps, and on a machine whose idle CPUs halt that wake-up is an interrupt to another CPU,
 * charged to the server: a reader that does not sleep between sends keeps it off the server's bill.
 */
static bool worker_spin(struct worker *w, uint64_t now)
{
    if (w->run->o.spin_us == 0 || now - w->t_event >= w->run->o.spin_us)
        return false;
    if (worker_poll(w, 0) > 0)
        w->t_event = now_us();
    return true;
}

void worker_wake(struct worker *w)
{
    uint64_t one = 1;

    if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        die("eventfd write: %s", strerror(errno));
}

/* Waits until `until` (us), handling events; during the load, the scenario's timers too. */
static void worker_run_until(struct worker *w, uint64_t until)
{
    const struct scenario *s = w->run->o.scenario;
    uint64_t now;
    int ms, t;

    while ((now = now_us()) < until) {
        ms = (int)((until - now + 999) / 1000);
        if (s->tick_cb && w->loading && (t = s->tick_cb(w, now)) >= 0 && t < ms)
            ms = t;
        if (ms > 0 && w->loading && worker_spin(w, now))
            continue;
        if (worker_poll(w, ms) > 0)
            w->t_event = now_us();
    }
}

/* ---- phases ------------------------------------------------------------------------------ */

static void worker_connect_all(struct worker *w)
{
    uint64_t deadline = now_us() + w->run->o.connect_timeout_us;

    while (w->settled < w->nc && now_us() < deadline) {
        while (w->next_connect < w->nc && w->connecting < CONNECT_BATCH)
            client_connect(w, &w->c[w->next_connect++]);
        worker_poll(w, 10);
    }
    for (unsigned i = 0; i < w->nc; i++) {
        if (w->c[i].state == C_CONNECTING || w->c[i].state == C_HANDSHAKE) {
            client_warn(w, "connection %u not open after the connect timeout", i);
            client_close(&w->c[i], C_DEAD);
        } else if (w->c[i].state == C_IDLE) {
            w->st.connect_err++; /* never started */
        }
    }
}

/*
 * Pub/sub: every subscriber sends its request, then waits for --skip-first messages (the server's
 * welcome and confirmation) so that no delivery can be missed for want of a subscription. One that
 * is not confirmed within the connect timeout is left out of the expected deliveries.
 */
static void worker_subscribe(struct worker *w)
{
    const struct scenario *s = w->run->o.scenario;
    uint64_t deadline = now_us() + w->run->o.connect_timeout_us;
    unsigned skip = w->run->o.skip_first, waiting = 1;
    struct client *c;

    for (unsigned i = 0; i < w->nc; i++) {
        c = &w->c[i];
        if (c->state == C_OPEN && (c->sub || w->run->o.hello_template)) {
            s->subscribe_cb(c, now_us());
            if (c->state == C_OPEN && client_flush(c) < 0)
                client_close(c, C_DEAD);
        }
    }
    while (waiting > 0) {
        waiting = 0;
        for (unsigned i = 0; i < w->nc; i++)
            waiting += w->c[i].state == C_OPEN && w->c[i].sub && w->c[i].rx_msgs < skip;
        if (waiting == 0 || now_us() >= deadline)
            break;
        worker_poll(w, 10);
    }
    for (unsigned i = 0; i < w->nc; i++) {
        c = &w->c[i];
        c->counted = c->sub && c->state == C_OPEN && c->rx_msgs >= skip;
        if (c->sub && !c->counted)
            w->st.unready++;
    }
    if (waiting > 0)
        client_warn(w, "%u subscriber(s) not confirmed (%u messages) within the connect timeout",
                    waiting, skip);
}

/* Pub/sub, after the load: waits up to --settle for what is still owed to the subscribers. */
static void worker_settle(struct worker *w)
{
    const struct scenario *s = w->run->o.scenario;
    uint64_t deadline = now_us() + w->run->o.settle_us;

    while (!s->settled_cb(w) && now_us() < deadline)
        worker_poll(w, 10);
}

/* Sends a close frame everywhere, waits up to DRAIN_US for the server to close, closes the rest. */
static void worker_drain(struct worker *w)
{
    uint64_t deadline = now_us() + DRAIN_US;
    unsigned left = 0;
    uint8_t *p;

    for (unsigned i = 0; i < w->nc; i++) {
        struct client *c = &w->c[i];

        if (c->state != C_OPEN)
            continue;
        c->state = C_CLOSING;
        if (!client_frame(c, WS_OP_CLOSE, 2, &p)) {
            client_close(c, C_IDLE);
            continue;
        }
        p[0] = WS_CLOSE_NORMAL >> 8;
        p[1] = WS_CLOSE_NORMAL & 0xFF;
        client_frame_done(c, p, 2);
        if (client_flush(c) < 0)
            client_close(c, C_IDLE);
        else
            left++;
    }
    while (left > 0 && now_us() < deadline) {
        worker_poll(w, 50);
        left = 0;
        for (unsigned i = 0; i < w->nc; i++)
            left += w->c[i].state == C_CLOSING;
    }
    for (unsigned i = 0; i < w->nc; i++)
        client_close(&w->c[i], C_IDLE);
}

/* --ready-file and --go-file: says this process is ready, then waits for the word to start. The
 * connections are not polled meanwhile; the wait is bounded by the connect timeout. */
static void start_together(const struct opts *o)
{
    if (o->ready_file) {
        int fd = open(o->ready_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            die("--ready-file %s: %s", o->ready_file, strerror(errno));
        close(fd);
    }
    if (!o->go_file)
        return;
    uint64_t deadline = now_us() + o->connect_timeout_us;
    while (access(o->go_file, F_OK) != 0) {
        if (now_us() >= deadline) {
            fprintf(stderr,
                    "wsload: warning: %s did not appear within the connect timeout; "
                    "starting alone\n",
                    o->go_file);
            return;
        }
        usleep(5000);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    uint64_t now, open = 0;

    worker_connect_all(w);
    w->t_open = now_us();
    if (run->o.scenario->subscribe_cb)
        worker_subscribe(w);
    w->t_subscribed = now_us();
    /* All threads connected: one of them fixes the timeline for everyone. */
    if (pthread_barrier_wait(&run->barrier) == PTHREAD_BARRIER_SERIAL_THREAD) {
        start_together(&run->o);
        run->t_load = now_us();
        run->t_meas = run->t_load + run->o.warmup_us;
        run->t_end = run->t_meas + run->o.duration_us;
        for (unsigned i = 0; i < run->nworkers; i++)
            open += run->workers[i].st.open;
        if (open == 0) /* nothing to load: skip to the report */
            run->t_meas = run->t_end = run->t_load;
    }
    pthread_barrier_wait(&run->barrier);
    w->loading = true;
    now = now_us();
    for (unsigned i = 0; i < w->nc; i++) {
        if (w->c[i].state == C_OPEN) {
            run->o.scenario->start_cb(&w->c[i], now);
            if (w->c[i].state == C_OPEN && client_flush(&w->c[i]) < 0)
                client_close(&w->c[i], C_DEAD);
        }
    }
    worker_run_until(w, run->t_meas);
    if (w->id == 0) {
        cpu_sample_take(&run->o, &run->cpu0);
    }
    worker_run_until(w, run->t_end);
    if (w->id == 0) {
        cpu_sample_take(&run->o, &run->cpu1);
    }
    w->loading = false;
    if (run->o.scenario->settled_cb) {
        /* Every thread has stopped publishing: what is owed is known from here on. */
        pthread_barrier_wait(&run->barrier);
        worker_settle(w);
    }
    worker_drain(w);
    return NULL;
}

#define WARN_MAX 5

void client_warn(struct worker *w, const char *fmt, ...)
{
    va_list ap;

    if (w->warned >= WARN_MAX)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "wsload: [thread %u] ", w->id);
    vfprintf(stderr, fmt, ap);
    fputs(++w->warned == WARN_MAX ? " (further errors of this thread only counted)\n" : "\n",
          stderr);
    va_end(ap);
}

int main(int argc, char **argv)
{
    struct run *run = calloc(1, sizeof(*run));
    struct worker *w;
    struct stats total = {0};
    struct client *all;
    unsigned per, first = 0;

    if (!run)
        die("out of memory");
    parse_args(&run->o, argc, argv);
    if (run->o.scenario->setup_cb)
        run->o.scenario->setup_cb(run);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)now_us() ^ (unsigned)getpid());
    resolve(run);
    raise_nofile(run->o.conns);
    w = calloc(run->o.threads, sizeof(*w));
    all = calloc(run->o.conns, sizeof(*all));
    if (!w || !all)
        die("out of memory");
    pthread_barrier_init(&run->barrier, NULL, run->o.threads);
    run->workers = w;
    run->nworkers = run->o.threads;
    run->clients = all;
    cpu_sample_take(&run->o, &run->cpu_start);
    run->t_start = now_us();
    for (unsigned i = 0; i < run->o.threads; i++) {
        per = run->o.conns / run->o.threads + (i < run->o.conns % run->o.threads);
        w[i] = (struct worker){.id = i, .run = run, .c = all + first, .nc = per};
        for (unsigned j = 0; j < per; j++) {
            all[first + j] = (struct client){.fd = -1, .w = &w[i], .id = first + j};
            if (run->o.scenario->client_init_cb)
                run->o.scenario->client_init_cb(run, &all[first + j]);
        }
        first += per;
        w[i].ep = epoll_create1(EPOLL_CLOEXEC);
        w[i].wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w[i].ep < 0 || w[i].wake_fd < 0 ||
            epoll_ctl(w[i].ep, EPOLL_CTL_ADD, w[i].wake_fd,
                      &(struct epoll_event){.events = EPOLLIN, .data.ptr = NULL}) < 0)
            die("epoll_create1, eventfd: %s", strerror(errno));
        /* One worker runs on the main thread: the process stays single-threaded, so the kernel's
         * file lookup in every recv and send takes no reference (fdget's fast path). */
        if (run->o.threads > 1 && pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
            die("pthread_create failed");
    }
    if (run->o.threads == 1)
        worker_main(&w[0]);
    for (unsigned i = 0; i < run->o.threads; i++) {
        if (run->o.threads > 1)
            pthread_join(w[i].thread, NULL);
        stats_merge(&total, &w[i].st);
    }
    /* Only once every thread is done: a late delivery on one may still wake another. */
    for (unsigned i = 0; i < run->o.threads; i++) {
        close(w[i].ep);
        close(w[i].wake_fd);
    }
    report(run, &total);
    if (run->o.scenario->idle && total.open > 0)
        return 0;
    if (total.open == 0 || total.lat.count == 0) {
        fprintf(stderr, "wsload: no round trip completed\n");
        return 1;
    }
    return 0;
}
