/*
 * ws_deflate.c - permessage-deflate (RFC 7692): offer parsing, the inflater of one connection and
 * the per-thread deflater used for outgoing messages.
 *
 * Negotiation is a small scanner over the Sec-WebSocket-Extensions grammar (RFC 6455 9.1):
 * offers separated by commas, parameters by semicolons, values a token or a quoted-string. An
 * offer that is malformed or unacceptable is skipped up to the next comma outside a quoted-string,
 * so one bad offer never hides the fallback the client listed after it.
 */
#include "ws_deflate.h"

#include <sys/uio.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/*
 * Compression level of outgoing messages. Levels 1..3 use zlib's fast matcher without lazy
 * evaluation; on the short JSON messages a broker carries, level 1 compresses only a few percent
 * worse than the default 6 at a fraction of the CPU, and the compression runs on the worker
 * thread that is also serving every other connection, so latency wins over the last bytes.
 */
#define WS_DEFLATE_LEVEL     1
#define WS_DEFLATE_MEM_LEVEL 8

/* Close codes returned by ws_inflate (RFC 6455 7.4.1). */
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_TOO_BIG      1009
#define WS_CLOSE_INTERNAL     1011

/* Longest parameter value kept after unquoting; every valid value is at most 2 characters, so a
 * longer one is invalid whatever it says. */
#define PARAM_VALUE_MAX 8

/* ---- negotiation ---- */

struct scan {
    const char *p, *end;
};

/* One permessage-deflate offer as the client wrote it. Window bits are 0 when absent. */
struct offer {
    bool is_pmd;  /* the extension name is permessage-deflate */
    bool decline; /* an unknown or repeated parameter, or an invalid value */
    bool snct, cnct;
    bool has_smwb, has_cmwb;
    int smwb, cmwb;
};

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
        s->p++;
}

/* Reads a token; returns its length (0 when there is none). */
static size_t scan_token(struct scan *s, const char **tok)
{
    *tok = s->p;
    while (s->p < s->end && is_tchar((unsigned char)*s->p))
        s->p++;
    return (size_t)(s->p - *tok);
}

/* Reads a token or a quoted-string, unescaped into buf; an over-long value is truncated to
 * PARAM_VALUE_MAX + 1 characters so that it still reads as invalid. Returns the value's length,
 * or -1 when there is no value or the quoted-string is unterminated. */
static int scan_value(struct scan *s, char buf[PARAM_VALUE_MAX + 1])
{
    size_t n = 0;
    if (s->p < s->end && *s->p == '"') {
        for (s->p++; s->p < s->end && *s->p != '"'; s->p++) {
            if (*s->p == '\\' && ++s->p == s->end)
                return -1;
            if (n <= PARAM_VALUE_MAX)
                buf[n++] = *s->p;
        }
        if (s->p == s->end)
            return -1;
        s->p++;
        return (int)n;
    }
    const char *tok;
    size_t len = scan_token(s, &tok);
    if (len == 0)
        return -1;
    n = len <= PARAM_VALUE_MAX ? len : PARAM_VALUE_MAX + 1;
    memcpy(buf, tok, n);
    return (int)n;
}

/* Skips the rest of a malformed offer, up to and including the next comma outside quotes. */
static void skip_offer(struct scan *s)
{
    bool quoted = false;
    for (; s->p < s->end; s->p++) {
        if (quoted && *s->p == '\\' && s->p + 1 < s->end)
            s->p++;
        else if (*s->p == '"')
            quoted = !quoted;
        else if (!quoted && *s->p == ',') {
            s->p++;
            return;
        }
    }
}

