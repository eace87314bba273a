/*
 * ws_handshake.c - the server's opening handshake (RFC 6455 4.2.1 and 4.2.2).
 *
 * Works on the parsed request only. Fields that may be repeated (Connection, Upgrade,
 * Sec-WebSocket-Protocol, Sec-WebSocket-Extensions) are read from every occurrence, since RFC 9110
 * 5.3 makes several fields equivalent to one comma-joined field; Sec-WebSocket-Key must appear
 * exactly once (RFC 6455 11.3.1).
 */
#include "ws_handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- header access ---- */

static bool header_is(const struct http_request *req, const struct http_header *h, const char *name)
{
    size_t len = strlen(name);
    return h->name_len == len && memcmp(req->buf + h->name_off, name, len) == 0;
}

/* Number of fields named `name` (lower-case); the first one's value in *value, *len. */
static unsigned header_count(const struct http_request *req, const char *name, const char **value,
                             size_t *len)
{
    unsigned n = 0;

    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (!header_is(req, h, name))
            continue;
        if (n++ == 0) {
            *value = req->buf + h->value_off;
            *len = h->value_len;
        }
    }
    return n;
}

/* 1 if any field named `name` lists `token` (case-insensitive). */
static int any_header_has(const struct http_request *req, const char *name, const char *token)
{
    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (header_is(req, h, name) &&
            http_token_list_has(req->buf + h->value_off, h->value_len, token))
            return 1;
    }
    return 0;
}

int ws_is_upgrade(const struct http_request *req)
{
    return any_header_has(req, "connection", "upgrade") &&
           any_header_has(req, "upgrade", "websocket");
}

/* ---- Sec-WebSocket-Key ---- */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* The key must be the base64 of 16 bytes (RFC 6455 4.2.1 item 5): 22 characters, then "==". The
 * 22nd character carries 2 data bits and 4 padding bits, which a canonical encoder leaves zero. */
static bool key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        if (b64_value(key[i]) < 0)
            return false;
    }
    return (b64_value(key[21]) & 0x0f) == 0;
}

void ws_accept_key(const char *key, size_t len, char out[29])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned char buf[128];

    if (len <= sizeof(buf) - strlen(WS_GUID)) {
        memcpy(buf, key, len);
        memcpy(buf + len, WS_GUID, strlen(WS_GUID));
        SHA1(buf, len + strlen(WS_GUID), digest);
    } else {
        /* Never the case for a validated key (24 bytes); kept total for any caller. */
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, len) ||
            !EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID)) ||
            !EVP_DigestFinal_ex(ctx, digest, NULL)) {
            EVP_MD_CTX_free(ctx);
            out[0] = '\0';
            return;
        }
        EVP_MD_CTX_free(ctx);
    }
    /* 20 bytes encode to 28 characters; EVP_EncodeBlock adds the NUL. */
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* ---- negotiation ---- */

/* 1 if the comma list v[0..len) holds exactly `want` (subprotocol names are case-sensitive). */
static int list_has_exact(const char *v, size_t len, const char *want)
{
    size_t wlen = strlen(want), i = 0;

    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == wlen && memcmp(v + start, want, wlen) == 0)
            return 1;
    }
    return 0;
}

/* The endpoint's most preferred subprotocol that the client offered in any field, or NULL. */
static const char *choose_protocol(const struct http_request *req, const char *const *protocols)
{
    for (; protocols && *protocols; protocols++) {
        for (unsigned i = 0; i < req->nheaders; i++) {
            const struct http_header *h = &req->headers[i];
            if (header_is(req, h, "sec-websocket-protocol") &&
                list_has_exact(req->buf + h->value_off, h->value_len, *protocols))
                return *protocols;
        }
    }
    return NULL;
}

/* Negotiates permessage-deflate over the Sec-WebSocket-Extensions fields in order. Offers never
 * span fields, so taking the first field with an acceptable offer is the same as joining them. */
static void negotiate_extensions(const struct http_request *req,
                                 const struct ws_deflate_config *cfg, struct ws_handshake *hs)
{
    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (!header_is(req, h, "sec-websocket-extensions"))
            continue;
        int rc = ws_deflate_negotiate(req->buf + h->value_off, h->value_len, cfg, &hs->params,
                                      hs->extensions, sizeof(hs->extensions));
        if (rc == 1) {
            hs->deflate = true;
            return;
        }
    }
    hs->extensions[0] = '\0';
}

