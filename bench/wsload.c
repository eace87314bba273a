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
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
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

/* ---- latency histogram ------------------------------------------------------------------- */

/*
 * Log-linear, like HdrHistogram: values below 256 us have their own bucket, above that each power
 * of two is split into 128 buckets, so a bucket is at most 1/128 (0.8%) wide relative to its
 * value. Values are clamped at 2^40 us. Fixed size, no allocation.
 */
static unsigned hist_index(uint64_t v)
{
    unsigned shift;

    if (v >= (1ULL << HIST_MAX_BITS))
        v = (1ULL << HIST_MAX_BITS) - 1;
    if (v < (2u << HIST_SUB_BITS))
        return (unsigned)v;
    shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
    return (shift << HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned i)
{
    unsigned shift;

    if (i < (2u << HIST_SUB_BITS))
        return i;
    shift = (i >> HIST_SUB_BITS) - 1;
    return ((uint64_t)(i - (shift << HIST_SUB_BITS)) << shift) + ((1ULL << shift) >> 1);
}

void hist_add(struct hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_N; i++)
        to->n[i] += from->n[i];
    to->count += from->count;
    to->sum += from->sum;
    if (from->max > to->max)
        to->max = from->max;
}

/* The value at quantile q (0..1): the smallest bucket holding at least q of the samples. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->count + 0.999999), seen = 0, v;

    if (h->count == 0)
        return 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_N; i++) {
        seen += h->n[i];
        if (seen >= want) {
            v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

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

static const struct scenario scenario_echo = {
    .name = "echo",
    .start_cb = echo_start,
    .message_cb = echo_message,
};

static const struct scenario *const scenarios[] = {&scenario_echo, &scenario_fanout,
                                                   &scenario_rooms, &scenario_connect};

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

/* One epoll_wait (up to timeout_ms) and its events. */
static void worker_poll(struct worker *w, int timeout_ms)
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
        worker_poll(w, ms);
    }
}

/* ---- CPU accounting ---------------------------------------------------------------------- */

/* utime+stime of a process (all its threads) in clock ticks, or -1. */
static long long proc_ticks(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* VmRSS of a process in KiB, or -1. */
static long long proc_rss_kib(int pid)
{
    char path[64], line[256];
    long long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void cpu_sample_take(const struct opts *o, struct cpu_sample *s)
{
    unsigned long long v[8] = {0};
    long long t;
    FILE *f;

    s->wall_us = now_us();
    getrusage(RUSAGE_SELF, &s->self);
    s->server_ticks = o->nserver_pid ? 0 : -1;
    for (unsigned i = 0; i < o->nserver_pid && s->server_ticks >= 0; i++)
        s->server_ticks = (t = proc_ticks(o->server_pid[i])) < 0 ? -1 : s->server_ticks + t;
    s->server_rss_kib = o->nserver_pid ? 0 : -1;
    for (unsigned i = 0; i < o->nserver_pid && s->server_rss_kib >= 0; i++)
        s->server_rss_kib = (t = proc_rss_kib(o->server_pid[i])) < 0 ? -1 : s->server_rss_kib + t;
    s->sys_busy = s->sys_all = 0;
    f = fopen("/proc/stat", "re");
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8) {
        s->sys_busy = v[0] + v[1] + v[2] + v[5] + v[6];
        for (int i = 0; i < 8; i++)
            s->sys_all += v[i];
    }
    if (f)
        fclose(f);
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

/* ---- options and report ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs(
        "usage: wsload --url ws://HOST:PORT/PATH [options]\n"
        "  --scenario NAME      what to run: echo, fanout, rooms or connect (echo)\n"
        "  -c, --conns N        connections (100); fanout: subscribers (plus one publisher)\n"
        "  -w, --inflight N     messages in flight per connection (1); fanout: published\n"
        "                       messages not yet delivered (--window)\n"
        "  -b, --bytes N        message size, at least 32 (64); pub/sub: the payload's size\n"
        "  -d, --duration S     measured seconds after the warm-up (10)\n"
        "      --warmup S       seconds of load before measuring (2)\n"
        "      --text           send text messages\n"
        "      --binary         send binary messages (default)\n"
        "  -t, --threads N      threads, each with its own epoll and share of the conns (1)\n"
        "      --connect-timeout S  time to open and upgrade all connections (10)\n"
        "      --server-pid PID     report this process's CPU time per message (repeatable)\n"
        "      --subprotocol NAME   offer this Sec-WebSocket-Protocol\n"
        "      --bind-range A-B     source IPv4 addresses A..B, in turn (many connections)\n"
        "      --ready-file PATH    create PATH once every connection is open (and subscribed)\n"
        "      --go-file PATH       then start the load only when PATH exists (waiting at most\n"
        "                           --connect-timeout): several wsloads start together\n"
        "pub/sub (fanout, rooms, connect; messages are text):\n"
        "      --sub-template TEXT  sent by each subscriber, {topic} replaced (SUB {topic});\n"
        "                           empty: none (the URL path's {topic} subscribes)\n"
        "      --pub-template TEXT  each publication, {topic}, {payload} and {len} (the\n"
        "                           payload's length) replaced (PUB {topic} {payload})\n"
        "      --hello-template TEXT  sent first by every connection, subscriber or not\n"
        "      --multi              a message may hold several deliveries (NATS puts several\n"
        "                           MSG lines in one frame): scan all of it, not its head\n"
        "  the URL path may hold {topic}: each connection's own topic\n"
        "      --skip-first N       messages a subscriber receives before its deliveries\n"
        "                           (welcome, ack): waited for before the load (0)\n"
        "      --topic NAME         fanout's topic; rooms' prefix, room k is NAME.k (bench)\n"
        "      --rooms R            rooms: clients i and j share a room if i = j mod R (10)\n"
        "      --rate R             rooms: messages/s each client publishes (1)\n"
        "      --settle S           after the load, wait for deliveries still due (5)\n"
        "      --window all|probe   fanout: a message is in flight until all subscribers\n"
        "                           have it, or only the first one (all)\n"
        "connect (-c connections open, subscribe, then stay idle for --warmup + -d):\n"
        "      --own-topics         connection i subscribes to TOPIC.i (default: all to TOPIC.0)\n"
        "      --server-pid PID     also gives the server's VmRSS growth per connection\n",
        f);
}

/* Seconds, optionally with a trailing 's' ("10", "2.5s"), to microseconds; -1 if bad. */
static long long parse_secs(const char *s, bool zero_ok)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || (*end && strcmp(end, "s") != 0) || v < 0 || v > 86400 || (!zero_ok && v == 0))
        return -1;
    return (long long)(v * 1e6);
}

