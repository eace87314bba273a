/* wsload_opts.c - the load generator's command line: its options, the URL, the server's address and
 * the descriptor limit the connections need (wsload.h). A bad option or value exits with status 2;
 * a URL that cannot be parsed or resolved, through die(), with 1. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "wsload.h"

static const struct scenario *const scenarios[] = {&scenario_echo, &scenario_fanout,
                                                   &scenario_rooms, &scenario_connect};

static void usage(FILE *f)
{
    fputs(
        "usage: wsload --url ws://HOST:PORT/PATH [options]\n"
        "  --scenario NAME      what to run: echo, fanout, rooms or connect (echo)\n"
        "  -c, --conns N        connections (100); fanout: subscribers (plus one publisher)\n"
        "  -w, --inflight N     messages in flight per connection (1); fanout: published\n"
        "                       messages not yet delivered (--window)\n"
        "  -b, --bytes N        message size, at least 32 (64); pub/sub: the payload's size\n"
        "  -d, --duration S     measured seconds after the warm-up (10)\n"
        "      --warmup S       seconds of load before measuring (2)\n"
        "      --text           send text messages\n"
        "      --binary         send binary messages (default)\n"
        "  -t, --threads N      threads, each with its own epoll and share of the conns (1)\n"
        "      --connect-timeout S  time to open and upgrade all connections (10)\n"
        "      --server-pid PID     report this process's CPU time per message (repeatable)\n"
        "      --subprotocol NAME   offer this Sec-WebSocket-Protocol\n"
        "      --bind-range A-B     source IPv4 addresses A..B, in turn (many connections)\n"
        "      --ready-file PATH    create PATH once every connection is open (and subscribed)\n"
        "      --go-file PATH       then start the load only when PATH exists (waiting at most\n"
        "                           --connect-timeout): several wsloads start together\n"
        "      --spin-us N          during the load, poll without sleeping while the last\n"
        "                           events came less than N us ago (0: always sleep in\n"
        "                           epoll_wait); on loopback the server pays for each wake-up\n"
        "pub/sub (fanout, rooms, connect; messages are text):\n"
        "      --sub-template TEXT  sent by each subscriber, {topic} replaced (SUB {topic});\n"
        "                           empty: none (the URL path's {topic} subscribes)\n"
        "      --pub-template TEXT  each publication, {topic}, {payload} and {len} (the\n"
        "                           payload's length) replaced (PUB {topic} {payload})\n"
        "      --hello-template TEXT  sent first by every connection, subscriber or not\n"
        "      --multi              a message may hold several deliveries (NATS puts several\n"
        "                           MSG lines in one frame): scan all of it, not its head\n"
        "  the URL path may hold {topic}: each connection's own topic\n"
        "      --skip-first N       messages a subscriber receives before its deliveries\n"
        "                           (welcome, ack): waited for before the load (0)\n"
        "      --topic NAME         fanout's topic; rooms' prefix, room k is NAME.k (bench)\n"
        "      --rooms R            rooms: clients i and j share a room if i = j mod R (10)\n"
        "      --rate R             rooms: messages/s each client publishes (1)\n"
        "      --settle S           after the load, wait for deliveries still due (5)\n"
        "      --window all|probe   fanout: a message is in flight until all subscribers\n"
        "                           have it, or only the first one (all)\n"
        "connect (-c connections open, subscribe, then stay idle for --warmup + -d):\n"
        "      --own-topics         connection i subscribes to TOPIC.i (default: all to TOPIC.0)\n"
        "      --server-pid PID     also gives the server's VmRSS growth per connection\n",
        f);
}

/* Seconds, optionally with a trailing 's' ("10", "2.5s"), to microseconds; -1 if bad. */
static long long parse_secs(const char *s, bool zero_ok)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || (*end && strcmp(end, "s") != 0) || v < 0 || v > 86400 || (!zero_ok && v == 0))
        return -1;
    return (long long)(v * 1e6);
}

static unsigned parse_uint(const char *s, const char *what, unsigned long max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (end == s || *end || v == 0 || v > max) {
        fprintf(stderr, "wsload: bad %s '%s' (1..%lu)\n", what, s, max);
        exit(2);
    }
    return (unsigned)v;
}

