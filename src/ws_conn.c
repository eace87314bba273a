/*
 * ws_conn.c - the WebSocket connection state machine (see ws_conn.h): frame decoding over the
 * input dmsg, message reassembly with UTF-8 validation and inflation, control frames, the close
 * handshake, keepalive, and the echo endpoint.
 */
#include "ws_conn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "err.h"
#include "log.h"
#include "utf8.h"
#include "ws_frame.h"

/* Messages smaller than this go out uncompressed: deflate would not pay for its 4-byte trailer
 * and its CPU time. */
#define DEFLATE_MIN 64
/* Messages up to this size are copied into one buffer with their header rather than moved. */
#define SMALL_FRAME 1024

/* What matters only while frames arrive: made on the first byte and freed once the connection is
 * between messages again, since most connections of a broker are idle most of the time. */
struct ws_rx {
    struct ws_decoder dec;
    struct dmsg msg;                      /* the data message being received */
    struct utf8_state utf8;               /* its validation state, for text */
    size_t validated;                     /* bytes of msg already validated (compressed text) */
    uint8_t ctrl[WS_MAX_CONTROL_PAYLOAD]; /* the control frame being received */
    uint8_t ctrl_len;
};

struct ws_conn {
    const struct ws_endpoint *ep;
    struct ws_rx *rx; /* while a message or frame is being received */
    bool deflate;     /* permessage-deflate negotiated */
    struct ws_deflate_params params;
    struct ws_inflater *inf; /* with deflate only (its window may outlive a message) */
    bool close_sent;         /* our close frame is queued: read nothing more */
    bool more;               /* the endpoint has output it could not queue yet (on_run) */
    bool awaiting_pong;      /* a keepalive ping is unanswered */
};

static uint64_t ms(unsigned seconds)
{
    return seconds * 1000ull;
}

/* Frees the receive state (made again by rx_get when frames arrive). */
static void rx_put(struct ws_conn *ws)
{
    if (!ws->rx)
        return;
    dmsg_deinit(&ws->rx->msg);
    free(ws->rx);
    ws->rx = NULL;
}

int ws_conn_upgrade(struct conn *c, const struct ws_endpoint *ep, const struct ws_handshake *hs)
{
    /* Everything is allocated before the 101 is queued: after a failure the caller answers 500,
     * and nothing of a half-made upgrade may be left in the queue. */
    struct ws_conn *ws = calloc(1, sizeof(*ws));
    struct ws_inflater *inf = hs->deflate ? malloc(sizeof(*inf)) : NULL;
    struct obuf *b = obuf_new(512);
    if (!ws || !b || (hs->deflate && !inf)) {
        free(ws);
        free(inf);
        obuf_unref(b);
        return -ENOMEM;
    }
    b->len = (uint32_t)ws_handshake_response(hs, b->data, b->cap);
    if (b->len == 0) {
        obuf_unref(b);
        free(inf);
        free(ws);
        return -ENOMEM;
    }
    if (outq_push_take(&c->out, b) < 0) { /* b is gone either way */
        free(inf);
        free(ws);
        return -ENOMEM;
    }
    const struct herald_config *cfg = c->env->cfg;
    ws->ep = ep;
    ws->deflate = hs->deflate;
    ws->params = hs->params;
    if (inf) {
        ws->inf = inf;
        ws_inflater_init(inf, &ws->params);
    }
    c->ws = ws;
    c->state = CONN_WS;
    twheel_set(c->env->wheel, &c->tw, twheel_now() + ms(cfg->ping_interval));
    if (ep->on_open && ep->on_open(c, ep->ctx) < 0)
        ws_close(c, WS_CLOSE_INTERNAL, "cannot open a session");
    return 0;
}

void *ws_conn_ctx(const struct conn *c)
{
    return c->ws->ep->ctx;
}