static unsigned parse_uint(const char *s, const char *what, unsigned long max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (end == s || *end || v == 0 || v > max) {
        fprintf(stderr, "wsload: bad %s '%s' (1..%lu)\n", what, s, max);
        exit(2);
    }
    return (unsigned)v;
}

/* ws://HOST[:PORT][/PATH]; HOST may be [IPv6]. */
static void parse_url(struct opts *o)
{
    const char *h, *slash, *colon;
    size_t hl;

    if (strncmp(o->url, "ws://", 5) != 0)
        die("--url must start with ws:// (got '%s')", o->url);
    h = o->url + 5;
    slash = strchr(h, '/');
    hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof(o->host) || strlen(slash ? slash : "/") >= sizeof(o->path))
        die("bad --url '%s'", o->url);
    memcpy(o->host, h, hl);
    o->host[hl] = '\0';
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
    colon = strrchr(o->host, ':');
    if (colon && !strchr(colon, ']')) {
        if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(o->port))
            die("bad port in --url '%s'", o->url);
        snprintf(o->port, sizeof(o->port), "%s", colon + 1);
    } else {
        snprintf(o->port, sizeof(o->port), "80");
    }
}

/* A.B.C.D-E.F.G.H (or one address) into o->bind_first and o->bind_count. */
static void parse_bind_range(struct opts *o, const char *s)
{
    char a[32], b[32];
    const char *dash = strchr(s, '-');
    struct in_addr ia, ib;
    size_t al = dash ? (size_t)(dash - s) : strlen(s);

    if (al >= sizeof(a) || (dash && strlen(dash + 1) >= sizeof(b)))
        goto bad;
    snprintf(a, sizeof(a), "%.*s", (int)al, s);
    snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
    if (inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1 ||
        ntohl(ib.s_addr) < ntohl(ia.s_addr) || ntohl(ib.s_addr) - ntohl(ia.s_addr) >= 65536)
        goto bad;
    o->bind_first = ntohl(ia.s_addr);
    o->bind_count = ntohl(ib.s_addr) - ntohl(ia.s_addr) + 1;
    return;
bad:
    fprintf(stderr, "wsload: bad --bind-range '%s' (e.g. 127.0.0.1-127.0.0.8)\n", s);
    exit(2);
}

