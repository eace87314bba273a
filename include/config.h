/*
 * config.h - Herald's settings and the command line that sets them.
 *
 * The configuration is filled once in main, before any thread starts, and is read-only afterwards,
 * so every thread may read it without locks.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define HERALD_VERSION     "0.1.0"
#define CONFIG_MAX_ORIGINS 32

struct herald_config {
    char listen_host[256];   /* "0.0.0.0", "::", "127.0.0.1", a name */
    char listen_port[16];    /* "8080"; "0" picks a free port */
    int threads;             /* workers; 0 means one per CPU the process may use */
    int pin;                 /* pin each worker to its own CPU (default 1) */
    int sched_batch;         /* workers switch from SCHED_OTHER to SCHED_BATCH (default 1); a
                                policy set from outside (chrt) is kept; server.c says why */
    int fanout_steer;        /* a worker whose CPU other tasks crowd leaves the shared fan-out
                                queue to the others (default 1; fanout.h) */
    int uring;               /* batch WebSocket sends through io_uring when possible (default 1) */
    const char *root;        /* document root */
    unsigned idle_timeout;   /* seconds without I/O before a connection is closed */
    unsigned header_timeout; /* seconds for a request head to arrive once it has started */
    unsigned body_timeout;   /* seconds for a request body to arrive once its head has */
    unsigned file_cache_ms;  /* small static files are served from memory this long; 0: never */
    int log_level;
    size_t max_request_line;
    size_t max_head;
    unsigned max_headers;
    size_t max_body; /* request bodies over this get 413 */
    unsigned max_connections;

    /* WebSocket */
    const char *echo_path;  /* endpoint echoing every message; NULL: none */
    size_t max_message;     /* largest message accepted (1009 beyond) */
    unsigned ping_interval; /* seconds of silence before the server pings */
    unsigned pong_timeout;  /* seconds to wait for the answer before closing */
    int compression;        /* offer permessage-deflate (default 1) */
    int ws_oneshot;         /* keep upgraded connections on EPOLLONESHOT (default 0: EPOLLET) */
    const char *allowed_origins[CONFIG_MAX_ORIGINS + 1]; /* NULL-terminated; empty: any */

    /* Broker */
    const char *ws_path;        /* the broker's WebSocket endpoint */
    size_t history_size;        /* messages kept per topic */
    unsigned history_ttl;       /* seconds a message stays replayable (0: no limit) */
    size_t history_memory;      /* bytes of kept messages over all topics */
    unsigned max_subscriptions; /* per connection */
    size_t max_outbound;        /* queued bytes per connection before it is a slow consumer */
    const char *client_publish[CONFIG_MAX_ORIGINS + 1]; /* patterns clients may publish to;
                                                           empty: any */
    const char *api_key; /* the HTTP API's bearer key; NULL: API off */
};

/* config_defaults - every setting at its documented default. */
void config_defaults(struct herald_config *cfg);

/*
 * config_parse_args - applies argv to cfg. Returns 0 to run, 1 when --help or --version was
 * handled (text written to `out`), or -1 on a bad option (message written to `err`).
 * Strings in cfg may point into argv.
 */
int config_parse_args(struct herald_config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* config_usage - the --help text. */
void config_usage(FILE *out);

#endif