bool ws_conn_run(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (ws->close_sent || !ws->ep->on_run)
        return false;
    int code = ws->ep->on_run(c, &ws->more);
    if (code > 0) {
        ws->more = false;
        ws_close(c, (unsigned)code, code == 4008 ? "slow consumer" : "closing");
    }
    return ws->more;
}

void ws_conn_free(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (!ws)
        return;
    if (ws->ep->on_close)
        ws->ep->on_close(c);
    rx_put(ws);
    if (ws->inf) {
        ws_inflater_deinit(ws->inf);
        free(ws->inf);
    }
    free(ws);
    c->ws = NULL;
}

void ws_conn_on_input(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (ws->close_sent)
        return; /* the closing deadline stands */
    ws->awaiting_pong = false;
    uint64_t deadline = twheel_now() + ms(c->env->cfg->ping_interval);
    /* As in conn.c's touch: move the deadline (and take the wheel's lock) at most every 250 ms. */
    if (c->tw.deadline < deadline || c->tw.deadline > deadline + 250)
        twheel_set(c->env->wheel, &c->tw, deadline + 250);
}

/* Queues a frame whose payload is `len` bytes in one buffer with its header. */
static int queue_frame(struct conn *c, bool rsv1, uint8_t opcode, const void *data, size_t len)
{
    struct obuf *b = obuf_new(14 + len);
    if (!b)
        return -ENOMEM;
    b->len = (uint32_t)ws_frame_header_encode((uint8_t *)b->data, true, rsv1, opcode, len, NULL);
    obuf_put(b, data, len);
    return outq_push_take(&c->out, b);
}

/* Queues the close frame. `echo`: it answers the peer's close, after which the peer sends nothing
 * more, so the connection may close as soon as it is sent. Otherwise the peer may still be
 * sending: closing with its input unread would send a reset, which throws away what the kernel
 * still holds for the peer, this close frame included, so the connection lingers (conn.c),
 * reading until the peer's FIN. */
static void close_with(struct conn *c, unsigned code, const char *reason, bool echo)
{
    struct ws_conn *ws = c->ws;
    if (ws->close_sent)
        return;
    uint8_t p[125] = {0};
    size_t n = 0;
    if (code != WS_CLOSE_NO_STATUS) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > sizeof(p) - 2)
            rl = sizeof(p) - 2;
        if (rl)
            memcpy(p + 2, reason, rl);
        n += rl;
    }
    queue_frame(c, false, WS_OP_CLOSE, p, n);
    ws->close_sent = true;
    c->close_after = 1;
    c->linger |= !echo;
    /* Give the peer a moment to answer with its close before the connection goes regardless. */
    twheel_set(c->env->wheel, &c->tw, twheel_now() + ms(LINGER_SECONDS));
    if (log_enabled(LOG_DEBUG))
        log_msg(LOG_DEBUG, "fd %d: websocket close %u %s", c->fd, code, reason ? reason : "-");
}

void ws_close(struct conn *c, unsigned code, const char *reason)
{
    close_with(c, code, reason, false);
}

void ws_conn_goodbye(struct conn *c)
{
    static const uint8_t going_away[] = {0x03, 0xe9, 's', 'h', 'u', 't', 't', 'i',
                                         'n',  'g',  ' ', 'd', 'o', 'w', 'n'};
    if (c->ws->close_sent)
        return;
    if (queue_frame(c, false, WS_OP_CLOSE, going_away, sizeof(going_away)) == 0)
        outq_flush(&c->out, c->fd, NULL);
}

