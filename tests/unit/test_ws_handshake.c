/*
 * test_ws_handshake.c - the server's opening handshake (RFC 6455 4.2).
 *
 * Requests are built by feeding text to the real HTTP parser, so the checks see exactly what the
 * connection layer will hand them (lower-cased names, trimmed values, repeated fields).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "http_parse.h"
#include "ws_handshake.h"

#define RL      "GET /chat HTTP/1.1\r\n"
#define H_HOST  "Host: server.example.com\r\n"
#define H_UPG   "Upgrade: websocket\r\n"
#define H_CONN  "Connection: Upgrade\r\n"
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
/* RFC 6455 1.3 (the value checked with `openssl sha1 -binary | base64` too). */
#define RFC_ACC  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define H_KEY    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define H_VER    "Sec-WebSocket-Version: 13\r\n"
#define BASE     H_HOST H_UPG H_CONN H_KEY H_VER
#define VALID    RL BASE
#define RESP_101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

/* Parses a complete head (the final blank line is added here). */
static void parse(const char *head, struct http_request *req)
{
    struct http_parser p;
    struct http_limits lim;
    char buf[4096];
    size_t used;

    snprintf(buf, sizeof(buf), "%s\r\n", head);
    http_limits_default(&lim);
    http_parser_init(&p, &lim);
    http_request_init(req);
    int rc = http_parse_feed(&p, req, buf, strlen(buf), &used);
    cr_assert_eq(rc, HTTP_PARSE_DONE, "head not parsed (%d): %s", rc, head);
}

static int check_cfg(const char *head, const struct ws_handshake_config *cfg,
                     struct ws_handshake *hs)
{
    struct http_request req;

    parse(head, &req);
    int rc = ws_handshake_check(&req, cfg, hs);
    if (rc < 0)
        cr_assert(hs->reason != NULL, "no reason for %d", rc);
    http_request_deinit(&req);
    return rc;
}

static int check(const char *head)
{
    struct ws_handshake_config cfg = {0};
    struct ws_handshake hs;

    return check_cfg(head, &cfg, &hs);
}

static void response_of(const struct ws_handshake *hs, char *out, size_t cap)
{
    size_t n = ws_handshake_response(hs, out, cap);

    cr_assert_gt(n, 0);
    cr_assert_eq(n, strlen(out));
}

/* ---- accept key ---- */

Test(ws_handshake, rfc6455_accept_key)
{
    char out[29];

    ws_accept_key(RFC_KEY, strlen(RFC_KEY), out);
    cr_assert_str_eq(out, RFC_ACC);
}

Test(ws_handshake, accept_key_of_long_input)
{
    char key[300], a[29], b[29];

    memset(key, 'k', sizeof(key));
    ws_accept_key(key, sizeof(key), a);
    ws_accept_key(key, sizeof(key), b);
    cr_assert_eq(strlen(a), 28);
    cr_assert_str_eq(a, b);
}

/* ---- valid requests ---- */

Test(ws_handshake, valid_request_and_exact_response)
{
    struct ws_handshake_config cfg = {0};
    struct ws_handshake hs;
    char out[512];

    cr_assert_eq(check_cfg(VALID, &cfg, &hs), 0);
    cr_assert_str_eq(hs.accept, RFC_ACC);
    cr_assert_null(hs.protocol);
    cr_assert(!hs.deflate);
    response_of(&hs, out, sizeof(out));
    cr_assert_str_eq(out, RESP_101 "Sec-WebSocket-Accept: " RFC_ACC "\r\n\r\n");
}

Test(ws_handshake, response_needs_room)
{
    struct ws_handshake_config cfg = {0};
    struct ws_handshake hs;
    char out[512];

    cr_assert_eq(check_cfg(VALID, &cfg, &hs), 0);
    size_t n = ws_handshake_response(&hs, out, sizeof(out));
    cr_assert_eq(ws_handshake_response(&hs, out, n), 0);
    cr_assert_eq(ws_handshake_response(&hs, out, 0), 0);
    cr_assert_eq(ws_handshake_response(&hs, out, n + 1), n);
}

