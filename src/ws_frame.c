/*
 * ws_frame.c - the WebSocket frame codec (RFC 6455 section 5).
 *
 * The decoder is a resumable state machine: header bytes are gathered into d->hdr one at a time
 * (a header is at most 14 bytes, so copying it costs nothing), and each rule is checked as soon as
 * the byte it depends on has arrived, in byte order. The outcome therefore depends only on the
 * bytes, never on how the input was split, and a bad first byte is refused without waiting for
 * the rest of the header. Payload is never copied: it is unmasked in place and handed back as
 * spans of the caller's input.
 *
 * The encoder only writes headers into caller buffers; masking a client payload is ws_mask.
 */
#include "ws_frame.h"

#include <string.h>

#include "utf8.h"

/* Decoder states (d->state). A negative state is the error already reported. */
enum {
    ST_HEADER,  /* gathering header bytes */
    ST_PAYLOAD, /* d->left payload bytes still to come */
    ST_END,     /* the payload is complete; WS_DEC_END is still to be reported */
};

#define MAX_CONTROL_PAYLOAD 125

void ws_decoder_init(struct ws_decoder *d, bool require_mask, bool allow_rsv1, uint64_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->require_mask = require_mask;
    d->allow_rsv1 = allow_rsv1;
    d->max_message = max_message;
    d->state = ST_HEADER;
    d->hdr_need = 2;
}

bool ws_decoder_idle(const struct ws_decoder *d)
{
    return d->state == ST_HEADER && d->hdr_len == 0 && !d->in_message;
}

/* Records an error; the decoder keeps returning it. */
static int fail(struct ws_decoder *d, int code, const char *why)
{
    d->reason = why;
    d->state = -code;
    return -code;
}

static bool is_control(uint8_t opcode)
{
    return opcode >= 0x8;
}

/* Byte 0: FIN, RSV1-3, opcode. Everything here is decided by this byte and the message state. */
static int check_byte0(struct ws_decoder *d, uint8_t b)
{
    uint8_t op = b & 0x0F;
    bool fin = b & 0x80, rsv1 = b & 0x40;

    if (b & 0x30)
        return fail(d, WS_CLOSE_PROTOCOL, "RSV2 or RSV3 set");
    if ((op >= 0x3 && op <= 0x7) || op >= 0xB)
        return fail(d, WS_CLOSE_PROTOCOL, "reserved opcode");
    if (is_control(op)) {
        if (!fin)
            return fail(d, WS_CLOSE_PROTOCOL, "fragmented control frame");
        if (rsv1)
            return fail(d, WS_CLOSE_PROTOCOL, "RSV1 set on a control frame");
        return 0;
    }
    if (op == WS_OP_CONT) {
        if (!d->in_message)
            return fail(d, WS_CLOSE_PROTOCOL, "continuation frame without a message");
        if (rsv1)
            return fail(d, WS_CLOSE_PROTOCOL, "RSV1 set on a continuation frame");
        return 0;
    }
    if (d->in_message)
        return fail(d, WS_CLOSE_PROTOCOL, "new data frame inside a fragmented message");
    if (rsv1 && !d->allow_rsv1)
        return fail(d, WS_CLOSE_PROTOCOL, "RSV1 set without a negotiated extension");
    return 0;
}