/* Compresses msg (when worth it) into one buffer with its header; NULL when it was not. */
static struct obuf *deflate_frame(struct conn *c, uint8_t opcode, struct dmsg *msg)
{
    size_t len = dmsg_len(msg);
    struct iovec iov[64];
    int n = dmsg_iov(msg, 0, iov, 64);
    if (len < DEFLATE_MIN || n == 64)
        return NULL; /* tiny, or more buffers than a dmsg under 2^36 bytes can have */
    size_t cap = len + 64;
    struct obuf *b = obuf_new(14 + cap);
    if (!b)
        return NULL;
    size_t out_len = 0;
    int rc = ws_deflate_iov(iov, n, c->ws->params.server_max_window_bits, (uint8_t *)b->data + 14,
                            cap, &out_len);
    if (rc < 0 || out_len >= len) {
        obuf_unref(b);
        return NULL; /* did not fit or did not shrink: send it plain */
    }
    /* The header goes right before the payload, which was written at offset 14. */
    uint8_t hdr[14];
    size_t hl = ws_frame_header_encode(hdr, true, true, opcode, out_len, NULL);
    memmove(b->data + hl, b->data + 14, out_len);
    memcpy(b->data, hdr, hl);
    b->len = (uint32_t)(hl + out_len);
    return b;
}

int ws_send_dmsg(struct conn *c, uint8_t opcode, struct dmsg *msg)
{
    /* Compressed when it pays; otherwise the received buffers go out as they are. */
    if (c->ws->deflate) {
        struct obuf *z = deflate_frame(c, opcode, msg);
        if (z)
            return outq_push_take(&c->out, z);
    }
    size_t len = dmsg_len(msg);
    if (len <= SMALL_FRAME) {
        /* One small allocation beats moving a chain of buffers and a copy of the dmsg. */
        struct obuf *b = obuf_new(14 + len);
        if (!b)
            return -ENOMEM;
        b->len =
            (uint32_t)ws_frame_header_encode((uint8_t *)b->data, true, false, opcode, len, NULL);
        b->len += (uint32_t)dmsg_copy(msg, 0, b->data + b->len, len);
        return outq_push_take(&c->out, b);
    }
    struct obuf *h = obuf_new(14);
    if (!h)
        return -ENOMEM;
    h->len = (uint32_t)ws_frame_header_encode((uint8_t *)h->data, true, false, opcode, len, NULL);
    if (outq_push_take(&c->out, h) < 0)
        return -ENOMEM;
    if (outq_push_dmsg_take(&c->out, msg) < 0) {
        /* A header alone would announce bytes that never come: what follows would be read as
         * them. The frame goes whole or not at all. */
        outq_drop_last(&c->out);
        return -ENOMEM;
    }
    outq_join_last(&c->out); /* a slow consumer's queue is cut between frames only */
    return 0;
}

bool ws_conn_shared_deflate(const struct conn *c)
{
    return c->ws->deflate && c->ws->params.server_no_context_takeover &&
           c->ws->params.server_max_window_bits == 15;
}

int ws_send(struct conn *c, uint8_t opcode, const void *data, size_t len)
{
    if (c->ws->deflate && len >= DEFLATE_MIN) {
        struct dmsg tmp;
        dmsg_init(&tmp, len + DMSG_FIRST_SIZE);
        int rc = dmsg_append(&tmp, data, len) == 0 ? ws_send_dmsg(c, opcode, &tmp) : -ENOMEM;
        dmsg_deinit(&tmp);
        return rc;
    }
    return queue_frame(c, false, opcode, data, len);
}

/* A control frame is complete. Returns 0, or -1 to close now. */
static int on_control(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    switch (ws->rx->dec.frame.opcode) {
    case WS_OP_PING:
        return queue_frame(c, false, WS_OP_PONG, ws->rx->ctrl, ws->rx->ctrl_len) < 0 ? -1 : 0;
    case WS_OP_PONG:
        return 0; /* liveness was noted on input; unsolicited pongs are fine */
    default: {
        unsigned code;
        const uint8_t *reason;
        size_t rlen;
        if (ws_close_parse(ws->rx->ctrl, ws->rx->ctrl_len, &code, &reason, &rlen) < 0) {
            ws_close(c, WS_CLOSE_PROTOCOL, "invalid close frame");
            return 0;
        }
        /* The peer closed: echo its code (RFC 6455 5.5.1), then close TCP once it is sent. */
        close_with(c, code, NULL, true);
        return 0;
    }
    }
}

