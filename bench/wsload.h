/*
 * wsload.h - what the files of the load generator share: the run, its threads ("workers"), the
 * client connections, the statistics and the scenario interface.
 *
 * wsload.c owns the transport (connect, handshake, frames, epoll loops) and the phases of a run;
 * wsload_opts.c the command line; wsload_report.c the latency histogram, the CPU counters and the
 * report. A scenario (struct scenario) decides what open connections send and checks what comes
 * back. echo lives in wsload.c; the pub/sub scenarios `fanout`, `rooms` and `connect` in
 * wsload_pubsub.c. Everything here runs on the worker thread that owns the connection, except
 * where a comment says otherwise.
 */
#ifndef HERALD_BENCH_WSLOAD_H
#define HERALD_BENCH_WSLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "ws_frame.h"

#define RBUF_SIZE (256 * 1024)
#define HEAD_MAX  256 /* bytes of each message kept for the scenario (room for envelopes) */
#define MIN_BYTES 32
#define MAX_BYTES (16u << 20)

/* ---- latency histogram (log-linear, fixed size; see wsload.c) ---- */

#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 40
#define HIST_N        (((HIST_MAX_BITS - HIST_SUB_BITS) << HIST_SUB_BITS) + (2 << HIST_SUB_BITS))

struct hist {
    uint64_t n[HIST_N];
    uint64_t count, sum, max;
};

void hist_add(struct hist *h, uint64_t v);

/* ---- options, run ---- */

struct opts {
    const char *url;
    char host[256]; /* for the Host header, as given in the URL */
    char port[8];
    char path[512];
    const struct scenario *scenario;
    unsigned conns, inflight, threads;
    size_t bytes;
    uint8_t opcode;
    uint64_t duration_us, warmup_us, connect_timeout_us;
    int server_pid[8]; /* --server-pid: whose CPU time to report per message */
    unsigned nserver_pid;
    const char *subprotocol; /* --subprotocol: offered in the handshake, or NULL */
    uint32_t bind_first;     /* --bind-range: source IPv4 addresses (host order), 0 if unset */
    unsigned bind_count;
    /* pub/sub scenarios */
    const char *sub_template, *pub_template; /* {topic}, {payload}, {len} replaced */
    const char *hello_template;              /* sent by every connection first, or NULL */
    bool multi;          /* a message may hold several deliveries: the whole of it is scanned */
    const char *topic;   /* fanout's topic; rooms' topic prefix */
    unsigned skip_first; /* messages a subscriber gets before deliveries */
    unsigned rooms;
    double rate;        /* rooms: messages/s each client publishes */
    const char *window; /* fanout: "all" or "probe" (what "in flight" waits for) */
    uint64_t settle_us; /* after the load: how long to wait for deliveries still on their way */
    bool own_topics;    /* connect: each connection subscribes to a topic of its own */
    /* Start together with another wsload: ready_file is created once every connection is open
     * and subscribed, and the load starts only when go_file exists (bench/pubsub.sh SIDE=1). */
    const char *ready_file, *go_file;
    /* --spin-us: during the load, keep polling without sleeping while events came this recently
     * (0: always wait in epoll_wait). */
    uint64_t spin_us;
};

/* CPU counters sampled at both ends of the measured window. */
struct cpu_sample {
    uint64_t wall_us;
    struct rusage self;         /* this process, all threads */
    long long server_ticks;     /* utime+stime of the --server-pid processes; -1 if unreadable */
    long long server_rss_kib;   /* their VmRSS summed (KiB); -1 if unreadable */
    uint64_t sys_busy, sys_all; /* /proc/stat, all CPUs: busy, and everything */
};

/* Shared by all threads; written only by the main thread and by the barrier's serial thread. */
struct run {
    struct opts o;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    pthread_barrier_t barrier;
    struct worker *workers;
    unsigned nworkers;
    struct client *clients;         /* all of them, workers' shares one after the other */
    uint64_t t_start;               /* the threads start connecting */
    uint64_t t_load, t_meas, t_end; /* load start, measured window [t_meas, t_end) */
    struct cpu_sample cpu_start;    /* before any connection (main thread) */
    struct cpu_sample cpu0, cpu1;   /* at t_meas and t_end (taken by worker 0) */
    void *scen;                     /* the scenario's own run state */
};

