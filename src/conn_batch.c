/* conn_batch.c - a worker's sends to many connections in one io_uring submission (see
 * conn_batch.h). */
#include "conn_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "conn_internal.h"
#include "outq.h"
#include "sendring.h"
#include "stats.h"

#define BATCH_SENDS 256          /* a broker wake batch's connections */
#define BATCH_IOV   4096         /* iovecs of the sends that are not gathered into one piece */
#define BATCH_STAGE (512 * 1024) /* bytes gathered into one piece per send, for all sends */

struct batch_send {
    struct conn *c;
    struct msghdr msg;
    size_t len; /* bytes the send carries */
    int flags;  /* MSG_MORE when the queue holds more than this send describes */
    bool more;  /* after it, the turn had more to do (deliveries, output, input) */
};

struct conn_batch {
    struct sendring *ring;
    unsigned n, iov_used;
    size_t stage_used;
    struct batch_send sends[BATCH_SENDS];
    int res[BATCH_SENDS];
    struct iovec iov[BATCH_IOV];
    char stage[BATCH_STAGE];
};

/* The batch open on this thread, between conn_batch_begin and conn_batch_end. */
static __thread struct conn_batch *batch_open;

struct conn_batch *conn_batch_new(int *err)
{
    struct conn_batch *b = malloc(sizeof(*b));
    if (!b) {
        *err = -ENOMEM;
        return NULL;
    }
    b->ring = sendring_new(BATCH_SENDS, err);
    if (!b->ring) {
        free(b);
        return NULL;
    }
    b->n = b->iov_used = 0;
    b->stage_used = 0;
    return b;
}

void conn_batch_free(struct conn_batch *b)
{
    if (!b)
        return;
    sendring_free(b->ring);
    free(b);
}

void conn_batch_begin(struct conn_batch *b)
{
    batch_open = b;
}

/* Whether the batch has a slot and the iovecs for one more send of any shape. */
static bool has_room(const struct conn_batch *b)
{
    return b->n < BATCH_SENDS && b->iov_used + OUTQ_IOV <= BATCH_IOV;
}

bool conn_batch_defer(struct conn *c, bool more)
{
    struct conn_batch *b = batch_open;
    if (!b || c->state != CONN_WS || c->close_after || c->peer_eof || outq_bytes(&c->out) == 0 ||
        !has_room(b) ||
        sendring_room(b->ring) == 0 /* the ring failed (sendring.h): ordinary sends only */)
        return false;
    size_t stage_left = BATCH_STAGE - b->stage_used;
    char *stage = b->stage + b->stage_used;
    struct iovec *iov = b->iov + b->iov_used;
    int follows;
    int n = outq_prepare(&c->out, iov, OUTQ_IOV, stage,
                         stage_left < OUTQ_GATHER_MAX ? stage_left : OUTQ_GATHER_MAX, &follows);
    if (n == 0)
        return false;
    struct batch_send *s = &b->sends[b->n];
    s->c = c;
    s->msg = (struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n};
    s->len = 0;
    for (int k = 0; k < n; k++)
        s->len += iov[k].iov_len;
    s->flags = follows ? MSG_MORE : 0;
    s->more = more || follows || dmsg_len(&c->in) > 0;
    if (iov[0].iov_base == stage)
        b->stage_used += s->len;
    b->iov_used += (unsigned)n;
    b->n++;
    return true;
}

/* Accounts for one send of the batch and finishes its connection's turn. */
static void batch_finish(struct batch_send *s, int res, bool batched, int worker)
{
    struct conn *c = s->c;
    if (res == SENDRING_UNKNOWN) {
        conn_turn_close(c, worker); /* some of it may have gone: it cannot be made again */
        return;
    }
    if (res > 0) {
        outq_sent(&c->out, (size_t)res);
        STATS_COUNT(bytes_out, (uint64_t)res);
        STATS_COUNT(sends, 1);
        if (batched)
            STATS_COUNT(batched_sends, 1);
    }
    /* Another turn, made the ordinary way, when the send went whole and the turn has more to do,
     * or when it failed: nothing of it went, and the ordinary sendmsg either makes it or meets the
     * socket's error and closes the connection as any turn would (an error of the ring's own, an
     * operation a sandbox refuses, must not close healthy connections). A partial send or -EAGAIN
     * means the socket is full: the re-arm asks for EPOLLOUT, as after an ordinary send. */
    bool again = res > 0 ? (size_t)res == s->len && s->more : res < 0 && res != -EAGAIN;
    conn_turn_resume(c, worker, again);
}

/* Makes the queued sends (one alone with a plain sendmsg: the ring would only add its own cost)
 * and finishes their turns. Those turns send the ordinary way: the batch's arrays are being
 * read, so nothing may be queued in it until they are done. */
static void flush(struct conn_batch *b, int worker)
{
    batch_open = NULL;
    unsigned n = b->n;
    bool batched = n > 1;
    if (batched) {
        for (unsigned i = 0; i < n; i++)
            sendring_add(b->ring, b->sends[i].c->fd, &b->sends[i].msg, b->sends[i].flags);
        n = sendring_submit(b->ring, b->res);
        STATS_COUNT(batch_submissions, 1);
    } else {
        struct batch_send *s = &b->sends[0];
        ssize_t w = sendmsg(s->c->fd, &s->msg, s->flags | MSG_NOSIGNAL | MSG_DONTWAIT);
        b->res[0] = w < 0 ? -errno : (int)w;
    }
    for (unsigned i = 0; i < n; i++)
        batch_finish(&b->sends[i], b->res[i], batched, worker);
    b->n = b->iov_used = 0;
    b->stage_used = 0;
}

bool conn_batch_full(void)
{
    const struct conn_batch *b = batch_open;
    /* A send that finds the stage short goes scattered, not ordinary: flushing is still better. */
    return b && (!has_room(b) || BATCH_STAGE - b->stage_used < OUTQ_GATHER_MAX);
}

void conn_batch_flush(int worker)
{
    struct conn_batch *b = batch_open;
    if (!b || b->n == 0)
        return;
    flush(b, worker);
    batch_open = b;
}

void conn_batch_end(int worker)
{
    struct conn_batch *b = batch_open;
    batch_open = NULL;
    if (b && b->n > 0)
        flush(b, worker);
}