/* A window size "8".."15" in the canonical decimal form (no sign, no leading zero); else 0. */
static int window_bits_value(const char *v, int len)
{
    if (len == 1 && (v[0] == '8' || v[0] == '9'))
        return v[0] - '0';
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return 0;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Records one parameter of a permessage-deflate offer; vlen is -1 when it had no value. */
static void offer_param(struct offer *o, const char *name, size_t len, const char *v, int vlen)
{
    int bits = vlen < 0 ? 0 : window_bits_value(v, vlen);

    /* The two *_no_context_takeover parameters take no value (RFC 7692 7.1.1). */
    if (name_is(name, len, "server_no_context_takeover")) {
        o->decline |= o->snct || vlen >= 0;
        o->snct = true;
    } else if (name_is(name, len, "client_no_context_takeover")) {
        o->decline |= o->cnct || vlen >= 0;
        o->cnct = true;
    } else if (name_is(name, len, "server_max_window_bits")) {
        /* zlib's raw deflate cannot use an 8-bit window, so that offer is declined too. */
        o->decline |= o->has_smwb || bits < 9;
        o->has_smwb = true;
        o->smwb = bits;
    } else if (name_is(name, len, "client_max_window_bits")) {
        o->decline |= o->has_cmwb || (vlen >= 0 && bits == 0);
        o->has_cmwb = true;
        o->cmwb = bits;
    } else {
        o->decline = true;
    }
}

/* Parses one parameter after its ';'. Returns 0, or -1 on a syntax error. */
static int scan_param(struct scan *s, struct offer *o)
{
    const char *name;
    char value[PARAM_VALUE_MAX + 1];
    int vlen = -1;

    skip_ows(s);
    size_t nlen = scan_token(s, &name);
    if (nlen == 0)
        return -1;
    skip_ows(s);
    if (s->p < s->end && *s->p == '=') {
        s->p++;
        skip_ows(s);
        vlen = scan_value(s, value);
        if (vlen < 0)
            return -1;
    }
    if (o->is_pmd)
        offer_param(o, name, nlen, value, vlen);
    return 0;
}

/*
 * Parses the offer at s->p, leaving s->p after its comma (or at the end). Returns 1 for a
 * permessage-deflate offer that can be accepted (o filled), 0 for any other element (another
 * extension, an empty element, a declined or malformed offer).
 */
static int scan_offer(struct scan *s, struct offer *o)
{
    const char *name;

    memset(o, 0, sizeof(*o));
    skip_ows(s);
    size_t nlen = scan_token(s, &name);
    o->is_pmd = name_is(name, nlen, "permessage-deflate");
    for (;;) {
        skip_ows(s);
        if (s->p == s->end || *s->p == ',') {
            bool empty = nlen == 0;
            if (s->p < s->end)
                s->p++;
            return !empty && o->is_pmd && !o->decline;
        }
        if (nlen == 0 || *s->p != ';')
            break;
        s->p++;
        if (scan_param(s, o) < 0)
            break;
    }
    skip_offer(s);
    return 0;
}

/* Fills the parameters in force and writes the response value for an accepted offer. */
static int accept_offer(const struct offer *o, const struct ws_deflate_config *cfg,
                        struct ws_deflate_params *out, char *resp, size_t resp_cap)
{
    char smwb[32] = "", cmwb[32] = "";

    out->server_no_context_takeover = true;
    out->client_no_context_takeover = !cfg->allow_client_context_takeover;
    out->server_max_window_bits = (uint8_t)(o->has_smwb ? o->smwb : 15);
    out->client_max_window_bits = (uint8_t)(o->has_cmwb && o->cmwb ? o->cmwb : 15);
    /* Echoing a server_max_window_bits the client asked for confirms the window we compress with;
     * client_max_window_bits may only appear when the client said it understands it. */
    if (o->has_smwb)
        snprintf(smwb, sizeof(smwb), "; server_max_window_bits=%d", out->server_max_window_bits);
    if (o->has_cmwb)
        snprintf(cmwb, sizeof(cmwb), "; client_max_window_bits=%d", out->client_max_window_bits);
    int n =
        snprintf(resp, resp_cap, "permessage-deflate; server_no_context_takeover%s%s%s",
                 out->client_no_context_takeover ? "; client_no_context_takeover" : "", smwb, cmwb);
    if (n < 0 || (size_t)n >= resp_cap)
        return HERALD_ELIMIT;
    return 1;
}

int ws_deflate_negotiate(const char *offers, size_t len, const struct ws_deflate_config *cfg,
                         struct ws_deflate_params *out, char *resp, size_t resp_cap)
{
    struct scan s = {offers, offers ? offers + len : NULL};
    struct offer o;

    if (!cfg || !cfg->enabled || !offers)
        return 0;
    while (s.p < s.end) {
        if (scan_offer(&s, &o) == 1)
            return accept_offer(&o, cfg, out, resp, resp_cap);
    }
    return 0;
}

/* ---- inflater ---- */

void ws_inflater_init(struct ws_inflater *inf, const struct ws_deflate_params *p)
{
    memset(inf, 0, sizeof(*inf));
    inf->window_bits = 15;
    if (p && p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15)
        inf->window_bits = p->client_max_window_bits;
    inf->no_context = p ? p->client_no_context_takeover : false;
}

void ws_inflater_deinit(struct ws_inflater *inf)
{
    if (inf->ready)
        inflateEnd(&inf->zs);
    inf->ready = false;
}

static int inflater_start(struct ws_inflater *inf)
{
    /* A client built on zlib cannot deflate with an 8-bit window and silently uses 9, so inflate
     * with at least 9: a larger window accepts every stream a smaller one does. */
    int bits = inf->window_bits < 9 ? 9 : inf->window_bits;

    memset(&inf->zs, 0, sizeof(inf->zs));
    if (inflateInit2(&inf->zs, -bits) != Z_OK)
        return -WS_CLOSE_INTERNAL; /* only Z_MEM_ERROR: the arguments are valid */
    inf->ready = true;
    return 0;
}

/* Where the next inflate call writes: free space in `out` trimmed to the room left under max_out,
 * or a 1-byte probe when there is none, which only tells whether more output is pending. */
static int next_space(struct dmsg *out, size_t max_out, uint8_t *probe, struct iovec *iov)
{
    size_t have = dmsg_len(out);
    size_t room = max_out > have ? max_out - have : 0;
    int n = room > 0 ? dmsg_space(out, iov, 1) : HERALD_ELIMIT;

    if (n == -ENOMEM)
        return -WS_CLOSE_INTERNAL;
    if (n < 0) {
        iov->iov_base = probe;
        iov->iov_len = 1;
        return 0;
    }
    if (iov->iov_len > room)
        iov->iov_len = room;
    if (iov->iov_len > UINT_MAX)
        iov->iov_len = UINT_MAX;
    return 1;
}

/*
 * Inflates zs's pending input into out. Output is committed only into real space, never past
 * max_out, so a bomb stops at the limit. *boundary tells whether the stream now stands between
 * two deflate blocks (a complete message must end there). Returns 0 or a negative close code.
 */
static int inflate_pending(z_stream *zs, struct dmsg *out, size_t max_out, bool *boundary)
{
    for (;;) {
        uint8_t probe;
        struct iovec iov;
        int real = next_space(out, max_out, &probe, &iov);
        if (real < 0)
            return real;
        zs->next_out = iov.iov_base;
        zs->avail_out = (uInt)iov.iov_len;
        int rc = inflate(zs, Z_SYNC_FLUSH);
        size_t produced = iov.iov_len - zs->avail_out;
        if (!real && produced > 0)
            return -WS_CLOSE_TOO_BIG;
        if (real)
            dmsg_commit(out, produced);
        if (rc == Z_STREAM_END) {
            /* A block with BFINAL set ended the stream; whatever follows starts a new one. */
            *boundary = true;
            inflateReset(zs);
            if (zs->avail_in == 0)
                return 0;
            continue;
        }
        if (rc == Z_MEM_ERROR)
            return -WS_CLOSE_INTERNAL;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -WS_CLOSE_INVALID_DATA;
        *boundary = (zs->data_type & 128) != 0;
        /* inflate stops early only when the output is full, so space left means done. */
        if (zs->avail_out > 0)
            return 0;
    }
}

/* Feeds in[0..len) in pieces zlib's 32-bit counters can hold. */
static int inflate_span(z_stream *zs, const uint8_t *in, size_t len, struct dmsg *out,
                        size_t max_out, bool *boundary)
{
    do {
        size_t n = len < UINT_MAX ? len : UINT_MAX;
        zs->next_in = (Bytef *)in;
        zs->avail_in = (uInt)n;
        int rc = inflate_pending(zs, out, max_out, boundary);
        if (rc < 0)
            return rc;
        in += n;
        len -= n;
    } while (len > 0);
    return 0;
}

int ws_inflate(struct ws_inflater *inf, const uint8_t *in, size_t len, bool fin, struct dmsg *out,
               size_t max_out)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    bool boundary = false;
    int rc = 0;

    if (!inf->ready)
        rc = inflater_start(inf);
    if (rc == 0 && len > 0)
        rc = inflate_span(&inf->zs, in, len, out, max_out, &boundary);
    if (rc == 0 && fin) {
        rc = inflate_span(&inf->zs, tail, sizeof(tail), out, max_out, &boundary);
        /* RFC 7692 7.2.1: a message ends with an empty stored block, so after the tail the stream
         * must stand at a block boundary; anything else is a truncated message. */
        if (rc == 0 && !boundary)
            rc = -WS_CLOSE_INVALID_DATA;
    }
    /* After an error the connection is closed, so the state is of no further use. Without context
     * takeover nothing carries over to the next message, so an idle connection holds no zlib
     * memory. */
    if (rc < 0 || (fin && inf->no_context))
        ws_inflater_deinit(inf);
    return rc;
}

