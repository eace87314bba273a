/* wsc_wire.c - the client side of the wire, without I/O (see wsc_wire.h). */
#include "wsc_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "ws_frame.h"

int wsc_upgrade_request(char *out, size_t cap, const char *host, const char *path,
                        const char *subprotocol, const char *extra)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WSC_KEY "\r\nSec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
                     path, host, subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "", extra ? extra : "");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* The value of header `name` in a response head (case-insensitive name), or NULL. */
static const char *header_value(const char *head, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) != 0 || p[2 + n] != ':')
            continue;
        const char *v = p + 3 + n;
        while (*v == ' ' || *v == '\t')
            v++;
        const char *e = strstr(v, "\r\n");
        size_t l = e ? (size_t)(e - v) : strlen(v);
        while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
            l--;
        *len = l;
        return v;
    }
    return NULL;
}

int wsc_upgrade_check(const char *head, bool *accepted, bool *extensions)
{
    int status;
    *accepted = *extensions = false;
    if (strncmp(head, "HTTP/1.1 ", 9) != 0 || sscanf(head + 9, "%3d", &status) != 1)
        return -1;
    size_t len;
    const char *v = header_value(head, "Sec-WebSocket-Accept", &len);
    *accepted = status == 101 && v && len == strlen(WSC_ACCEPT) && memcmp(v, WSC_ACCEPT, len) == 0;
    *extensions = header_value(head, "Sec-WebSocket-Extensions", &len) != NULL;
    return status;
}

size_t wsc_frame_header(uint8_t *out, bool fin, unsigned rsv, uint8_t opcode, size_t len,
                        const uint8_t mask[4])
{
    size_t hl = ws_frame_header_encode(out, fin, false, opcode, len, mask);
    out[0] = (uint8_t)((out[0] & 0x8f) | ((rsv & 7) << 4));
    return hl;
}

/* A JSON string's contents: '"', '\' and control bytes escaped. Returns bytes written or -1. */
static int put_escaped(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        int k = c < 0x20                ? snprintf(esc, sizeof(esc), "\\u%04x", c)
                : c == '"' || c == '\\' ? snprintf(esc, sizeof(esc), "\\%c", c)
                                        : snprintf(esc, sizeof(esc), "%c", c);
        if (n + (size_t)k >= cap)
            return -1;
        memcpy(out + n, esc, (size_t)k);
        n += (size_t)k;
    }
    out[n] = '\0';
    return (int)n;
}

static int request(char *out, size_t cap, const char *op, const char *topic, const char *data,
                   const char *id, const char *extra)
{
    char t[1024];
    if (put_escaped(t, sizeof(t), topic) < 0)
        return -1;
    int n = snprintf(out, cap, "{\"op\":\"%s\",\"topic\":\"%s\"%s%s%s%s%s}", op, t,
                     data ? ",\"data\":" : "", data ? data : "", id ? ",\"id\":" : "", id ? id : "",
                     extra ? extra : "");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int wsc_herald_sub(char *out, size_t cap, const char *topic, const char *id, const char *extra)
{
    return request(out, cap, "sub", topic, NULL, id, extra);
}

int wsc_herald_pub(char *out, size_t cap, const char *topic, const char *data, const char *id)
{
    return request(out, cap, "pub", topic, data, id, NULL);
}

int wsc_inflate(const uint8_t *in, size_t len, size_t max_out, char **out, size_t *out_len)
{
    z_stream zs = {0};
    if (inflateInit2(&zs, -15) != Z_OK)
        return -1;
    uint8_t *src = malloc(len + 4);
    char *dst = malloc(max_out + 1);
    int rc = -1;
    if (src && dst) {
        memcpy(src, in, len);
        memcpy(src + len, "\x00\x00\xff\xff", 4);
        zs.next_in = src;
        zs.avail_in = (uInt)(len + 4);
        zs.next_out = (Bytef *)dst;
        zs.avail_out = (uInt)max_out;
        int z = inflate(&zs, Z_SYNC_FLUSH);
        /* All input used with room to spare: anything else is corrupt or too big. */
        if ((z == Z_OK || z == Z_STREAM_END) && zs.avail_in == 0 && zs.avail_out > 0) {
            *out_len = zs.total_out;
            dst[*out_len] = '\0';
            *out = dst;
            dst = NULL;
            rc = 0;
        }
    }
    inflateEnd(&zs);
    free(src);
    free(dst);
    return rc;
}
