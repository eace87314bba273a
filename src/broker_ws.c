/* broker_ws.c - protocol herald.v1 on WebSocket connections (see broker_ws.h). */
#include "broker_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "conn.h"
#include "log.h"
#include "proto.h"
#include "stats.h"
#include "textbuf.h"
#include "topic.h"
#include "ws_frame.h"

/* Replies are small: the largest carries an id and a topic of bounded length. */
#define REPLY_CAP 2048
/* An id longer than this is not echoed (the reply would not fit). */
#define ID_MAX 256
/* Bytes of deliveries (as outq_cost counts them) a connection's send queue takes at a time: a
 * few writes' worth, so a full socket costs a bounded queue, not --max-outbound of references. */
#define PULL_WINDOW (64 * 1024)

static const char *const protocols[] = {PROTO_VERSION, NULL};

/* A connection's view of the endpoint: the shared state and its broker session (c->app). Made on
 * the stack per call, so that a connection carries no allocation of its own for it. */
struct session {
    struct broker_ws *bw;
    struct broker_session *bs;
};

static struct session session_of(struct conn *c)
{
    return (struct session){.bw = ws_conn_ctx(c), .bs = c->app};
}

void broker_ws_init(struct broker_ws *bw, struct broker *b, const struct herald_config *cfg)
{
    memset(bw, 0, sizeof(*bw));
    bw->broker = b;
    bw->cfg = cfg;
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint64_t)(uintptr_t)bw;
    snprintf(bw->boot, sizeof(bw->boot), "%016llx", (unsigned long long)r);
}

/* Sends a reply the proto writer made; 0 means it did not fit in REPLY_CAP, which the bounds on
 * ids (ID_MAX) and topics (TOPIC_MAX_LEN) rule out. Either failure is logged, as a request then
 * goes unanswered (out of memory, nothing of the reply is queued: ws_send is all or nothing). */
static void reply(struct conn *c, const char *text, size_t len)
{
    if (len == 0)
        log_msg(LOG_ERROR, "fd %d: a reply did not fit in %d bytes: not sent", c->fd, REPLY_CAP);
    else if (ws_send(c, WS_OP_TEXT, text, len) < 0)
        log_msg(LOG_ERROR, "fd %d: out of memory for a reply: not sent", c->fd);
}

static void send_error(struct conn *c, const struct proto_request *req, const char *code,
                       const char *message)
{
    char out[REPLY_CAP];
    const char *id = req ? req->id : NULL; /* handle_request drops one over ID_MAX */
    reply(c, out, proto_error(out, sizeof(out), id, id ? req->id_len : 0, code, message));
}

#define SESSION_ID_MAX 40

static const char *session_id(const struct session *s, char *out)
{
    snprintf(out, SESSION_ID_MAX, "%s-%llu", s->bw->boot,
             (unsigned long long)broker_session_id(s->bs));
    return out;
}

static int on_open(struct conn *c, void *ctx)
{
    struct session s = {.bw = ctx, .bs = broker_session_new(s.bw->broker, c)};
    if (!s.bs)
        return -1;
    broker_session_set_compression(s.bs, ws_conn_shared_deflate(c));
    c->app = s.bs;
    char out[REPLY_CAP], id[SESSION_ID_MAX];
    reply(c, out, proto_welcome(out, sizeof(out), session_id(&s, id)));
    return 0;
}

static void on_close(struct conn *c)
{
    broker_session_free(c->app);
    c->app = NULL;
}

static const char *sub_error_code(int rc)
{
    switch (rc) {
    case BROKER_EBADTOPIC:
        return PROTO_E_BAD_TOPIC;
    case BROKER_ETOOMANY:
        return PROTO_E_TOO_MANY_SUBS;
    case BROKER_ENOTSUB:
        return PROTO_E_NOT_SUB;
    case BROKER_EBADREQ:
        return PROTO_E_BAD_REQUEST;
    default:
        return PROTO_E_INTERNAL;
    }
}