/* ws://HOST[:PORT][/PATH]; HOST may be [IPv6]. */
static void parse_url(struct opts *o)
{
    const char *h, *slash, *colon;
    size_t hl;

    if (strncmp(o->url, "ws://", 5) != 0)
        die("--url must start with ws:// (got '%s')", o->url);
    h = o->url + 5;
    slash = strchr(h, '/');
    hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof(o->host) || strlen(slash ? slash : "/") >= sizeof(o->path))
        die("bad --url '%s'", o->url);
    memcpy(o->host, h, hl);
    o->host[hl] = '\0';
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
    colon = strrchr(o->host, ':');
    if (colon && !strchr(colon, ']')) {
        if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(o->port))
            die("bad port in --url '%s'", o->url);
        snprintf(o->port, sizeof(o->port), "%s", colon + 1);
    } else {
        snprintf(o->port, sizeof(o->port), "80");
    }
}

/* A.B.C.D-E.F.G.H (or one address) into o->bind_first and o->bind_count. */
static void parse_bind_range(struct opts *o, const char *s)
{
    char a[32], b[32];
    const char *dash = strchr(s, '-');
    struct in_addr ia, ib;
    size_t al = dash ? (size_t)(dash - s) : strlen(s);

    if (al >= sizeof(a) || (dash && strlen(dash + 1) >= sizeof(b)))
        goto bad;
    snprintf(a, sizeof(a), "%.*s", (int)al, s);
    snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
    if (inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1 ||
        ntohl(ib.s_addr) < ntohl(ia.s_addr) || ntohl(ib.s_addr) - ntohl(ia.s_addr) >= 65536)
        goto bad;
    o->bind_first = ntohl(ia.s_addr);
    o->bind_count = ntohl(ib.s_addr) - ntohl(ia.s_addr) + 1;
    return;
bad:
    fprintf(stderr, "wsload: bad --bind-range '%s' (e.g. 127.0.0.1-127.0.0.8)\n", s);
    exit(2);
}

enum {
    OPT_SUBPROTO = 256,
    OPT_BIND,
    OPT_SUB_TPL,
    OPT_PUB_TPL,
    OPT_SKIP,
    OPT_TOPIC,
    OPT_ROOMS,
    OPT_RATE,
    OPT_SETTLE,
    OPT_WINDOW,
    OPT_OWN_TOPICS,
    OPT_HELLO_TPL,
    OPT_MULTI,
    OPT_READY_FILE,
    OPT_GO_FILE,
    OPT_SPIN,
};