Test(ws_handshake, is_upgrade)
{
    struct http_request req;

    parse(VALID, &req);
    cr_assert_eq(ws_is_upgrade(&req), 1);
    http_request_deinit(&req);
    parse(RL H_HOST H_CONN, &req);
    cr_assert_eq(ws_is_upgrade(&req), 0);
    http_request_deinit(&req);
    parse(RL H_HOST H_UPG "Connection: keep-alive\r\n", &req);
    cr_assert_eq(ws_is_upgrade(&req), 0);
    http_request_deinit(&req);
    parse(RL H_HOST "Upgrade: h2c, WebSocket\r\nConnection: close\r\nConnection: UPGRADE\r\n",
          &req);
    cr_assert_eq(ws_is_upgrade(&req), 1);
    http_request_deinit(&req);
}

/* ---- status table ---- */

struct status_case {
    const char *head;
    int want;
};

#define UPG_CONN_VER H_HOST H_UPG H_CONN H_VER

static const struct status_case status_cases[] = {
    {VALID, 0},
    /* Connection and Upgrade as lists, across fields, in any case. */
    {RL H_HOST H_UPG "Connection: keep-alive, Upgrade\r\n" H_KEY H_VER, 0},
    {RL H_HOST H_UPG "Connection: keep-alive\r\nConnection: upgrade\r\n" H_KEY H_VER, 0},
    {RL H_HOST "Upgrade: WebSocket\r\nConnection: UPGRADE\r\n" H_KEY H_VER, 0},
    {RL H_HOST "Upgrade: foo/2, websocket\r\n" H_CONN H_KEY H_VER, 0},
    {RL H_HOST "Upgrade: foo\r\nUpgrade: websocket\r\n" H_CONN H_KEY H_VER, 0},
    /* Request line and Host. */
    {"POST /chat HTTP/1.1\r\n" BASE, -400},
    {"HEAD /chat HTTP/1.1\r\n" BASE, -400},
    {"GET /chat HTTP/1.0\r\n" BASE, -400},
    {"GET /chat HTTP/1.0\r\n" H_UPG H_CONN H_KEY H_VER, -400},
    /* Upgrade and Connection. */
    {RL H_HOST H_CONN H_KEY H_VER, -400},
    {RL H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VER, -400},
    {RL H_HOST "Upgrade: websockets\r\n" H_CONN H_KEY H_VER, -400},
    {RL H_HOST H_UPG H_KEY H_VER, -400},
    {RL H_HOST H_UPG "Connection: keep-alive\r\n" H_KEY H_VER, -400},
    {RL H_HOST H_UPG "Connection: upgrades\r\n" H_KEY H_VER, -400},
    /* Sec-WebSocket-Key. */
    {RL UPG_CONN_VER, -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key:\r\n", -400},
    {RL UPG_CONN_VER H_KEY H_KEY, -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbX!sZSBub25jZQ==\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ===\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBu=25jZQ==\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ.=\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSB ub25jZQ==\r\n", -400},
    /* 15 bytes (20 characters), 17 bytes (one '='), 18 bytes (no padding). */
    {RL UPG_CONN_VER "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n", -400},
    /* Padding bits that are not zero: not what any encoder produces. */
    {RL UPG_CONN_VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n", -400},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAw==\r\n", 0},
    {RL UPG_CONN_VER "Sec-WebSocket-Key: +/+/+/+/+/+/+/+/+/+/+w==\r\n", 0},
    /* Sec-WebSocket-Version. */
    {RL H_HOST H_UPG H_CONN H_KEY, -426},
    {RL H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 12\r\n", -426},
    {RL H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n", -426},
    {RL H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 130\r\n", -426},
    {RL H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 13, 8\r\n", -426},
    {RL H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version:\r\n", -426},
    {RL H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Version: 8\r\n", -426},
    {RL H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version:   13  \r\n", 0},
    /* A body: its bytes would be read as frames. */
    {RL BASE "Content-Length: 5\r\n", -400},
    {RL BASE "Transfer-Encoding: chunked\r\n", -400},
    {RL BASE "Content-Length: 0\r\n", 0},
    /* A bad key is reported before a bad version. */
    {RL H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 12\r\n", -400},
};

Test(ws_handshake, status_table)
{
    for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
        const struct status_case *c = &status_cases[i];
        cr_assert_eq(check(c->head), c->want, "case %zu: got %d, want %d:\n%s", i, check(c->head),
                     c->want, c->head);
    }
}

/* ---- Origin ---- */

Test(ws_handshake, origin_allow_list)
{
    static const char *const allowed[] = {"https://example.com", "http://localhost:8080", NULL};
    struct ws_handshake_config cfg = {.allowed_origins = allowed};
    struct ws_handshake hs;

    cr_assert_eq(check_cfg(VALID "Origin: https://example.com\r\n", &cfg, &hs), 0);
    cr_assert_eq(check_cfg(VALID "Origin: http://localhost:8080\r\n", &cfg, &hs), 0);
    cr_assert_eq(check_cfg(VALID "Origin: https://evil.example\r\n", &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID "Origin: https://EXAMPLE.com\r\n", &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID "Origin: https://example.com:443\r\n", &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID "Origin: https://example.com/\r\n", &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID "Origin: https://example.co\r\n", &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID "Origin: null\r\n", &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID, &cfg, &hs), -403);
    cr_assert_eq(check_cfg(VALID "Origin: https://example.com\r\nOrigin: https://evil.example\r\n",
                           &cfg, &hs),
                 -403);
    /* The request's own errors come first. */
    cr_assert_eq(
        check_cfg(RL H_HOST H_UPG H_CONN H_KEY "Origin: https://evil.example\r\n", &cfg, &hs),
        -426);
}

Test(ws_handshake, origin_any_without_list)
{
    static const char *const none[] = {NULL};
    struct ws_handshake_config cfg = {0};
    struct ws_handshake hs;

    cr_assert_eq(check_cfg(VALID "Origin: https://anything.example\r\n", &cfg, &hs), 0);
    cr_assert_eq(check_cfg(VALID, &cfg, &hs), 0);
    /* An empty list allows nothing. */
    cfg.allowed_origins = none;
    cr_assert_eq(check_cfg(VALID "Origin: https://anything.example\r\n", &cfg, &hs), -403);
}

/* ---- subprotocols ---- */

static const char *const server_protocols[] = {"v2.herald", "v1.herald", NULL};

static const char *chosen(const char *offer_headers)
{
    struct ws_handshake_config cfg = {.protocols = server_protocols};
    struct ws_handshake hs;
    char head[2048];

    snprintf(head, sizeof(head), "%s%s", VALID, offer_headers);
    cr_assert_eq(check_cfg(head, &cfg, &hs), 0);
    return hs.protocol;
}

Test(ws_handshake, subprotocol_server_preference)
{
    cr_assert_str_eq(chosen("Sec-WebSocket-Protocol: v1.herald, v2.herald\r\n"), "v2.herald");
    cr_assert_str_eq(chosen("Sec-WebSocket-Protocol: v1.herald\r\n"), "v1.herald");
    cr_assert_str_eq(chosen("Sec-WebSocket-Protocol: chat,v1.herald , x\r\n"), "v1.herald");
    cr_assert_str_eq(chosen("Sec-WebSocket-Protocol: chat\r\n"
                            "Sec-WebSocket-Protocol: v1.herald, v2.herald\r\n"),
                     "v2.herald");
    cr_assert_str_eq(chosen("Sec-WebSocket-Protocol: v1.herald\r\n"
                            "Sec-WebSocket-Protocol: chat, v2.herald\r\n"),
                     "v2.herald");
}

Test(ws_handshake, subprotocol_none_matching)
{
    cr_assert_null(chosen(""));
    cr_assert_null(chosen("Sec-WebSocket-Protocol: chat, superchat\r\n"));
    cr_assert_null(chosen("Sec-WebSocket-Protocol: V2.HERALD\r\n"));
    cr_assert_null(chosen("Sec-WebSocket-Protocol: v2.herald.x, v1\r\n"));
    cr_assert_null(chosen("Sec-WebSocket-Protocol: \r\n"));
}

Test(ws_handshake, subprotocol_in_response)
{
    struct ws_handshake_config cfg = {.protocols = server_protocols};
    struct ws_handshake hs;
    char out[512];

    cr_assert_eq(check_cfg(VALID "Sec-WebSocket-Protocol: chat, v1.herald\r\n", &cfg, &hs), 0);
    response_of(&hs, out, sizeof(out));
    cr_assert_str_eq(out, RESP_101 "Sec-WebSocket-Accept: " RFC_ACC
                                   "\r\nSec-WebSocket-Protocol: v1.herald\r\n\r\n");

    cr_assert_eq(check_cfg(VALID "Sec-WebSocket-Protocol: chat\r\n", &cfg, &hs), 0);
    response_of(&hs, out, sizeof(out));
    cr_assert_null(strstr(out, "Sec-WebSocket-Protocol"));

    /* No protocols configured: never a protocol line. */
    cfg.protocols = NULL;
    cr_assert_eq(check_cfg(VALID "Sec-WebSocket-Protocol: v1.herald\r\n", &cfg, &hs), 0);
    cr_assert_null(hs.protocol);
}

/* ---- extensions ---- */

static int ext_check(const char *ext_headers, bool enabled, struct ws_handshake *hs)
{
    struct ws_handshake_config cfg = {.deflate = {.enabled = enabled}};
    char head[2048];

    snprintf(head, sizeof(head), "%s%s", VALID, ext_headers);
    return check_cfg(head, &cfg, hs);
}

Test(ws_handshake, extensions_negotiated)
{
    struct ws_handshake hs;
    char out[512];

    cr_assert_eq(
        ext_check("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", true,
                  &hs),
        0);
    cr_assert(hs.deflate);
    cr_assert_str_eq(hs.extensions, "permessage-deflate; server_no_context_takeover; "
                                    "client_no_context_takeover; client_max_window_bits=15");
    cr_assert(hs.params.server_no_context_takeover);
    cr_assert(hs.params.client_no_context_takeover);
    cr_assert_eq(hs.params.client_max_window_bits, 15);
    response_of(&hs, out, sizeof(out));
    cr_assert_str_eq(out, RESP_101 "Sec-WebSocket-Accept: " RFC_ACC "\r\n"
                                   "Sec-WebSocket-Extensions: permessage-deflate; "
                                   "server_no_context_takeover; client_no_context_takeover; "
                                   "client_max_window_bits=15\r\n\r\n");
}

Test(ws_handshake, extensions_over_several_fields)
{
    struct ws_handshake hs;

    cr_assert_eq(
        ext_check("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
                  true, &hs),
        0);
    cr_assert(hs.deflate);
    cr_assert_eq(hs.params.server_max_window_bits, 10);
    cr_assert_str_eq(hs.extensions, "permessage-deflate; server_no_context_takeover; "
                                    "client_no_context_takeover; server_max_window_bits=10");

    /* A declined offer in the first field, the fallback in the second. */
    cr_assert_eq(
        ext_check("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                  true, &hs),
        0);
    cr_assert(hs.deflate);
    cr_assert_eq(hs.params.server_max_window_bits, 15);
}

Test(ws_handshake, extensions_declined)
{
    struct ws_handshake hs;
    char out[512];

    cr_assert_eq(ext_check("Sec-WebSocket-Extensions: permessage-deflate\r\n", false, &hs), 0);
    cr_assert(!hs.deflate);
    response_of(&hs, out, sizeof(out));
    cr_assert_null(strstr(out, "Sec-WebSocket-Extensions"));

    cr_assert_eq(ext_check("Sec-WebSocket-Extensions: permessage-deflate; foo\r\n", true, &hs), 0);
    cr_assert(!hs.deflate);
    cr_assert_eq(ext_check("", true, &hs), 0);
    cr_assert(!hs.deflate);
}

Test(ws_handshake, protocol_and_extension_together)
{
    struct ws_handshake_config cfg = {.protocols = server_protocols, .deflate = {.enabled = true}};
    struct ws_handshake hs;
    char out[512];

    cr_assert_eq(check_cfg(VALID "Sec-WebSocket-Protocol: v2.herald\r\n"
                                 "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                           &cfg, &hs),
                 0);
    response_of(&hs, out, sizeof(out));
    cr_assert_str_eq(out,
                     RESP_101 "Sec-WebSocket-Accept: " RFC_ACC "\r\n"
                              "Sec-WebSocket-Protocol: v2.herald\r\n"
                              "Sec-WebSocket-Extensions: permessage-deflate; "
                              "server_no_context_takeover; client_no_context_takeover\r\n\r\n");
}
