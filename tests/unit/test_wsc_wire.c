/* Unit tests for the C client's wire helpers (clients/c/wsc_wire.c), shared by the integration
 * tests and the load generator. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "wsc_wire.h"
#include "ws_deflate.h"
#include "ws_frame.h"
#include "ws_handshake.h"

Test(wsc_wire, upgrade_request_and_the_servers_answer)
{
    char req[512];
    int n = wsc_upgrade_request(req, sizeof(req), "127.0.0.1:8080", "/ws", "herald.v1",
                                "Origin: http://a\r\n");
    cr_assert_gt(n, 0);
    cr_assert_eq((size_t)n, strlen(req));
    cr_assert_eq(strncmp(req, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n", 40), 0);
    cr_assert_not_null(strstr(req, "\r\nSec-WebSocket-Protocol: herald.v1\r\n"));
    cr_assert_not_null(strstr(req, "\r\nOrigin: http://a\r\n\r\n"));
    cr_assert_eq(wsc_upgrade_request(req, 40, "h", "/ws", NULL, NULL), -1, "does not fit");

    /* The fixed accept value is what Herald's own handshake computes for the fixed key. */
    char accept[29];
    ws_accept_key(WSC_KEY, strlen(WSC_KEY), accept);
    cr_assert_str_eq(accept, WSC_ACCEPT);

    bool ok, ext;
    cr_assert_eq(wsc_upgrade_check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                   "sec-websocket-accept:  " WSC_ACCEPT " \r\n",
                                   &ok, &ext),
                 101);
    cr_assert(ok);
    cr_assert_not(ext);
    cr_assert_eq(wsc_upgrade_check("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: xyz\r\n"
                                   "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                                   &ok, &ext),
                 101);
    cr_assert_not(ok, "a wrong accept value");
    cr_assert(ext);
    cr_assert_eq(wsc_upgrade_check("HTTP/1.1 426 Upgrade Required\r\n", &ok, &ext), 426);
    cr_assert_eq(wsc_upgrade_check("SSH-2.0\r\n", &ok, &ext), -1);
}

Test(wsc_wire, frame_header_with_rsv_and_mask_decodes)
{
    uint8_t mask[4] = {1, 2, 3, 4}, f[14 + 300];
    size_t hl = wsc_frame_header(f, true, 4, WS_OP_TEXT, 300, mask);
    cr_assert_eq(hl, 8);
    cr_assert_eq(f[0], 0x80 | 0x40 | WS_OP_TEXT, "FIN and RSV1: %#x", f[0]);
    cr_assert_eq(f[1], 0x80 | 126, "masked, 16-bit length");
    cr_assert_eq(f[2] << 8 | f[3], 300);
    cr_assert_eq(memcmp(f + 4, mask, 4), 0);
    cr_assert_eq(wsc_frame_header(f, false, 0, WS_OP_CONT, 5, NULL), 2);
    cr_assert_eq(f[0], WS_OP_CONT);
    cr_assert_eq(f[1], 5);
}

Test(wsc_wire, herald_requests_escape_the_topic)
{
    char out[256];
    int n = wsc_herald_sub(out, sizeof(out), "chat.room1", "7", ",\"last\":10");
    cr_assert_str_eq(out, "{\"op\":\"sub\",\"topic\":\"chat.room1\",\"id\":7,\"last\":10}");
    cr_assert_eq((size_t)n, strlen(out));
    wsc_herald_pub(out, sizeof(out), "a\"b\\c\n", "{\"x\":1}", NULL);
    cr_assert_str_eq(out, "{\"op\":\"pub\",\"topic\":\"a\\\"b\\\\c\\u000a\",\"data\":{\"x\":1}}");
    cr_assert_eq(wsc_herald_pub(out, 20, "chat", "1", NULL), -1, "does not fit");
}

Test(wsc_wire, inflates_what_herald_deflates)
{
    char text[3000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "a repeated phrase "[i % 18];
    uint8_t z[4000];
    size_t zn;
    cr_assert_eq(ws_deflate_message((uint8_t *)text, sizeof(text), 15, z, sizeof(z), &zn), 0);
    char *out;
    size_t on;
    cr_assert_eq(wsc_inflate(z, zn, sizeof(text), &out, &on), -1, "exactly full is refused");
    cr_assert_eq(wsc_inflate(z, zn, sizeof(text) + 1, &out, &on), 0);
    cr_assert_eq(on, sizeof(text));
    cr_assert_eq(memcmp(out, text, on), 0);
    free(out);
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(wsc_inflate(junk, sizeof(junk), 100, &out, &on), -1, "corrupt");
}
