/*
 * broker_ws.h - the broker's WebSocket endpoint: protocol herald.v1 (proto/broker.md) between
 * connections and the broker core.
 *
 * Each connection gets a broker session on upgrade and a welcome message; its text frames are
 * requests (proto.h), answered with acks or errors that never close the connection; on every
 * turn of the connection (ws_endpoint.on_run) it pulls the deliveries waiting for it into its send
 * queue, bounded by --max-outbound, and a connection that cannot keep up is closed with 4008
 * ("slow consumer": unsent messages dropped, the close frame sent, the client reconnects and
 * recovers from history).
 */
#ifndef HERALD_BROKER_WS_H
#define HERALD_BROKER_WS_H

#include <stdatomic.h>
#include <stdint.h>

#include "broker.h"
#include "config.h"
#include "ws_conn.h"

#define WS_CLOSE_SLOW_CONSUMER 4008

struct broker_ws {
    struct broker *broker;
    const struct herald_config *cfg;
    char boot[17]; /* session ids: <boot>-<broker session id> */
    atomic_uint_fast64_t slow_consumers;
    atomic_uint_fast64_t recovery_hits, recovery_misses;
};

/* broker_ws_init - the endpoint's shared state over an existing broker. */
void broker_ws_init(struct broker_ws *bw, struct broker *b, const struct herald_config *cfg);

/* broker_ws_endpoint - fills `ep` for path cfg->ws_path with subprotocol herald.v1 and the
 * handshake settings `hs` (origins, compression). */
void broker_ws_endpoint(struct broker_ws *bw, struct ws_endpoint *ep,
                        const struct ws_handshake_config *hs);

#endif