struct stats {
    struct hist lat;      /* round trips (echo) or deliveries (pub/sub) completed in the window */
    uint64_t rx_bytes;    /* payload bytes received in the window */
    uint64_t reads;       /* recv calls that returned data in the window */
    uint64_t open;        /* connections upgraded */
    uint64_t connect_err; /* connect or handshake failed, or timed out */
    uint64_t proto_err;   /* the server sent something the decoder or the scenario refused */
    uint64_t bad_echo;    /* echo with the wrong sequence, size or opcode */
    uint64_t closed;      /* the server closed or reset a connection during the load */
    /* pub/sub, over the whole run (not only the window) */
    uint64_t unready;      /* subscribers not confirmed (--skip-first) in time: left out */
    uint64_t published;    /* messages sent by publishers */
    uint64_t expected;     /* deliveries owed to the subscribers counted */
    uint64_t received;     /* deliveries (messages carrying the payload marker) */
    uint64_t lost;         /* sum over subscribers of expected - received, where positive */
    uint64_t extra;        /* sum over subscribers of received - expected, where positive */
    uint64_t out_of_order; /* a publisher's sequence number other than the next expected */
    uint64_t misrouted;    /* a delivery from a publisher outside the subscriber's topic */
    uint64_t ignored;      /* messages without the marker (welcome, acks) */
};

/* ---- clients, workers ---- */

enum client_state { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DEAD };

struct client {
    int fd;
    enum client_state state;
    struct worker *w;
    uint8_t mask[4];
    uint32_t events; /* registered with epoll */
    struct ws_decoder dec;
    char *hs; /* handshake response so far (C_HANDSHAKE only) */
    size_t hs_len;
    uint8_t *out; /* unsent bytes are out[out_off, out_len) */
    size_t out_off, out_len, out_cap;
    uint8_t msg_op; /* the current data message: opcode, length, first bytes */
    uint64_t msg_len;
    uint8_t head[HEAD_MAX];
    uint8_t ctrl[125]; /* the current control frame's payload */
    size_t ctrl_len;
    uint64_t next_seq, expect_seq; /* echo; pub/sub: next_seq as publisher */
    /* pub/sub */
    unsigned id;        /* index in run->clients */
    bool sub, counted;  /* subscribes; subscribed in time, so its deliveries are owed */
    uint64_t rx_msgs;   /* data messages received, deliveries or not */
    uint64_t got;       /* deliveries */
    uint64_t *exp_seq;  /* next sequence number expected from each publisher of its topic */
    unsigned topic_idx; /* rooms: its room */
    const char *topic;  /* its topic ({topic} in the URL path), or NULL */
    size_t topic_len;
    uint16_t marker_at; /* where the payload marker was in its last delivery */
    uint8_t *big;       /* --multi: the whole current message */
    size_t big_cap;
};

struct worker {
    unsigned id;
    pthread_t thread;
    struct run *run;
    int ep;
    int wake_fd; /* an eventfd in ep: worker_wake from another thread ends this one's wait */
    struct client *c;
    unsigned nc, next_connect, connecting, settled;
    bool loading;    /* scenarios may send */
    bool wake_main;  /* fanout: a message completed here; worker 0 is woken before the next wait */
    unsigned warned; /* client_warn messages printed */
    struct stats st;
    uint64_t sends;        /* rooms: publications scheduled so far by this worker */
    uint64_t t_open;       /* its connections are all open (or failed) */
    uint64_t t_subscribed; /* ... and subscribed (pub/sub scenarios) */
    uint64_t t_event;      /* --spin-us: when the last poll returned events */
    uint8_t rbuf[RBUF_SIZE];
};

