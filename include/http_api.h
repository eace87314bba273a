/*
 * http_api.h - the HTTP API for backends, and metrics.
 *
 *   POST /api/publish   {"topic":"t","data":...} or an array of them; Authorization: Bearer KEY
 *   GET  /api/topics    every topic with its subscriber count and last offset; same key
 *   GET  /api/presence  ?topic=NAME[&limit=N]: the topic's presence members; same key
 *   GET  /metrics       Prometheus text format; no key (scrapers usually have none)
 *
 * The API is off until --api-key is given (403 then); a missing or wrong key is 401 with
 * WWW-Authenticate. Replies are JSON: {"offset":N,"reach":N}, {"results":[...]} for a batch, or
 * {"error":{"code":..,"message":..}} with the status. proto/http-api.md is the spec.
 *
 * Threads: any worker; everything it reads is thread-safe (broker, atomics).
 */
#ifndef HERALD_HTTP_API_H
#define HERALD_HTTP_API_H

#include <stdatomic.h>

#include "broker.h"
#include "broker_ws.h"
#include "dmsg.h"
#include "http_parse.h"
#include "outq.h"
#include "stats.h"

struct http_api {
    struct broker *broker;
    struct broker_ws *bw;
    const char *api_key; /* NULL: the API is disabled */
    atomic_uint *nconns;
    struct worker_stats *workers;
    int nworkers;
};

/* http_api_route - 1 if the request is for the API or /metrics, else 0. */
int http_api_route(const struct http_request *req);

/* http_api_wants_body - 1 if the request's body is needed (POST /api/publish), so the
 * connection keeps it (up to --max-body) instead of discarding it. */
int http_api_wants_body(const struct http_request *req);

/* http_api_authorize_head - checks the key of a request whose body the API wants, from its head
 * alone: before a 100 Continue invites the body and before any of it is kept, so a client without
 * the key cannot make the server hold --max-body per connection. Returns 1 when the body may be
 * read; 0 when the request is refused and the answer queued on `out` (403 api_disabled or 401 with
 * WWW-Authenticate, as http_api_handle would give, with Connection: close): the caller then
 * discards the body and closes; -ENOMEM when that answer could not be queued. */
int http_api_authorize_head(const struct http_api *api, const struct http_request *req,
                            struct outq *out);

/* http_api_handle - answers an API request whose body (if kept) is in `body`. Returns 0 or
 * -ENOMEM. keep_alive as for http_handle. */
int http_api_handle(const struct http_api *api, const struct http_request *req,
                    const struct dmsg *body, int keep_alive, struct outq *out);

#endif