/* Validates text bytes msg[validated..] (after inflation). */
static int validate_new_text(struct ws_conn *ws)
{
    struct iovec iov[64];
    int n = dmsg_iov(&ws->rx->msg, ws->rx->validated, iov, 64);
    for (int i = 0; i < n; i++) {
        if (utf8_feed(&ws->rx->utf8, iov[i].iov_base, iov[i].iov_len, NULL) == UTF8_INVALID)
            return -WS_CLOSE_INVALID_DATA;
        ws->rx->validated += iov[i].iov_len;
    }
    return 0;
}

/* Payload bytes of a data frame: into the message, inflated if compressed, validated if text. */
static int on_data_payload(struct ws_conn *ws, uint8_t *p, size_t n, uint64_t max)
{
    bool text = ws->rx->dec.message_opcode == WS_OP_TEXT;
    if (ws->rx->dec.message_rsv1) {
        int rc = ws_inflate(ws->inf, p, n, false, &ws->rx->msg, max);
        if (rc < 0)
            return rc;
        return text ? validate_new_text(ws) : 0;
    }
    if (text && utf8_feed(&ws->rx->utf8, p, n, NULL) == UTF8_INVALID)
        return -WS_CLOSE_INVALID_DATA;
    /* The decoder has already refused messages over the limit, so this fits. */
    return dmsg_append(&ws->rx->msg, p, n) == 0 ? 0 : -WS_CLOSE_INTERNAL;
}

/* The last frame of a data message ended: finish it and hand it to the endpoint. */
static int on_message_end(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    bool text = ws->rx->dec.message_opcode == WS_OP_TEXT;
    if (ws->rx->dec.message_rsv1) {
        int rc = ws_inflate(ws->inf, NULL, 0, true, &ws->rx->msg, c->env->cfg->max_message);
        if (rc < 0)
            return rc;
        if (text && validate_new_text(ws) < 0)
            return -WS_CLOSE_INVALID_DATA;
    }
    if (text && ws->rx->utf8.state != 0)
        return -WS_CLOSE_INVALID_DATA; /* ended inside a character */
    int rc = ws->ep->on_message(c, ws->rx->dec.message_opcode, &ws->rx->msg);
    dmsg_deinit(&ws->rx->msg); /* whatever the handler left; the struct is ready for the next */
    utf8_init(&ws->rx->utf8);
    ws->rx->validated = 0;
    return rc > 0 ? -rc : 0;
}

static const char *close_reason(int code, const struct ws_conn *ws)
{
    switch (-code) {
    case WS_CLOSE_INVALID_DATA:
        return "invalid UTF-8 or compressed data";
    case WS_CLOSE_TOO_BIG:
        return "message too big";
    case WS_CLOSE_INTERNAL:
        return "internal error";
    default:
        return ws->rx->dec.reason ? ws->rx->dec.reason : "protocol error";
    }
}

/* Handles one decoder event. Returns 0 or a negative close code. */
static int on_event(struct conn *c, int ev, uint8_t *p, size_t n)
{
    struct ws_conn *ws = c->ws;
    bool control = ws->rx->dec.frame.opcode >= WS_OP_CLOSE;
    switch (ev) {
    case WS_DEC_HEADER:
        if (control)
            ws->rx->ctrl_len = 0;
        else if (ws->rx->dec.frame.opcode != WS_OP_CONT)
            utf8_init(&ws->rx->utf8); /* a new message */
        return 0;
    case WS_DEC_PAYLOAD:
        if (control) {
            memcpy(ws->rx->ctrl + ws->rx->ctrl_len, p, n); /* the decoder caps control payloads */
            ws->rx->ctrl_len = (uint8_t)(ws->rx->ctrl_len + n);
            return 0;
        }
        return on_data_payload(ws, p, n, c->env->cfg->max_message);
    case WS_DEC_END:
        if (control)
            return on_control(c) < 0 ? -WS_CLOSE_INTERNAL : 0;
        return ws->rx->dec.frame.fin ? on_message_end(c) : 0;
    default:
        return 0;
    }
}