static void do_sub(struct conn *c, struct session *s, const struct proto_request *req)
{
    struct broker_sub_opts opts = {
        .recover = req->recover, .epoch = req->epoch, .offset = req->offset, .last = req->last};
    char member[PROTO_INFO_MAX + 128], id[SESSION_ID_MAX];
    if (req->presence) {
        opts.member = member;
        opts.member_len =
            proto_member(member, sizeof(member), session_id(s, id), req->info, req->info_len);
    }
    struct broker_sub_result res;
    const char *why = NULL;
    int rc = broker_subscribe(s->bs, req->topic, req->topic_len, &opts, &res, &why);
    if (rc < 0) {
        send_error(c, req, sub_error_code(rc), why ? why : "cannot subscribe");
        return;
    }
    /* On a wildcard pattern recovery is ignored (broker.md): neither a hit nor a miss, so the
     * ack has no "recovered" (false would tell the client its messages were lost). */
    bool wild = false;
    if (req->recover && !pattern_check(req->topic, req->topic_len, &wild) && !wild)
        atomic_fetch_add(res.recovered ? &s->bw->recovery_hits : &s->bw->recovery_misses, 1);
    int recovered = wild ? PROTO_RECOVERY_IGNORED : res.recovered;
    char out[REPLY_CAP];
    /* The ack is queued before any replayed message: the pull comes later in this turn. */
    reply(c, out,
          proto_ack_sub(out, sizeof(out), req, res.epoch, res.offset, res.replay, res.delivered,
                        recovered));
}

static void do_unsub(struct conn *c, struct session *s, const struct proto_request *req)
{
    int rc = broker_unsubscribe(s->bs, req->topic, req->topic_len);
    if (rc < 0) {
        send_error(c, req, sub_error_code(rc),
                   rc == BROKER_ENOTSUB ? "not subscribed to this topic" : "invalid topic");
        return;
    }
    char out[REPLY_CAP];
    reply(c, out, proto_ack_unsub(out, sizeof(out), req));
}

/* --client-publish: with patterns given, clients may publish only to topics matching one. */
static bool may_publish(const struct herald_config *cfg, const struct proto_request *req)
{
    if (!cfg->client_publish[0])
        return true;
    for (int i = 0; cfg->client_publish[i]; i++)
        if (pattern_match(cfg->client_publish[i], strlen(cfg->client_publish[i]), req->topic,
                          req->topic_len))
            return true;
    return false;
}

static void do_pub(struct conn *c, struct session *s, const struct proto_request *req)
{
    if (topic_check(req->topic, req->topic_len) == NULL && !may_publish(s->bw->cfg, req)) {
        send_error(c, req, PROTO_E_FORBIDDEN, "clients may not publish to this topic");
        return;
    }
    struct broker_pub_result res;
    const char *why = NULL;
    int rc = broker_publish(s->bw->broker, req->topic, req->topic_len, req->data, req->data_len,
                            &res, &why);
    if (rc < 0) {
        send_error(c, req, sub_error_code(rc), why ? why : "cannot publish");
        return;
    }
    char out[REPLY_CAP];
    reply(c, out, proto_ack_pub(out, sizeof(out), req, res.offset, res.reach));
}

static void put_member(const char *member, size_t len, void *ctx)
{
    struct textbuf *t = ctx;
    if (t->p && t->p[t->len - 1] != '[')
        textbuf_put(t, ",", 1);
    textbuf_put(t, member, len);
}

static void do_presence(struct conn *c, struct session *s, const struct proto_request *req)
{
    bool wild = false;
    const char *why = pattern_check(req->topic, req->topic_len, &wild);
    if (why || wild) {
        send_error(c, req, PROTO_E_BAD_TOPIC, why ? why : "presence needs an exact topic name");
        return;
    }
    /* Count and members come from one look under the topic's lock; the count goes first in the
     * answer, so the members are collected first and the head is put in front of them. */
    struct textbuf list = {0}, all = {0};
    textbuf_put(&list, "[", 1);
    size_t count =
        broker_presence(s->bw->broker, req->topic, req->topic_len, req->limit, put_member, &list);
    textbuf_put(&list, "]}", 2);
    char head[REPLY_CAP];
    size_t hl = proto_ack_presence_head(head, sizeof(head), req, count);
    if (hl > 0 && !list.failed) {
        textbuf_put(&all, head, hl - 1); /* the head ends with the '[' the list starts with */
        textbuf_put(&all, list.p, list.len);
    }
    if (hl == 0 || list.failed || all.failed)
        send_error(c, req, PROTO_E_INTERNAL, "out of memory");
    else
        reply(c, all.p, all.len);
    textbuf_free(&list);
    textbuf_free(&all);
}