/* 1 if Origin is acceptable: any when no list is configured, else exactly one listed value. */
static int origin_allowed(const struct http_request *req, const char *const *allowed)
{
    const char *origin = NULL;
    size_t len = 0;

    if (!allowed)
        return 1;
    if (header_count(req, "origin", &origin, &len) != 1)
        return 0;
    for (; *allowed; allowed++) {
        if (strlen(*allowed) == len && memcmp(*allowed, origin, len) == 0)
            return 1;
    }
    return 0;
}

static int fail(struct ws_handshake *hs, int status, const char *reason)
{
    hs->reason = reason;
    return status;
}

/* The request-level checks of RFC 6455 4.2.1 items 1-4 and the key (item 5). */
static int check_request(const struct http_request *req, struct ws_handshake *hs)
{
    const char *key = NULL, *host = NULL;
    size_t key_len = 0, host_len = 0;

    if (req->method != HTTP_GET)
        return fail(hs, -400, "WebSocket upgrade requires GET");
    if (req->version_minor < 1)
        return fail(hs, -400, "WebSocket upgrade requires HTTP/1.1");
    /* After the head come frames: a body would be read as frames (RFC 6455 4.1: a GET, no
     * body). An empty Content-Length is harmless. */
    if ((req->flags & HTTP_F_CHUNKED) ||
        ((req->flags & HTTP_F_CONTENT_LENGTH) && req->content_length > 0))
        return fail(hs, -400, "a WebSocket upgrade request has no body");
    if (!(req->flags & HTTP_F_HOST) && header_count(req, "host", &host, &host_len) == 0)
        return fail(hs, -400, "missing Host");
    if (!any_header_has(req, "upgrade", "websocket"))
        return fail(hs, -400, "Upgrade does not list websocket");
    if (!any_header_has(req, "connection", "upgrade"))
        return fail(hs, -400, "Connection does not list upgrade");
    unsigned nkeys = header_count(req, "sec-websocket-key", &key, &key_len);
    if (nkeys == 0)
        return fail(hs, -400, "missing Sec-WebSocket-Key");
    if (nkeys > 1)
        return fail(hs, -400, "repeated Sec-WebSocket-Key");
    if (!key_valid(key, key_len))
        return fail(hs, -400, "Sec-WebSocket-Key is not 16 bytes of base64");
    ws_accept_key(key, key_len, hs->accept);
    return 0;
}

int ws_handshake_check(const struct http_request *req, const struct ws_handshake_config *cfg,
                       struct ws_handshake *hs)
{
    const char *version = NULL;
    size_t version_len = 0;

    memset(hs, 0, sizeof(*hs));
    int rc = check_request(req, hs);
    if (rc < 0)
        return rc;
    if (header_count(req, "sec-websocket-version", &version, &version_len) != 1 ||
        version_len != 2 || memcmp(version, "13", 2) != 0)
        return fail(hs, -426, "Sec-WebSocket-Version must be 13");
    if (!origin_allowed(req, cfg->allowed_origins))
        return fail(hs, -403, "Origin not allowed");
    hs->protocol = choose_protocol(req, cfg->protocols);
    negotiate_extensions(req, &cfg->deflate, hs);
    return 0;
}

/* Appends s to out at *pos; false (and nothing more written) once it no longer fits. */
static bool put(char *out, size_t cap, size_t *pos, const char *s)
{
    size_t len = strlen(s);

    if (len >= cap - *pos)
        return false;
    memcpy(out + *pos, s, len + 1);
    *pos += len;
    return true;
}

size_t ws_handshake_response(const struct ws_handshake *hs, char *out, size_t cap)
{
    size_t pos = 0;
    bool ok;

    if (cap == 0)
        return 0;
    ok = put(out, cap, &pos,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: ") &&
         put(out, cap, &pos, hs->accept) && put(out, cap, &pos, "\r\n");
    if (ok && hs->protocol) {
        ok = put(out, cap, &pos, "Sec-WebSocket-Protocol: ") && put(out, cap, &pos, hs->protocol) &&
             put(out, cap, &pos, "\r\n");
    }
    if (ok && hs->deflate) {
        ok = put(out, cap, &pos, "Sec-WebSocket-Extensions: ") &&
             put(out, cap, &pos, hs->extensions) && put(out, cap, &pos, "\r\n");
    }
    ok = ok && put(out, cap, &pos, "\r\n");
    return ok ? pos : 0;
}