/* Byte 1: MASK and the 7-bit length; fixes how long the header is. */
static int check_byte1(struct ws_decoder *d, uint8_t b)
{
    bool masked = b & 0x80;
    uint8_t len7 = b & 0x7F;

    if (d->require_mask && !masked)
        return fail(d, WS_CLOSE_PROTOCOL, "unmasked client frame");
    if (is_control(d->hdr[0] & 0x0F) && len7 > MAX_CONTROL_PAYLOAD)
        return fail(d, WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes");
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    return 0;
}

/* Bytes of the extended length (0, 2 or 8) announced by byte 1. */
static uint8_t ext_len_size(const struct ws_decoder *d)
{
    uint8_t len7 = d->hdr[1] & 0x7F;

    return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

/* The payload length, once the extended length bytes are in. */
static uint64_t header_payload_len(const struct ws_decoder *d)
{
    uint8_t n = ext_len_size(d), i;
    uint64_t len = 0;

    if (n == 0)
        return d->hdr[1] & 0x7F;
    for (i = 0; i < n; i++)
        len = len << 8 | d->hdr[2 + i];
    return len;
}

/* The extended length is complete: it must be minimal and, for 64 bits, below 2^63. */
static int check_ext_len(struct ws_decoder *d)
{
    uint64_t len = header_payload_len(d);

    if (ext_len_size(d) == 2)
        return len < 126 ? fail(d, WS_CLOSE_PROTOCOL, "non-minimal 16-bit length") : 0;
    if (len >> 63)
        return fail(d, WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
    if (len <= 0xFFFF)
        return fail(d, WS_CLOSE_PROTOCOL, "non-minimal 64-bit length");
    return 0;
}

/* Data frame header complete: track the message and enforce max_message on its announced total,
 * before any payload is accepted. */
static int account_message(struct ws_decoder *d)
{
    const struct ws_frame_header *f = &d->frame;

    if (f->opcode != WS_OP_CONT) {
        d->message_opcode = f->opcode;
        d->message_rsv1 = f->rsv1;
        d->message_len = 0;
    }
    /* The first test matters only if max_message was lowered in the middle of a message. */
    if (d->max_message &&
        (d->message_len > d->max_message || f->len > d->max_message - d->message_len))
        return fail(d, WS_CLOSE_TOO_BIG, "message too big");
    /* Saturate: with no limit the total of many huge frames could wrap. */
    d->message_len = f->len > UINT64_MAX - d->message_len ? UINT64_MAX : d->message_len + f->len;
    d->in_message = !f->fin;
    return 0;
}

/* The whole header is in d->hdr: describe it in d->frame and move on to the payload. */
static int header_done(struct ws_decoder *d)
{
    struct ws_frame_header *f = &d->frame;

    f->fin = d->hdr[0] & 0x80;
    f->rsv1 = d->hdr[0] & 0x40;
    f->opcode = d->hdr[0] & 0x0F;
    f->masked = d->hdr[1] & 0x80;
    f->len = header_payload_len(d);
    if (f->masked)
        memcpy(f->mask, d->hdr + d->hdr_len - 4, 4);
    else
        memset(f->mask, 0, 4);
    if (!is_control(f->opcode) && account_message(d) < 0)
        return d->state;
    d->left = f->len;
    d->mask_pos = 0;
    d->state = f->len ? ST_PAYLOAD : ST_END;
    return WS_DEC_HEADER;
}

/* One more header byte is in d->hdr: runs the checks that byte makes possible. Returns 0 (more
 * header to come), WS_DEC_HEADER or a negative close code. */
static int header_byte(struct ws_decoder *d)
{
    uint8_t ext = 0;
    int rc = 0;

    if (d->hdr_len == 1)
        rc = check_byte0(d, d->hdr[0]);
    else if (d->hdr_len == 2)
        rc = check_byte1(d, d->hdr[1]);
    if (rc < 0)
        return rc;
    if (d->hdr_len >= 2)
        ext = ext_len_size(d);
    if (ext && d->hdr_len == 2 + ext && check_ext_len(d) < 0)
        return d->state;
    if (d->hdr_len == d->hdr_need)
        return header_done(d);
    return 0;
}

static int decode_header(struct ws_decoder *d, const uint8_t *in, size_t len, size_t *consumed)
{
    size_t i = 0;
    int rc;

    while (i < len) {
        d->hdr[d->hdr_len++] = in[i++];
        rc = header_byte(d);
        if (rc != 0) {
            *consumed = i;
            return rc;
        }
    }
    *consumed = i;
    return WS_DEC_AGAIN;
}

static int decode_payload(struct ws_decoder *d, uint8_t *in, size_t len, size_t *consumed,
                          uint8_t **out, size_t *out_len)
{
    size_t n = d->left < len ? (size_t)d->left : len;

    if (n == 0)
        return WS_DEC_AGAIN;
    if (d->frame.masked)
        ws_mask(in, n, d->frame.mask, d->mask_pos);
    d->mask_pos += n;
    d->left -= n;
    if (d->left == 0)
        d->state = ST_END;
    *consumed = n;
    *out = in;
    *out_len = n;
    return WS_DEC_PAYLOAD;
}

int ws_decode(struct ws_decoder *d, uint8_t *in, size_t len, size_t *consumed, uint8_t **out,
              size_t *out_len)
{
    *consumed = 0;
    *out = NULL;
    *out_len = 0;
    switch (d->state) {
    case ST_HEADER:
        return decode_header(d, in, len, consumed);
    case ST_PAYLOAD:
        return decode_payload(d, in, len, consumed, out, out_len);
    case ST_END:
        d->state = ST_HEADER;
        d->hdr_len = 0;
        d->hdr_need = 2;
        return WS_DEC_END;
    default:
        return d->state; /* the error already reported */
    }
}

size_t ws_frame_header_size(uint64_t len, bool masked)
{
    size_t n = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;

    return n + (masked ? 4 : 0);
}

size_t ws_frame_header_encode(uint8_t *out, bool fin, bool rsv1, uint8_t opcode, uint64_t len,
                              const uint8_t *mask)
{
    size_t n = 2;
    int i;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    out[1] = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] |= (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[1] |= 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[1] |= 127;
        for (i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    size_t i = 0, j;
    uint8_t m8[8];
    uint64_t m, w;

    /* Bytewise up to an 8-byte boundary, then whole words with the mask rotated to match. */
    while (i < n && ((uintptr_t)(p + i) & 7) != 0) {
        p[i] ^= mask[(offset + i) & 3];
        i++;
    }
    if (n - i >= 8) {
        for (j = 0; j < 8; j++)
            m8[j] = mask[(offset + i + j) & 3];
        memcpy(&m, m8, 8);
        for (; n - i >= 8; i += 8) {
            memcpy(&w, p + i, 8);
            w ^= m;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

int ws_close_code_valid(unsigned code)
{
    /* 1012-1014 (service restart, try again later, bad gateway) are in IANA's registry since
     * RFC 6455: servers and proxies send them, and browsers and Node's ws accept them. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int ws_close_parse(const uint8_t *p, size_t n, unsigned *code, const uint8_t **reason,
                   size_t *reason_len)
{
    if (n == 0) {
        *code = WS_CLOSE_NO_STATUS;
        *reason = p;
        *reason_len = 0;
        return 0;
    }
    if (n == 1)
        return -WS_CLOSE_PROTOCOL;
    *code = (unsigned)p[0] << 8 | p[1];
    if (!ws_close_code_valid(*code) || !utf8_valid(p + 2, n - 2))
        return -WS_CLOSE_PROTOCOL;
    *reason = p + 2;
    *reason_len = n - 2;
    return 0;
}
