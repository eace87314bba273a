/*
 * test_ws_upgrade_oom.c - the WebSocket upgrade, and a large send, when memory runs out (found in
 * review: a failed inflater allocation freed the 101 response already queued, a use after free; a
 * large frame whose payload could not be queued left its header queued alone).
 *
 * malloc is wrapped (-Wl,--wrap=malloc, see the Makefile) so that a chosen allocation size fails;
 * the upgrade must then fail cleanly, leaving nothing queued and nothing leaked (ASan checks).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "outq.h"
#include "twheel.h"
#include "ws_conn.h"
#include "ws_deflate.h"
#include "ws_frame.h"
#include "ws_handshake.h"

#include "malloc_fail.h"

/* A connection not yet upgraded, without a socket, and what it needs around it. Set up in place
 * (env points into it). */
struct rig {
    struct herald_config cfg;
    struct twheel wheel;
    struct conn_env env;
    struct conn c;
    struct ws_endpoint ep;
    struct ws_handshake hs;
};

static void rig_init(struct rig *r, bool deflate)
{
    memset(r, 0, sizeof(*r));
    config_defaults(&r->cfg);
    cr_assert_eq(twheel_init(&r->wheel, twheel_now()), 0);
    r->env = (struct conn_env){.cfg = &r->cfg, .wheel = &r->wheel, .epfd = -1};
    r->c.env = &r->env;
    r->c.fd = -1;
    twheel_entry_init(&r->c.tw);
    outq_init(&r->c.out);
    r->ep = (struct ws_endpoint){.path = "/ws"};
    r->hs = (struct ws_handshake){.deflate = deflate};
    strcpy(r->hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    if (deflate) {
        r->hs.params = (struct ws_deflate_params){.server_no_context_takeover = true,
                                                  .client_no_context_takeover = true,
                                                  .server_max_window_bits = 15,
                                                  .client_max_window_bits = 15};
        strcpy(r->hs.extensions, "permessage-deflate; server_no_context_takeover");
    }
}

static void rig_fini(struct rig *r)
{
    outq_deinit(&r->c.out); /* reads and frees what is queued: ASan sees a freed buffer */
    twheel_remove(&r->wheel, &r->c.tw);
    twheel_deinit(&r->wheel);
}

static void upgrade(size_t failing, bool deflate, int want_rc)
{
    struct rig r;
    rig_init(&r, deflate);
    fail_size = failing;
    int rc = ws_conn_upgrade(&r.c, &r.ep, &r.hs);
    fail_size = 0;
    cr_assert_eq(rc, want_rc);
    if (rc < 0) {
        cr_assert_eq(r.c.out.count, 0, "nothing of a failed upgrade stays queued");
        cr_assert_null(r.c.ws);
    } else {
        cr_assert_eq(r.c.out.count, 1, "the 101");
        ws_conn_free(&r.c);
    }
    rig_fini(&r);
}

Test(ws_upgrade_oom, inflater_allocation_fails)
{
    upgrade(sizeof(struct ws_inflater), true, -ENOMEM);
}

Test(ws_upgrade_oom, response_buffer_allocation_fails)
{
    upgrade(sizeof(struct obuf) + 512, true, -ENOMEM);
}

Test(ws_upgrade_oom, nothing_fails)
{
    upgrade(0, true, 0);
    upgrade(0, false, 0);
}

/* A frame too large to copy goes as its header and the message's own buffers: when the second
 * cannot be queued, the first must not stay (the next frame would be read as its payload). */
Test(ws_send_oom, a_large_frame_is_queued_whole_or_not_at_all)
{
    struct rig r;
    rig_init(&r, false);
    struct conn *c = &r.c;
    cr_assert_eq(ws_conn_upgrade(c, &r.ep, &r.hs), 0);
    size_t before = outq_bytes(&c->out);
    char big[4000];
    memset(big, 'x', sizeof(big));
    struct dmsg msg;
    dmsg_init(&msg, 1 << 20);
    cr_assert_eq(dmsg_append(&msg, big, sizeof(big)), 0);
    fail_size = sizeof(struct dmsg); /* the queue's copy of the message */
    int rc = ws_send_dmsg(c, WS_OP_TEXT, &msg);
    fail_size = 0;
    cr_assert_eq(rc, -ENOMEM);
    cr_assert_eq(c->out.count, 1, "only the 101: no header without its payload");
    cr_assert_eq(outq_bytes(&c->out), before);
    cr_assert_eq(dmsg_len(&msg), sizeof(big), "the message is left to the caller");
    /* With memory, the same message goes as two joined segments. */
    cr_assert_eq(ws_send_dmsg(c, WS_OP_TEXT, &msg), 0);
    cr_assert_eq(c->out.count, 3);
    cr_assert_eq(outq_bytes(&c->out), before + 4 + sizeof(big));
    dmsg_deinit(&msg);
    ws_conn_free(c);
    rig_fini(&r);
}
