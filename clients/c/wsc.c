/* wsc.c - a blocking WebSocket client for tests and tools (see wsc.h). */
#include "wsc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsc_wire.h"

static long long clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more bytes into c->buf within the deadline. Returns bytes read, 0 at EOF, -1 on
 * timeout or error. */
static ssize_t fill(struct wsc *c, long long deadline)
{
    if (c->len == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 65536;
        uint8_t *nb = realloc(c->buf, ncap);
        if (!nb)
            return -1;
        c->buf = nb;
        c->cap = ncap;
    }
    /* A signal handled by the application (without SA_RESTART) interrupts the wait: it goes on
     * until the deadline. */
    int ready;
    do {
        long long left = deadline - clock_ms();
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (left <= 0)
            return -1;
        ready = poll(&pfd, 1, (int)left);
    } while (ready < 0 && errno == EINTR);
    if (ready <= 0)
        return -1;
    ssize_t r;
    do
        r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0)
        c->len += (size_t)r;
    return r < 0 ? -1 : r;
}

static int open_socket(struct wsc *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->rng = (uint32_t)clock_ms() | 1u;
    ws_decoder_init(&c->dec, false, true, 0);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

int wsc_connect_raw(struct wsc *c, int port, const char *request, char *head, size_t cap)
{
    if (open_socket(c, port) < 0 || send_all(c->fd, request, strlen(request)) < 0)
        return -1;
    long long deadline = clock_ms() + 10000;
    uint8_t *end;
    while (!(end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL))
        if (fill(c, deadline) <= 0)
            return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    size_t n = hl < cap ? hl : cap - 1;
    memcpy(head, c->buf, n);
    head[n] = '\0';
    /* Bytes after the head are already frames. */
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    return atoi(head + 9);
}

int wsc_connect(struct wsc *c, int port, const char *path, const char *extra, char *head,
                size_t cap)
{
    char req[4096], host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%d", port);
    if (wsc_upgrade_request(req, sizeof(req), host, path, NULL, extra) < 0)
        return -1;
    return wsc_connect_raw(c, port, req, head, cap);
}

static uint32_t next_rand(struct wsc *c)
{
    /* xorshift32: masks need not be secret in tests, only varied. */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 17;
    c->rng ^= c->rng << 5;
    return c->rng;
}

int wsc_send_frame(struct wsc *c, bool fin, unsigned rsv, uint8_t opcode, const void *data,
                   size_t len, bool masked)
{
    uint8_t mask[4];
    uint32_t r = next_rand(c);
    memcpy(mask, &r, 4);
    uint8_t *frame = malloc(14 + len);
    if (!frame)
        return -1;
    size_t hl = wsc_frame_header(frame, fin, rsv, opcode, len, masked ? mask : NULL);
    if (len)
        memcpy(frame + hl, data, len);
    if (masked)
        ws_mask(frame + hl, len, mask, 0);
    int rc = send_all(c->fd, frame, hl + len);
    free(frame);
    return rc;
}

int wsc_send(struct wsc *c, uint8_t opcode, const void *data, size_t len)
{
    return wsc_send_frame(c, true, 0, opcode, data, len, true);
}

int wsc_send_raw(struct wsc *c, const void *data, size_t len)
{
    return send_all(c->fd, data, len);
}

/* Decodes one whole frame from the buffered bytes, if there is one. Returns 1 (f filled), 0 (need
 * more bytes) or a negative close code. The decoder's state survives between calls. */
static int decode_frame(struct wsc *c, struct wsc_frame *f)
{
    size_t used = 0;
    for (;;) {
        size_t k = 0, n = 0;
        uint8_t *p = NULL;
        int ev = ws_decode(&c->dec, c->buf + used, c->len - used, &k, &p, &n);
        used += k;
        if (ev < 0)
            return ev;
        if (ev == WS_DEC_AGAIN)
            break;
        if (ev == WS_DEC_HEADER) {
            f->fin = c->dec.frame.fin;
            f->rsv1 = c->dec.frame.rsv1;
            f->opcode = c->dec.frame.opcode;
        } else if (ev == WS_DEC_PAYLOAD) {
            uint8_t *nd = realloc(f->data, f->len + n + 1);
            if (!nd)
                return -1;
            f->data = nd;
            memcpy(f->data + f->len, p, n);
            f->len += n;
        } else if (ev == WS_DEC_END) {
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            if (!f->data)
                f->data = calloc(1, 1);
            f->data[f->len] = '\0';
            return 1;
        }
    }
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    return 0;
}

int wsc_recv(struct wsc *c, struct wsc_frame *f, int timeout_ms)
{
    memset(f, 0, sizeof(*f));
    long long deadline = clock_ms() + timeout_ms;
    for (;;) {
        int rc = decode_frame(c, f);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            wsc_frame_free(f);
            return rc;
        }
        ssize_t r = fill(c, deadline);
        if (r <= 0) {
            wsc_frame_free(f);
            return r == 0 ? 1 : -1;
        }
    }
}

int wsc_recv_message(struct wsc *c, struct wsc_frame *f, int timeout_ms)
{
    struct wsc_frame part;
    memset(f, 0, sizeof(*f));
    for (;;) {
        int rc = wsc_recv(c, &part, timeout_ms);
        if (rc != 0) {
            wsc_frame_free(f);
            return rc;
        }
        if (part.opcode >= WS_OP_CLOSE && f->data) {
            wsc_frame_free(&part); /* control frame between fragments */
            continue;
        }
        if (part.opcode >= WS_OP_CLOSE || (!f->data && part.fin)) {
            *f = part;
            return 0;
        }
        uint8_t *nd = realloc(f->data, f->len + part.len + 1);
        memcpy(nd + f->len, part.data, part.len);
        f->data = nd;
        f->len += part.len;
        f->data[f->len] = '\0';
        if (part.opcode != WS_OP_CONT) {
            f->opcode = part.opcode;
            f->rsv1 = part.rsv1;
        }
        bool fin = part.fin;
        wsc_frame_free(&part);
        if (fin) {
            f->fin = true;
            return 0;
        }
    }
}

void wsc_frame_free(struct wsc_frame *f)
{
    free(f->data);
    f->data = NULL;
    f->len = 0;
}

void wsc_close(struct wsc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

int wsc_expect_close(struct wsc *c, int timeout_ms)
{
    long long deadline = clock_ms() + timeout_ms;
    for (;;) {
        struct wsc_frame f;
        long long left = deadline - clock_ms();
        int rc = wsc_recv(c, &f, left > 0 ? (int)left : 0);
        if (rc == 1)
            return 1006;
        if (rc != 0)
            return -1;
        if (f.opcode == WS_OP_CLOSE) {
            int code = f.len >= 2 ? (f.data[0] << 8 | f.data[1]) : 1005;
            wsc_frame_free(&f);
            return code;
        }
        wsc_frame_free(&f);
    }
}

int wsc_wait_eof(struct wsc *c, int timeout_ms)
{
    long long deadline = clock_ms() + timeout_ms;
    for (;;) {
        c->len = 0; /* drop whatever arrives */
        ssize_t r = fill(c, deadline);
        if (r == 0)
            return 1;
        if (r < 0) /* an error before the deadline is a reset: closed too */
            return clock_ms() < deadline ? 1 : 0;
    }
}