/*
 * A scenario decides what the open connections send and checks what comes back. Callbacks run on
 * the connection's worker thread unless noted; what they queue with client_frame on the client
 * being called is flushed after them (on any other client, the scenario flushes it).
 * Only name, start_cb and message_cb are required.
 */
struct scenario {
    const char *name;
    bool idle; /* sends nothing during the load: a run succeeds when connections opened */
    /* Main thread, once, after the options and before anything is allocated: check options,
     * adjust o.conns and o.threads, set up run->scen. */
    void (*setup_cb)(struct run *run);
    /* Main thread, for each client once run->clients exists, before its worker starts. */
    void (*client_init_cb)(struct run *run, struct client *c);
    /* Connections are open, before the load: queue the hello and subscribe (if c->sub) requests. */
    void (*subscribe_cb)(struct client *c, uint64_t now);
    /* The load starts (all connections are open): queue the first messages. */
    void (*start_cb)(struct client *c, uint64_t now);
    /* A whole data message arrived: its opcode, length, first min(len, HEAD_MAX) bytes. */
    void (*message_cb)(struct client *c, uint8_t opcode, uint64_t len, const uint8_t *head,
                       uint64_t now);
    /* Before every wait for events during the load: timers, deferred flushes. The ms it wants
     * to wait at most, or -1 for no limit. */
    int (*tick_cb)(struct worker *w, uint64_t now);
    /* An open connection is closing (not at the end of the run); any worker. */
    void (*closed_cb)(struct client *c);
    /* After the load, all threads stopped sending: the worker's clients have all they are owed.
     * Also fills the worker's expected/lost/extra counts (called until true or timeout). */
    bool (*settled_cb)(struct worker *w);
    /* Main thread, after the run: extra ",\"key\":value" JSON fields for the report. */
    void (*report_cb)(const struct run *run, const struct stats *st, char *json, size_t n);
};

extern const struct scenario scenario_echo, scenario_fanout, scenario_rooms, scenario_connect;

/* ---- the command line (wsload_opts.c; main thread, before the workers start) ---- */

/* parse_args - fills *o from argv, defaults first; exits 2 on a bad option or value, 1 (die) on a
 * bad --url, 0 after --help. */
void parse_args(struct opts *o, int argc, char **argv);
/* resolve - the URL's host and port into run->addr; dies if they do not resolve. */
void resolve(struct run *run);
/* raise_nofile - raises the soft descriptor limit for `conns` connections, as far as the hard
 * limit allows. */
void raise_nofile(unsigned conns);

/* ---- statistics and the report (wsload_report.c) ---- */

/* cpu_sample_take - reads a cpu_sample's counters now: ours (getrusage), the --server-pid
 * processes' (/proc/PID/stat, status) and all CPUs' (/proc/stat). Main thread or worker 0. */
void cpu_sample_take(const struct opts *o, struct cpu_sample *s);
/* stats_merge - adds `from` (a worker's stats, the worker stopped) into `to`. */
void stats_merge(struct stats *to, const struct stats *from);
/* report - the run's readable line and JSON line on stdout; main thread, every worker ended. */
void report(const struct run *run, const struct stats *st);

uint64_t now_us(void);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A connection-level error: the first few per thread go to stderr, the rest are only counted. */
void client_warn(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queues one masked frame whose payload the caller writes into *payload (then calls
 * client_frame_done); NULL if the client's output is over its cap. */
uint8_t *client_frame(struct client *c, uint8_t opcode, size_t len, uint8_t **payload);
void client_frame_done(struct client *c, uint8_t *payload, size_t len);
/* Writes what is queued; waits for EPOLLOUT when the socket is full. 0, or -1 (closed). */
int client_flush(struct client *c);
/* Leaves the connection closed in state `to` (C_IDLE: closed cleanly; C_DEAD: failed). */
void client_close(struct client *c, enum client_state to);
/* Ends w's wait for events now, so that its tick_cb runs; any thread. */
void worker_wake(struct worker *w);

#endif
