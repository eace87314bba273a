/* config.c - defaults and command-line parsing (see config.h). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topic.h"

#ifndef HERALD_DEFAULT_ROOT
#define HERALD_DEFAULT_ROOT "clients/web"
#endif

void config_defaults(struct herald_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->listen_host, "0.0.0.0");
    strcpy(cfg->listen_port, "8080");
    cfg->threads = 0;
    cfg->pin = 1;
    cfg->sched_batch = 1;
    cfg->fanout_steer = 1;
    cfg->uring = 1;
    cfg->root = HERALD_DEFAULT_ROOT;
    cfg->idle_timeout = 5;
    cfg->header_timeout = 10;
    cfg->body_timeout = 60;
    cfg->file_cache_ms = 1000;
    cfg->log_level = LOG_INFO;
    cfg->max_request_line = 8192;
    cfg->max_head = 16384;
    cfg->max_headers = 100;
    cfg->max_body = 1 << 20;
    cfg->max_connections = 100000;
    cfg->echo_path = NULL;
    cfg->max_message = 1 << 20;
    cfg->ping_interval = 25;
    cfg->pong_timeout = 10;
    cfg->compression = 1;
    cfg->ws_path = "/ws";
    cfg->history_size = 1000;
    cfg->history_ttl = 300;
    cfg->history_memory = (size_t)256 << 20;
    cfg->max_subscriptions = 256;
    cfg->max_outbound = 1 << 20;
    /* A key in the environment stays out of `ps` output; config_parse_args checks its length. */
    const char *key = getenv("HERALD_API_KEY");
    cfg->api_key = key && *key ? key : NULL;
}

void config_usage(FILE *out)
{
    fprintf(out,
            "Usage: herald [OPTIONS]\n"
            "Herald %s: a WebSocket-first realtime message broker with an HTTP/1.1 core.\n"
            "\n"
            "  --listen HOST:PORT      address to listen on (default 0.0.0.0:8080;\n"
            "                          IPv6 as [::]:8080; port 0 picks a free port)\n"
            "  --threads N             worker threads (default: one per usable CPU)\n"
            "  --no-pin                let the scheduler move workers between CPUs\n"
            "                          (default: each worker pinned to its own CPU)\n"
            "  --sched POLICY          batch: workers run as SCHED_BATCH (a woken worker\n"
            "                          does not preempt another task on its CPU); normal:\n"
            "                          they keep the policy Herald was started with\n"
            "                          (default batch; a policy set with chrt is kept)\n"
            "  --fanout-all            every worker serves large fan-outs, also one whose\n"
            "                          CPU other processes keep busy (default: such a\n"
            "                          worker leaves them to the workers with free CPUs)\n"
            "  --no-uring              make every WebSocket send with its own sendmsg, not\n"
            "                          in batches through io_uring (default: io_uring where\n"
            "                          the kernel allows it)\n"
            "  --root DIR              document root for static files\n"
            "                          (default %s)\n"
            "  --file-cache-ms MS      serve small static files from memory, reading them\n"
            "                          again this long after (default 1000; 0: always read)\n"
            "  --idle-timeout SEC      close connections idle this long (default 5)\n"
            "  --header-timeout SEC    a request head must arrive within this (default 10)\n"
            "  --body-timeout SEC      and its body within this after the head (default 60)\n"
            "  --max-body BYTES        largest request body accepted (default 1048576)\n"
            "  --max-connections N     connections beyond this are refused (default 100000)\n"
            "  --log-level LEVEL       error, warn, info or debug (default info)\n"
            "\nWebSocket:\n"
            "  --echo-path PATH        serve an endpoint that echoes every message (default off)\n"
            "  --max-message BYTES     largest message accepted, 1009 beyond (default 1048576)\n"
            "  --ping-interval SEC     ping a connection silent this long (default 25)\n"
            "  --pong-timeout SEC      close it if no pong comes this long after (default 10)\n"
            "  --no-compression        do not negotiate permessage-deflate\n"
            "  --ws-oneshot            keep WebSocket connections on EPOLLONESHOT, re-armed\n"
            "                          after every event (default: edge-triggered once upgraded)\n"
            "  --allowed-origin ORIGIN accept upgrades only from this Origin (repeatable;\n"
            "                          default: any origin)\n"
            "\nBroker:\n"
            "  --ws-path PATH          the broker's WebSocket endpoint (default /ws)\n"
            "  --history-size N        messages kept per topic for recovery (default 1000)\n"
            "  --history-ttl SEC       how long they stay replayable, 0: no limit (default 300)\n"
            "  --history-memory BYTES  kept messages of all topics together, at most about\n"
            "                          (default 268435456)\n"
            "  --max-subscriptions N   per connection (default 256)\n"
            "  --max-outbound BYTES    messages waiting for a connection (queued or in the\n"
            "                          history) before it is disconnected as a slow consumer\n"
            "                          (default 1048576)\n"
            "  --client-publish PATTERN  clients may publish only to topics matching a pattern\n"
            "                          given (repeatable; default: any topic)\n"
            "  --api-key KEY           enable the HTTP API (POST /api/publish, GET /api/topics,\n"
            "                          GET /api/presence) with this bearer key of 16 characters\n"
            "                          or more (default: off; or HERALD_API_KEY)\n"
            "  --help                  this text\n"
            "  --version               the version\n",
            HERALD_VERSION, HERALD_DEFAULT_ROOT);
}