/* One request. Errors are answered and never close the connection. */
static void handle_request(struct conn *c, struct session *s, const char *text, size_t len)
{
    struct proto_request req;
    const char *code, *message;
    int rc = proto_parse(text, len, &req, &code, &message);
    /* Too long to echo (broker.md): every answer to it goes without the id, errors and acks alike
     * (beside a topic, it would not fit). */
    if (req.id_len > ID_MAX) {
        req.id = NULL;
        req.id_len = 0;
    }
    if (rc < 0) {
        send_error(c, &req, code, message);
        return;
    }
    char out[REPLY_CAP];
    switch (req.op) {
    case PROTO_SUB:
        do_sub(c, s, &req);
        break;
    case PROTO_UNSUB:
        do_unsub(c, s, &req);
        break;
    case PROTO_PUB:
        do_pub(c, s, &req);
        break;
    case PROTO_PRESENCE:
        do_presence(c, s, &req);
        break;
    case PROTO_PING:
        reply(c, out, proto_pong(out, sizeof(out), req.id, req.id_len));
        break;
    }
}

static int on_message(struct conn *c, uint8_t opcode, struct dmsg *msg)
{
    struct session view = session_of(c), *s = &view;
    STATS_COUNT(ws_messages_in, 1);
    if (opcode != WS_OP_TEXT) {
        send_error(c, NULL, PROTO_E_BINARY, "requests are JSON text frames");
        return 0;
    }
    /* A request arrives in scattered buffers; the JSON parser wants it in one piece. */
    size_t len = dmsg_len(msg);
    struct iovec iov[1];
    char *text = NULL;
    if (dmsg_iov(msg, 0, iov, 1) == 1 && iov[0].iov_len == len) {
        handle_request(c, s, iov[0].iov_base, len);
        return 0;
    }
    text = malloc(len + 1);
    if (!text)
        return WS_CLOSE_INTERNAL;
    dmsg_copy(msg, 0, text, len);
    handle_request(c, s, text, len);
    free(text);
    return 0;
}

/* Queues waiting deliveries, at most PULL_WINDOW bytes of them in the send queue at a time (the
 * rest waits in the topics' logs, shared, instead of as references in every slow connection's
 * queue); decides when a connection is a slow consumer: when what waits for it, queued or still in
 * the logs, reaches --max-outbound, or when the history moved past it. */
static int on_run(struct conn *c, bool *pending)
{
    struct session view = session_of(c), *s = &view;
    if (!s->bs)
        return 0;
    size_t max = s->bw->cfg->max_outbound, window = max < PULL_WINDOW ? max : PULL_WINDOW;
    size_t queued = outq_cost(&c->out), left = 0;
    bool lost = false;
    broker_pull(s->bs, &c->out, queued < window ? window - queued : 0, pending, &lost, &left);
    queued = outq_cost(&c->out);
    if (!lost && !(left > 0 && queued + left >= max))
        return 0; /* (at the bound with nothing waiting is fine: replies are not deliveries) */
    /* A replay the client asked for fills the queue: while one is under way, only what waits past
     * it counts (asked only here, on the way to a cut, as it takes the session's lock). */
    if (!lost && left < max && broker_replaying(s->bs))
        return 0;
    atomic_fetch_add(&s->bw->slow_consumers, 1);
    if (log_enabled(LOG_INFO))
        log_msg(LOG_INFO, "fd %d: slow consumer disconnected (%s)", c->fd,
                lost ? "fell behind the history" : "send queue full");
    /* What has not started to go out is dropped, so the close frame is next in line. */
    outq_drop_unsent(&c->out);
    *pending = false;
    return WS_CLOSE_SLOW_CONSUMER;
}

void broker_ws_endpoint(struct broker_ws *bw, struct ws_endpoint *ep,
                        const struct ws_handshake_config *hs)
{
    memset(ep, 0, sizeof(*ep));
    ep->path = bw->cfg->ws_path;
    ep->hs = *hs;
    ep->hs.protocols = protocols;
    ep->on_message = on_message;
    ep->on_open = on_open;
    ep->on_run = on_run;
    ep->on_close = on_close;
    ep->ctx = bw;
}