enum {
    OPT_SUBPROTO = 256,
    OPT_BIND,
    OPT_SUB_TPL,
    OPT_PUB_TPL,
    OPT_SKIP,
    OPT_TOPIC,
    OPT_ROOMS,
    OPT_RATE,
    OPT_SETTLE,
    OPT_WINDOW,
    OPT_OWN_TOPICS,
    OPT_HELLO_TPL,
    OPT_MULTI,
    OPT_READY_FILE,
    OPT_GO_FILE,
};

static void parse_args(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},
        {"scenario", required_argument, NULL, 's'},
        {"conns", required_argument, NULL, 'c'},
        {"inflight", required_argument, NULL, 'w'},
        {"bytes", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'W'},
        {"text", no_argument, NULL, 'T'},
        {"binary", no_argument, NULL, 'B'},
        {"threads", required_argument, NULL, 't'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"server-pid", required_argument, NULL, 'P'},
        {"subprotocol", required_argument, NULL, OPT_SUBPROTO},
        {"bind-range", required_argument, NULL, OPT_BIND},
        {"sub-template", required_argument, NULL, OPT_SUB_TPL},
        {"pub-template", required_argument, NULL, OPT_PUB_TPL},
        {"skip-first", required_argument, NULL, OPT_SKIP},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"rooms", required_argument, NULL, OPT_ROOMS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"settle", required_argument, NULL, OPT_SETTLE},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"own-topics", no_argument, NULL, OPT_OWN_TOPICS},
        {"hello-template", required_argument, NULL, OPT_HELLO_TPL},
        {"multi", no_argument, NULL, OPT_MULTI},
        {"ready-file", required_argument, NULL, OPT_READY_FILE},
        {"go-file", required_argument, NULL, OPT_GO_FILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *scen = "echo";
    char *end;
    long long us;
    int ch;

    *o = (struct opts){.conns = 100,
                       .inflight = 1,
                       .threads = 1,
                       .bytes = 64,
                       .opcode = WS_OP_BINARY,
                       .duration_us = 10000000,
                       .warmup_us = 2000000,
                       .connect_timeout_us = 10000000,
                       .sub_template = "SUB {topic}",
                       .pub_template = "PUB {topic} {payload}",
                       .topic = "bench",
                       .rooms = 10,
                       .rate = 1,
                       .window = "all",
                       .settle_us = 5000000};
    while ((ch = getopt_long(argc, argv, "c:w:b:d:t:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 's':
            scen = optarg;
            break;
        case 'c':
            o->conns = parse_uint(optarg, "connection count", 1000000);
            break;
        case 'w':
            o->inflight = parse_uint(optarg, "in-flight count", 1000000);
            break;
        case 'b':
            o->bytes = parse_uint(optarg, "message size", MAX_BYTES);
            break;
        case 't':
            o->threads = parse_uint(optarg, "thread count", 256);
            break;
        case 'T':
            o->opcode = WS_OP_TEXT;
            break;
        case 'B':
            o->opcode = WS_OP_BINARY;
            break;
        case OPT_SUBPROTO:
            o->subprotocol = optarg;
            break;
        case OPT_BIND:
            parse_bind_range(o, optarg);
            break;
        case OPT_SUB_TPL:
            o->sub_template = optarg;
            break;
        case OPT_PUB_TPL:
            o->pub_template = optarg;
            break;
        case OPT_SKIP:
            o->skip_first = strcmp(optarg, "0") == 0 ? 0 : parse_uint(optarg, "--skip-first", 1000);
            break;
        case OPT_WINDOW:
            o->window = optarg;
            break;
        case OPT_OWN_TOPICS:
            o->own_topics = true;
            break;
        case OPT_HELLO_TPL:
            o->hello_template = optarg;
            break;
        case OPT_MULTI:
            o->multi = true;
            break;
        case OPT_READY_FILE:
            o->ready_file = optarg;
            break;
        case OPT_GO_FILE:
            o->go_file = optarg;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_ROOMS:
            o->rooms = parse_uint(optarg, "room count", 1000000);
            break;
        case OPT_RATE:
            o->rate = strtod(optarg, &end);
            if (end == optarg || *end || !(o->rate > 0 && o->rate <= 1e6)) {
                fprintf(stderr, "wsload: bad --rate '%s' (messages/s per client)\n", optarg);
                exit(2);
            }
            break;
        case 'd':
        case 'W':
        case 'C':
        case OPT_SETTLE:
            if ((us = parse_secs(optarg, ch == 'W' || ch == OPT_SETTLE)) < 0) {
                fprintf(stderr, "wsload: bad duration '%s' (seconds, e.g. 10 or 2.5s)\n", optarg);
                exit(2);
            }
            *(ch == 'd'          ? &o->duration_us
              : ch == 'W'        ? &o->warmup_us
              : ch == OPT_SETTLE ? &o->settle_us
                                 : &o->connect_timeout_us) = (uint64_t)us;
            break;
        case 'P':
            if (o->nserver_pid == sizeof(o->server_pid) / sizeof(o->server_pid[0])) {
                fprintf(stderr, "wsload: at most 8 --server-pid\n");
                exit(2);
            }
            o->server_pid[o->nserver_pid++] = (int)parse_uint(optarg, "pid", 1u << 30);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || !o->url) {
        usage(stderr);
        exit(2);
    }
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (strcmp(scen, scenarios[i]->name) == 0)
            o->scenario = scenarios[i];
    if (!o->scenario) {
        fprintf(stderr, "wsload: unknown scenario '%s' (have: echo, fanout, rooms, connect)\n",
                scen);
        exit(2);
    }
    if (o->bytes < MIN_BYTES) {
        fprintf(stderr, "wsload: -b must be at least %d (the payload carries seq and ts)\n",
                MIN_BYTES);
        exit(2);
    }
    if (o->threads > o->conns)
        o->threads = o->conns;
    parse_url(o);
}

static void resolve(struct run *run)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char host[256];
    size_t hl = strcspn(run->o.host, ":");
    int r;

    if (run->o.host[0] == '[') /* [IPv6]:port */
        snprintf(host, sizeof(host), "%.*s", (int)(strcspn(run->o.host, "]") - 1), run->o.host + 1);
    else
        snprintf(host, sizeof(host), "%.*s", (int)hl, run->o.host);
    r = getaddrinfo(host, run->o.port, &hints, &ai);
    if (r != 0)
        die("cannot resolve '%s': %s", host, gai_strerror(r));
    memcpy(&run->addr, ai->ai_addr, ai->ai_addrlen);
    run->addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

/* Enough file descriptors for the connections, if the hard limit allows. */
static void raise_nofile(unsigned conns)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)conns + 64
                          ? (rlim_t)conns + 64
                          : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static double tv_secs(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void stats_merge(struct stats *to, const struct stats *from)
{
    const uint64_t *f = &from->rx_bytes;
    uint64_t *t = &to->rx_bytes;

    hist_merge(&to->lat, &from->lat);
    /* Every field after the histogram is a uint64_t counter. */
    for (size_t i = 0; i < (sizeof(*to) - offsetof(struct stats, rx_bytes)) / sizeof(uint64_t); i++)
        t[i] += f[i];
}

static void report(const struct run *run, const struct stats *st)
{
    const struct opts *o = &run->o;
    double secs = (double)(run->t_end - run->t_meas) / 1e6;
    double rate = secs > 0 ? (double)st->lat.count / secs : 0;
    const struct cpu_sample *c0 = &run->cpu0, *c1 = &run->cpu1;
    double cpu = tv_secs(&c1->self.ru_utime) + tv_secs(&c1->self.ru_stime) -
                 tv_secs(&c0->self.ru_utime) - tv_secs(&c0->self.ru_stime);
    double wall = (double)(c1->wall_us - c0->wall_us) / 1e6;
    double hz = (double)sysconf(_SC_CLK_TCK);
    bool have_srv = c0->server_ticks >= 0 && c1->server_ticks >= 0;
    double srv = have_srv ? (double)(c1->server_ticks - c0->server_ticks) / hz : 0;
    double all = (double)(c1->sys_all - c0->sys_all) / hz, other;
    char srv_json[160] = "null,\"server_cpu_pct\":null,\"server_cpu_us_per_msg\":null";
    char srv_txt[96] = "", extra[1024] = "", rss[96];
    double cpu_pct = wall > 0.001 ? cpu * 100 / wall : 0;
    /* Voluntary context switches of all our threads: each is a wait that blocked, so a server's
     * send that finds its reader there pays for waking it (on loopback, in the server's CPU). */
    double sleeps = (double)(c1->self.ru_nvcsw - c0->self.ru_nvcsw);
    double cpu_per = st->lat.count ? cpu * 1e6 / (double)st->lat.count : 0;
    double mean = st->lat.count ? (double)st->lat.sum / (double)st->lat.count : 0;
    uint64_t errors = st->connect_err + st->proto_err + st->bad_echo + st->closed;
    uint64_t p50 = hist_quantile(&st->lat, 0.50), p90 = hist_quantile(&st->lat, 0.90);
    uint64_t p99 = hist_quantile(&st->lat, 0.99), p999 = hist_quantile(&st->lat, 0.999);
    const char *type = o->opcode == WS_OP_TEXT ? "text" : "binary";

    /*
     * Other load: the machine's busy time minus the server's and ours, as % of all CPUs' time.
     * Busy includes irq and softirq: loopback TCP runs in softirq in the context of the sending
     * process, and the kernel charges that time to the process's stime as well as to /proc/stat's
     * softirq, so leaving softirq out of busy would hide other load (busy - ours < 0).
     */
    if (run->cpu_start.server_rss_kib >= 0 && c1->server_rss_kib >= 0)
        snprintf(rss, sizeof(rss), "%lld,\"server_rss_end_kib\":%lld",
                 run->cpu_start.server_rss_kib, c1->server_rss_kib);
    else
        snprintf(rss, sizeof(rss), "null,\"server_rss_end_kib\":null");
    other = (double)(c1->sys_busy - c0->sys_busy) / hz - cpu - srv;
    other = all > 0 && other > 0 ? other * 100 / all : 0;
    if (have_srv) {
        snprintf(srv_json, sizeof(srv_json),
                 "%.3f,\"server_cpu_pct\":%.1f,\"server_cpu_us_per_msg\":%.3f", srv,
                 wall > 0.001 ? srv * 100 / wall : 0,
                 st->lat.count ? srv * 1e6 / (double)st->lat.count : 0);
        snprintf(srv_txt, sizeof(srv_txt), ", server CPU %.2f us/msg",
                 st->lat.count ? srv * 1e6 / (double)st->lat.count : 0);
    }

    printf("wsload %s %s: %u conns (%" PRIu64 " open) x %u in flight, %zu B %s, %u thread(s), "
           "%.1f s: %.0f msg/s, latency us p50 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64
           " max %" PRIu64 ", errors %" PRIu64 ", generator CPU %.2f s (%.0f%% of a core, "
           "%.2f us/msg)%s, other load %.1f%%\n",
           o->scenario->name, o->url, o->conns, st->open, o->inflight, o->bytes, type, o->threads,
           secs, rate, p50, p99, p999, st->lat.max, errors, cpu, cpu_pct, cpu_per, srv_txt, other);
    /* The scenario's own readable line, then its JSON fields (appended below). */
    if (o->scenario->report_cb)
        o->scenario->report_cb(run, st, extra, sizeof(extra));
    printf("JSON {\"tool\":\"wsload\",\"scenario\":\"%s\",\"url\":\"%s\",\"conns\":%u,"
           "\"open\":%" PRIu64 ",\"inflight\":%u,\"bytes\":%zu,\"type\":\"%s\",\"threads\":%u,"
           "\"duration_s\":%.3f,\"warmup_s\":%.3f,\"messages\":%" PRIu64 ",\"msgs_per_s\":%.1f,"
           "\"rx_bytes\":%" PRIu64 ",\"reads\":%" PRIu64
           ",\"msgs_per_read\":%.2f,\"lat_mean_us\":%.1f,\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64
           ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
           ",\"bad_echoes\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"gen_cpu_s\":%.3f,"
           "\"gen_cpu_pct\":%.1f,\"gen_cpu_us_per_msg\":%.3f,\"gen_sleeps_per_s\":%.0f,"
           "\"server_cpu_s\":%s,"
           "\"other_cpu_pct\":%.1f,\"server_rss_start_kib\":%s%s}\n",
           o->scenario->name, o->url, o->conns, st->open, o->inflight, o->bytes, type, o->threads,
           secs, (double)o->warmup_us / 1e6, st->lat.count, rate, st->rx_bytes, st->reads,
           st->reads ? (double)st->lat.count / (double)st->reads : 0, mean, p50, p90, p99, p999,
           st->lat.max, errors, st->connect_err, st->proto_err, st->bad_echo, st->closed, cpu,
           cpu_pct, cpu_per, wall > 0.001 ? sleeps / wall : 0, srv_json, other, rss, extra);
    fflush(stdout);
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