/* ---- deflater ---- */

/* Deflaters of the calling thread, indexed by window bits (9..15), created on first use. */
static __thread z_stream *tls_deflaters[16];

static z_stream *thread_deflater(int bits)
{
    z_stream *zs = tls_deflaters[bits];

    if (zs)
        return zs;
    zs = calloc(1, sizeof(*zs));
    if (!zs)
        return NULL;
    if (deflateInit2(zs, WS_DEFLATE_LEVEL, Z_DEFLATED, -bits, WS_DEFLATE_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(zs);
        return NULL;
    }
    tls_deflaters[bits] = zs;
    return zs;
}

/* Runs the whole input through zs into out. Returns 0, or HERALD_ELIMIT when out filled up. */
/* Feeds every input chunk, the last with a sync flush. */
static int deflate_all(z_stream *zs, const struct iovec *iov, int iovcnt, uint8_t *out,
                       size_t out_cap)
{
    zs->next_out = out;
    zs->avail_out = (uInt)(out_cap < UINT_MAX ? out_cap : UINT_MAX);
    for (int i = 0; i < iovcnt || i == 0; i++) {
        const uint8_t *in = iovcnt ? iov[i].iov_base : NULL;
        size_t len = iovcnt ? iov[i].iov_len : 0;
        do {
            size_t n = len < UINT_MAX ? len : UINT_MAX;
            zs->next_in = (Bytef *)in;
            zs->avail_in = (uInt)n;
            in += n;
            len -= n;
            int last = len == 0 && i + 1 >= iovcnt;
            deflate(zs, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
            /* deflate returns with output space left only once it has taken all input (and, at
             * the end, completed the flush). A full buffer may still have output pending; zlib
             * cannot tell without writing more, so an exact fit is reported as too small too. */
            if (zs->avail_out == 0)
                return HERALD_ELIMIT;
        } while (len > 0);
    }
    return 0;
}

int ws_deflate_iov(const struct iovec *iov, int iovcnt, int window_bits, uint8_t *out,
                   size_t out_cap, size_t *out_len)
{
    /* A smaller window than negotiated is always safe for the receiver; 8 is not usable. */
    int bits = window_bits < 9 ? 9 : window_bits > 15 ? 15 : window_bits;
    z_stream *zs = thread_deflater(bits);

    if (!zs)
        return -ENOMEM;
    /* Reset before use rather than after, so a message abandoned half-way (ELIMIT) leaves no
     * trace in the next one: this is what makes every message independent. */
    deflateReset(zs);
    int rc = deflate_all(zs, iov, iovcnt, out, out_cap);
    if (rc < 0)
        return rc;
    size_t n = (size_t)zs->total_out;
    /* RFC 7692 7.2.1: the sync flush ends in an empty stored block, 00 00 FF FF, sent implicitly.
     * zlib always writes it; should it not, the caller sends the message uncompressed. */
    if (n < 4 || memcmp(out + n - 4, "\x00\x00\xff\xff", 4) != 0)
        return HERALD_ELIMIT;
    *out_len = n - 4;
    return 0;
}

int ws_deflate_part(const uint8_t *in, size_t len, int window_bits, bool first, bool last,
                    uint8_t *out, size_t out_cap, size_t *out_len)
{
    int bits = window_bits < 9 ? 9 : window_bits > 15 ? 15 : window_bits;
    z_stream *zs = thread_deflater(bits);
    if (!zs)
        return -ENOMEM;
    if (first)
        deflateReset(zs);
    uLong before = zs->total_out;
    struct iovec iov = {.iov_base = (void *)in, .iov_len = len};
    int rc = deflate_all(zs, &iov, 1, out, out_cap);
    if (rc < 0)
        return rc;
    size_t n = (size_t)(zs->total_out - before);
    if (last) {
        if (n < 4 || memcmp(out + n - 4, "\x00\x00\xff\xff", 4) != 0)
            return HERALD_ELIMIT;
        n -= 4;
    }
    *out_len = n;
    return 0;
}

int ws_deflate_message(const uint8_t *in, size_t len, int window_bits, uint8_t *out, size_t out_cap,
                       size_t *out_len)
{
    struct iovec iov = {.iov_base = (void *)in, .iov_len = len};
    return ws_deflate_iov(&iov, 1, window_bits, out, out_cap, out_len);
}

void ws_deflate_thread_cleanup(void)
{
    for (int i = 0; i < 16; i++) {
        if (tls_deflaters[i]) {
            deflateEnd(tls_deflaters[i]);
            free(tls_deflaters[i]);
            tls_deflaters[i] = NULL;
        }
    }
}