/* Parses a decimal in [min, max]; returns 0 or -1. */
static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Splits "host:port" or "[v6]:port" into cfg. Returns 0 or -1. */
static int parse_listen(struct herald_config *cfg, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    if (!colon || colon[1] == '\0')
        return -1;
    const char *host = arg;
    size_t hlen = (size_t)(colon - arg);
    if (hlen >= 2 && arg[0] == '[' && arg[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    } else if (memchr(arg, ':', hlen)) {
        return -1; /* an IPv6 address must be bracketed */
    }
    unsigned long port;
    if (hlen == 0 || hlen >= sizeof(cfg->listen_host) ||
        parse_ulong(colon + 1, 0, 65535, &port) < 0)
        return -1;
    memcpy(cfg->listen_host, host, hlen);
    cfg->listen_host[hlen] = '\0';
    snprintf(cfg->listen_port, sizeof(cfg->listen_port), "%lu", port);
    return 0;
}

/* Appends to a NULL-terminated list of CONFIG_MAX_ORIGINS entries. */
static int add_to(const char **list, const char *item)
{
    for (int i = 0; i < CONFIG_MAX_ORIGINS; i++) {
        if (!list[i]) {
            list[i] = item;
            return 0;
        }
    }
    return -1;
}

enum {
    OPT_LISTEN = 256,
    OPT_THREADS,
    OPT_NO_PIN,
    OPT_FANOUT_ALL,
    OPT_SCHED,
    OPT_NO_URING,
    OPT_WS_ONESHOT,
    OPT_ROOT,
    OPT_IDLE,
    OPT_HEADER,
    OPT_BODY_TIMEOUT,
    OPT_MAX_BODY,
    OPT_MAX_CONN,
    OPT_LOG,
    OPT_FILE_CACHE,
    OPT_ECHO,
    OPT_MAX_MSG,
    OPT_PING,
    OPT_PONG,
    OPT_NO_COMPRESSION,
    OPT_ORIGIN,
    OPT_WS_PATH,
    OPT_HIST_SIZE,
    OPT_HIST_TTL,
    OPT_HIST_MEM,
    OPT_MAX_SUBS,
    OPT_MAX_OUT,
    OPT_CLIENT_PUB,
    OPT_API_KEY,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"no-pin", no_argument, NULL, OPT_NO_PIN},
    {"fanout-all", no_argument, NULL, OPT_FANOUT_ALL},
    {"sched", required_argument, NULL, OPT_SCHED},
    {"no-uring", no_argument, NULL, OPT_NO_URING},
    {"root", required_argument, NULL, OPT_ROOT},
    {"file-cache-ms", required_argument, NULL, OPT_FILE_CACHE},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"header-timeout", required_argument, NULL, OPT_HEADER},
    {"body-timeout", required_argument, NULL, OPT_BODY_TIMEOUT},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"echo-path", required_argument, NULL, OPT_ECHO},
    {"max-message", required_argument, NULL, OPT_MAX_MSG},
    {"ping-interval", required_argument, NULL, OPT_PING},
    {"pong-timeout", required_argument, NULL, OPT_PONG},
    {"no-compression", no_argument, NULL, OPT_NO_COMPRESSION},
    {"ws-oneshot", no_argument, NULL, OPT_WS_ONESHOT},
    {"allowed-origin", required_argument, NULL, OPT_ORIGIN},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"history-size", required_argument, NULL, OPT_HIST_SIZE},
    {"history-ttl", required_argument, NULL, OPT_HIST_TTL},
    {"history-memory", required_argument, NULL, OPT_HIST_MEM},
    {"max-subscriptions", required_argument, NULL, OPT_MAX_SUBS},
    {"max-outbound", required_argument, NULL, OPT_MAX_OUT},
    {"client-publish", required_argument, NULL, OPT_CLIENT_PUB},
    {"api-key", required_argument, NULL, OPT_API_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Applies one parsed option; returns 0, 1 (help/version done) or -1 (bad value). */
static int apply_opt(struct herald_config *cfg, int opt, const char *arg, FILE *out)
{
    unsigned long v;
    int lvl;
    switch (opt) {
    case OPT_LISTEN:
        return parse_listen(cfg, arg);
    case OPT_THREADS:
        if (parse_ulong(arg, 1, 1024, &v) < 0)
            return -1;
        cfg->threads = (int)v;
        return 0;
    case OPT_NO_URING:
        cfg->uring = 0;
        return 0;
    case OPT_NO_PIN:
        cfg->pin = 0;
        return 0;
    case OPT_FANOUT_ALL:
        cfg->fanout_steer = 0;
        return 0;
    case OPT_SCHED:
        if (strcmp(arg, "batch") != 0 && strcmp(arg, "normal") != 0)
            return -1;
        cfg->sched_batch = arg[0] == 'b';
        return 0;
    case OPT_ROOT:
        cfg->root = arg;
        return 0;
    case OPT_FILE_CACHE:
        if (parse_ulong(arg, 0, 3600000, &v) < 0)
            return -1;
        cfg->file_cache_ms = (unsigned)v;
        return 0;
    case OPT_IDLE:
    case OPT_HEADER:
    case OPT_BODY_TIMEOUT:
        if (parse_ulong(arg, 1, 86400, &v) < 0)
            return -1;
        *(opt == OPT_IDLE     ? &cfg->idle_timeout
          : opt == OPT_HEADER ? &cfg->header_timeout
                              : &cfg->body_timeout) = (unsigned)v;
        return 0;
    case OPT_MAX_BODY:
        if (parse_ulong(arg, 0, 1ul << 40, &v) < 0)
            return -1;
        cfg->max_body = v;
        return 0;
    case OPT_MAX_CONN:
        if (parse_ulong(arg, 1, 10000000, &v) < 0)
            return -1;
        cfg->max_connections = (unsigned)v;
        return 0;
    case OPT_LOG:
        lvl = log_level_parse(arg);
        if (lvl < 0)
            return -1;
        cfg->log_level = lvl;
        return 0;
    case OPT_ECHO:
        if (arg[0] != '/')
            return -1;
        cfg->echo_path = arg;
        return 0;
    case OPT_MAX_MSG:
        if (parse_ulong(arg, 125, 1ul << 31, &v) < 0)
            return -1;
        cfg->max_message = v;
        return 0;
    case OPT_PING:
    case OPT_PONG:
        if (parse_ulong(arg, 1, 86400, &v) < 0)
            return -1;
        *(opt == OPT_PING ? &cfg->ping_interval : &cfg->pong_timeout) = (unsigned)v;
        return 0;
    case OPT_NO_COMPRESSION:
        cfg->compression = 0;
        return 0;
    case OPT_WS_ONESHOT:
        cfg->ws_oneshot = 1;
        return 0;
    case OPT_ORIGIN:
        return add_to(cfg->allowed_origins, arg);
    case OPT_WS_PATH:
        if (arg[0] != '/')
            return -1;
        cfg->ws_path = arg;
        return 0;
    case OPT_HIST_SIZE:
        if (parse_ulong(arg, 1, 10000000, &v) < 0)
            return -1;
        cfg->history_size = v;
        return 0;
    case OPT_HIST_TTL:
        if (parse_ulong(arg, 0, 86400 * 365, &v) < 0)
            return -1;
        cfg->history_ttl = (unsigned)v;
        return 0;
    case OPT_HIST_MEM:
        if (parse_ulong(arg, 65536, (unsigned long)1 << 40, &v) < 0)
            return -1;
        cfg->history_memory = v;
        return 0;
    case OPT_MAX_SUBS:
        if (parse_ulong(arg, 1, 1000000, &v) < 0)
            return -1;
        cfg->max_subscriptions = (unsigned)v;
        return 0;
    case OPT_MAX_OUT:
        if (parse_ulong(arg, 4096, 1ul << 32, &v) < 0)
            return -1;
        cfg->max_outbound = v;
        return 0;
    case OPT_CLIENT_PUB:
        if (pattern_check(arg, strlen(arg), NULL))
            return -1;
        return add_to(cfg->client_publish, arg);
    case OPT_API_KEY:
        if (strlen(arg) < 16)
            return -1; /* a guessable key protects nothing */
        cfg->api_key = arg;
        return 0;
    case OPT_HELP:
        config_usage(out);
        return 1;
    case OPT_VERSION:
        fprintf(out, "herald %s\n", HERALD_VERSION);
        return 1;
    }
    return -1;
}

int config_parse_args(struct herald_config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = 0;
        int opt = getopt_long(argc, argv, "", long_opts, &idx);
        if (opt == -1)
            break;
        if (opt == '?') {
            fprintf(err, "herald: unknown or incomplete option '%s' (try --help)\n",
                    argv[optind - 1]);
            return -1;
        }
        int rc = apply_opt(cfg, opt, optarg, out);
        if (rc < 0) {
            fprintf(err, "herald: invalid value '%s' for --%s (try --help)\n", optarg,
                    long_opts[idx].name);
            return -1;
        }
        if (rc > 0)
            return 1;
    }
    if (optind < argc) {
        fprintf(err, "herald: unexpected argument '%s' (try --help)\n", argv[optind]);
        return -1;
    }
    /* Only a key from the environment can still be short: --api-key refused one. Ignoring it
     * would leave the API off without a word. */
    if (cfg->api_key && strlen(cfg->api_key) < 16) {
        fprintf(err, "herald: HERALD_API_KEY has fewer than 16 characters\n");
        return -1;
    }
    return 0;
}