/* The receive state, made when frames start to arrive. NULL when out of memory. */
static struct ws_rx *rx_get(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (!ws->rx && (ws->rx = malloc(sizeof(*ws->rx)))) {
        uint64_t max = c->env->cfg->max_message;
        ws_decoder_init(&ws->rx->dec, true, ws->deflate, max);
        dmsg_init(&ws->rx->msg, max);
        utf8_init(&ws->rx->utf8);
        ws->rx->validated = 0;
        ws->rx->ctrl_len = 0;
    }
    return ws->rx;
}

int ws_conn_process(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (dmsg_len(&c->in) > 0 && !ws->close_sent && !rx_get(c)) {
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        dmsg_consume(&c->in, dmsg_len(&c->in));
        return 0;
    }
    bool full = false;
    while (dmsg_len(&c->in) > 0 && !ws->close_sent && !full) {
        struct iovec iov[1];
        dmsg_iov(&c->in, 0, iov, 1);
        uint8_t *in = iov[0].iov_base;
        size_t len = iov[0].iov_len, used = 0;
        /* Until the decoder says AGAIN: the end of a frame is reported by a call that may
         * consume nothing, also when the input ends exactly at the frame's last byte. */
        while (!ws->close_sent) {
            size_t k = 0, n = 0;
            uint8_t *p = NULL;
            int ev = ws_decode(&ws->rx->dec, in + used, len - used, &k, &p, &n);
            used += k;
            if (ev == WS_DEC_AGAIN)
                break;
            int rc = ev < 0 ? ev : on_event(c, ev, p, n);
            if (rc < 0) {
                ws_close(c, (unsigned)-rc, close_reason(rc, ws));
                break;
            }
            /* Stop taking new frames while replies pile up: the peer waits instead of our
             * memory. Checked after every frame, not after each buffer of input: one buffer can
             * hold many requests whose answers are large (presence queries). After a frame's end
             * the rest of the input starts a frame, so it can wait in c->in for the queue to
             * drain (conn.c comes back to it). */
            if (ev == WS_DEC_END && outq_cost(&c->out) >= OUT_HIGH_WATER) {
                full = true;
                break;
            }
        }
        dmsg_consume(&c->in, used);
    }
    if (ws->close_sent) /* after a close nothing more is read */
        dmsg_consume(&c->in, dmsg_len(&c->in));
    /* Between messages the receive state goes: the next frame makes it anew. */
    if (ws->rx && ws_decoder_idle(&ws->rx->dec) && dmsg_len(&ws->rx->msg) == 0)
        rx_put(ws);
    return 0;
}

int ws_conn_on_deadline(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (c->tw.deadline > twheel_now())
        return 0;
    if (ws->close_sent || ws->awaiting_pong) {
        if (log_enabled(LOG_DEBUG))
            log_msg(LOG_DEBUG, "fd %d: websocket %s", c->fd,
                    ws->close_sent ? "close not answered" : "pong not received");
        return -1;
    }
    /* Silent for a ping interval: ask. Browsers answer pings without the page seeing them. */
    static const char payload[] = "herald";
    if (queue_frame(c, false, WS_OP_PING, payload, sizeof(payload) - 1) < 0)
        return -1;
    ws->awaiting_pong = true;
    twheel_set(c->env->wheel, &c->tw, twheel_now() + ms(c->env->cfg->pong_timeout));
    return 0;
}

int ws_echo_on_message(struct conn *c, uint8_t opcode, struct dmsg *msg)
{
    return ws_send_dmsg(c, opcode, msg) < 0 ? WS_CLOSE_INTERNAL : 0;
}