void parse_args(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},
        {"scenario", required_argument, NULL, 's'},
        {"conns", required_argument, NULL, 'c'},
        {"inflight", required_argument, NULL, 'w'},
        {"bytes", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'W'},
        {"text", no_argument, NULL, 'T'},
        {"binary", no_argument, NULL, 'B'},
        {"threads", required_argument, NULL, 't'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"server-pid", required_argument, NULL, 'P'},
        {"subprotocol", required_argument, NULL, OPT_SUBPROTO},
        {"bind-range", required_argument, NULL, OPT_BIND},
        {"sub-template", required_argument, NULL, OPT_SUB_TPL},
        {"pub-template", required_argument, NULL, OPT_PUB_TPL},
        {"skip-first", required_argument, NULL, OPT_SKIP},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"rooms", required_argument, NULL, OPT_ROOMS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"settle", required_argument, NULL, OPT_SETTLE},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"own-topics", no_argument, NULL, OPT_OWN_TOPICS},
        {"hello-template", required_argument, NULL, OPT_HELLO_TPL},
        {"multi", no_argument, NULL, OPT_MULTI},
        {"ready-file", required_argument, NULL, OPT_READY_FILE},
        {"go-file", required_argument, NULL, OPT_GO_FILE},
        {"spin-us", required_argument, NULL, OPT_SPIN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *scen = "echo";
    char *end;
    long long us;
    int ch;

    *o = (struct opts){.conns = 100,
                       .inflight = 1,
                       .threads = 1,
                       .bytes = 64,
                       .opcode = WS_OP_BINARY,
                       .duration_us = 10000000,
                       .warmup_us = 2000000,
                       .connect_timeout_us = 10000000,
                       .sub_template = "SUB {topic}",
                       .pub_template = "PUB {topic} {payload}",
                       .topic = "bench",
                       .rooms = 10,
                       .rate = 1,
                       .window = "all",
                       .settle_us = 5000000};
    while ((ch = getopt_long(argc, argv, "c:w:b:d:t:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 's':
            scen = optarg;
            break;
        case 'c':
            o->conns = parse_uint(optarg, "connection count", 1000000);
            break;
        case 'w':
            o->inflight = parse_uint(optarg, "in-flight count", 1000000);
            break;
        case 'b':
            o->bytes = parse_uint(optarg, "message size", MAX_BYTES);
            break;
        case 't':
            o->threads = parse_uint(optarg, "thread count", 256);
            break;
        case 'T':
            o->opcode = WS_OP_TEXT;
            break;
        case 'B':
            o->opcode = WS_OP_BINARY;
            break;
        case OPT_SUBPROTO:
            o->subprotocol = optarg;
            break;
        case OPT_BIND:
            parse_bind_range(o, optarg);
            break;
        case OPT_SUB_TPL:
            o->sub_template = optarg;
            break;
        case OPT_PUB_TPL:
            o->pub_template = optarg;
            break;
        case OPT_SKIP:
            o->skip_first = strcmp(optarg, "0") == 0 ? 0 : parse_uint(optarg, "--skip-first", 1000);
            break;
        case OPT_WINDOW:
            o->window = optarg;
            break;
        case OPT_OWN_TOPICS:
            o->own_topics = true;
            break;
        case OPT_HELLO_TPL:
            o->hello_template = optarg;
            break;
        case OPT_MULTI:
            o->multi = true;
            break;
        case OPT_READY_FILE:
            o->ready_file = optarg;
            break;
        case OPT_GO_FILE:
            o->go_file = optarg;
            break;
        case OPT_SPIN:
            o->spin_us = strtoul(optarg, &end, 10);
            if (end == optarg || *end || o->spin_us > 1000000) {
                fprintf(stderr, "wsload: bad --spin-us '%s' (0..1000000)\n", optarg);
                exit(2);
            }
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_ROOMS:
            o->rooms = parse_uint(optarg, "room count", 1000000);
            break;
        case OPT_RATE:
            o->rate = strtod(optarg, &end);
            if (end == optarg || *end || !(o->rate > 0 && o->rate <= 1e6)) {
                fprintf(stderr, "wsload: bad --rate '%s' (messages/s per client)\n", optarg);
                exit(2);
            }
            break;
        case 'd':
        case 'W':
        case 'C':
        case OPT_SETTLE:
            if ((us = parse_secs(optarg, ch == 'W' || ch == OPT_SETTLE)) < 0) {
                fprintf(stderr, "wsload: bad duration '%s' (seconds, e.g. 10 or 2.5s)\n", optarg);
                exit(2);
            }
            *(ch == 'd'          ? &o->duration_us
              : ch == 'W'        ? &o->warmup_us
              : ch == OPT_SETTLE ? &o->settle_us
                                 : &o->connect_timeout_us) = (uint64_t)us;
            break;
        case 'P':
            if (o->nserver_pid == sizeof(o->server_pid) / sizeof(o->server_pid[0])) {
                fprintf(stderr, "wsload: at most 8 --server-pid\n");
                exit(2);
            }
            o->server_pid[o->nserver_pid++] = (int)parse_uint(optarg, "pid", 1u << 30);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || !o->url) {
        usage(stderr);
        exit(2);
    }
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (strcmp(scen, scenarios[i]->name) == 0)
            o->scenario = scenarios[i];
    if (!o->scenario) {
        fprintf(stderr, "wsload: unknown scenario '%s' (have: echo, fanout, rooms, connect)\n",
                scen);
        exit(2);
    }
    if (o->bytes < MIN_BYTES) {
        fprintf(stderr, "wsload: -b must be at least %d (the payload carries seq and ts)\n",
                MIN_BYTES);
        exit(2);
    }
    if (o->threads > o->conns)
        o->threads = o->conns;
    parse_url(o);
}

void resolve(struct run *run)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char host[256];
    size_t hl = strcspn(run->o.host, ":");
    int r;

    if (run->o.host[0] == '[') /* [IPv6]:port */
        snprintf(host, sizeof(host), "%.*s", (int)(strcspn(run->o.host, "]") - 1), run->o.host + 1);
    else
        snprintf(host, sizeof(host), "%.*s", (int)hl, run->o.host);
    r = getaddrinfo(host, run->o.port, &hints, &ai);
    if (r != 0)
        die("cannot resolve '%s': %s", host, gai_strerror(r));
    memcpy(&run->addr, ai->ai_addr, ai->ai_addrlen);
    run->addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

/* Enough file descriptors for the connections, if the hard limit allows. */
void raise_nofile(unsigned conns)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)conns + 64
                          ? (rlim_t)conns + 64
                          : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
