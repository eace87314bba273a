/* server.c - epoll, workers, accept, timer and shutdown (see server.h). */
#include "server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "conn_batch.h"
#include "cpu_share.h"
#include "err.h"
#include "fanout.h"
#include "log.h"
#include "outq.h"
#include "reclaim.h"
#include "static_cache.h"
#include "static_files.h"
#include "broker.h"
#include "broker_ws.h"
#include "http_api.h"
#include "stats.h"
#include "twheel.h"
#include "ws_conn.h"

/* Events taken per epoll_wait. Small on purpose: events taken by one worker wait for it, so a
 * large batch would leave other workers idle while ready connections queue behind one thread. A
 * single worker has nobody to leave idle and takes more, in fewer calls. */
#define EVENTS_PER_WAIT       8
#define EVENTS_PER_WAIT_ALONE 64
/* Connections accepted per wake-up before the listener is handed to the next worker. */
#define ACCEPTS_PER_WAKE 64
/* An idle worker still wakes this often (ms), so that memory retired by others is freed. */
#define IDLE_WAKE_MS 1000
/* Topic-table buckets broker_sweep looks at per timer tick (a second), at least: small tables are
 * covered in one tick, large ones within a minute (broker.h). */
#define SWEEP_BUCKETS 1024

struct server {
    const struct herald_config *cfg;
    int epfd, listen_fd, timer_fd;
    int stop_pipe[2];
    int signal_fd; /* -1 until server_stop_on_signals */
    int port;
    int nthreads;
    int ncpus;
    int *cpus;                 /* CPUs the process may run on, from sched_getaffinity */
    atomic_bool accept_paused; /* out of descriptors: the timer re-arms the listener */
    atomic_uint nconns;
    struct twheel wheel;
    struct reclaim reclaim;
    struct static_root root;
    struct conn_env env;
    struct ws_endpoint endpoints[2];
    struct broker *broker;
    struct broker_ws broker_ws;
    struct http_api api;
    struct worker_stats *stats; /* one per worker */
    struct fanout fanout;
    char fanout_tag;
    /* Addresses used as epoll tags for the non-connection fds. */
    char listen_tag, timer_tag, stop_tag, signal_tag;
};

static int epoll_add(int epfd, int fd, uint32_t events, void *tag)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int epoll_rearm(int epfd, int fd, uint32_t events, void *tag)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

/* Binds the first address of host:port that works. Returns the fd or -errno. */
static int open_listener(const struct herald_config *cfg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(cfg->listen_host, cfg->listen_port, &hints, &res);
    if (rc != 0) {
        log_msg(LOG_ERROR, "listen address %s: %s", cfg->listen_host, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fd = -errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) /* "[::]" serves IPv4 clients too */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        /* Accept a connection only once its first bytes (a request, a handshake) have come:
         * the accepting worker can then answer at once (see conn_start). */
        int defer = (int)cfg->header_timeout;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        int e = -errno;
        close(fd);
        fd = e;
    }
    freeaddrinfo(res);
    if (fd < 0)
        log_msg(LOG_ERROR, "cannot listen on %s:%s: %s", cfg->listen_host, cfg->listen_port,
                herald_strerror(fd));
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* The CPUs this process may use, so pinning respects taskset and cgroup limits. */
static int usable_cpus(struct server *srv)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return -errno;
    srv->ncpus = CPU_COUNT(&set);
    srv->cpus = calloc((size_t)srv->ncpus, sizeof(int));
    if (!srv->cpus)
        return -ENOMEM;
    for (int cpu = 0, k = 0; cpu < CPU_SETSIZE && k < srv->ncpus; cpu++)
        if (CPU_ISSET(cpu, &set))
            srv->cpus[k++] = cpu;
    return 0;
}

static int setup_fds(struct server *srv)
{
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->epfd < 0 || pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    srv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (srv->timer_fd < 0)
        return -errno;
    struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};
    if (timerfd_settime(srv->timer_fd, 0, &its, NULL) < 0)
        return -errno;
    int rc = epoll_add(srv->epfd, srv->listen_fd, EPOLLIN | EPOLLONESHOT, &srv->listen_tag);
    if (rc == 0)
        rc = epoll_add(srv->epfd, srv->timer_fd, EPOLLIN | EPOLLONESHOT, &srv->timer_tag);
    if (rc == 0) /* level-triggered, never one-shot: every worker must see it */
        rc = epoll_add(srv->epfd, srv->stop_pipe[0], EPOLLIN, &srv->stop_tag);
    return rc;
}

/* ---- fan-out: wake batches from the broker, spread over the workers ---- */

static void owner_ref(void *owner)
{
    conn_ref(owner);
}

static void owner_unref(void *owner)
{
    conn_unref(owner);
}

/* The calling worker's send batch (NULL: sends are made one at a time; see conn_batch.h). */
static __thread struct conn_batch *worker_batch;

/* Wakes every owner of the batch on this worker, their sends made together in the worker's send
 * batch (conn_batch.h), then lets go of them and of the batch. */
static void batch_serve(struct broker_batch *batch, int worker)
{
    for (unsigned i = 0; i < batch->n; i++) {
        if (conn_batch_full())
            conn_batch_flush(worker);
        conn_wake(batch->owners[i], CONN_WAKE_DATA, worker);
    }
    /* A connection whose send waits in the batch is open and busy, so its own reference keeps it:
     * the batch's references can go before the send is made. */
    for (unsigned i = 0; i < batch->n; i++)
        conn_unref(batch->owners[i]);
    free(batch);
}

/* A connection's event, its publishes' wakes dispatched together at the end (broker.h:
 * broker_hold_begin): when several workers serve a fan-out, a subscriber woken by the first
 * message of a burst would otherwise be served, and sent to, once per few messages of the burst. */
static void serve_event(struct conn *c, uint32_t events, int worker)
{
    broker_hold_begin();
    conn_on_event(c, events, worker);
    broker_hold_end();
}

/* A batch nobody will serve: its references go, and the batch. */
static void batch_drop(struct broker_batch *batch)
{
    for (unsigned i = 0; i < batch->n; i++)
        conn_unref(batch->owners[i]);
    free(batch);
}

/* Wake batches a worker keeps for itself: those of the publishes of an event it handled (or of a
 * leave its closes caused) small enough not to be worth spreading. Served right after the event
 * that made them, so a small publish costs no eventfd write, no epoll_wait and no eventfd read, and
 * the deliveries leave from a warm cache. Large batches go through the shared queue even with one
 * worker: there they wait behind the events already taken, so the publisher's next messages are
 * read first and each subscriber takes more of them per send (serving 10,000 subscribers at once
 * after every publish cost 0.84 against 0.62 us per delivery in one of two A/B pairs; the same in
 * the other).
 */
#define LOCAL_BATCH_OWNERS 16 /* at most this many owners in a batch kept */
#define LOCAL_BATCHES      64 /* beyond this, batches go to the shared queue */

struct local_fanout {
    struct broker_batch *q[LOCAL_BATCHES];
    unsigned n;
    int worker; /* whose */
};

/* The calling worker's (NULL on other threads, which use the shared queue only). */
static __thread struct local_fanout *local_fanout;

/* Serves the batches kept by this worker, including those that serving them adds. */
static void local_drain(struct local_fanout *lf, int worker)
{
    for (unsigned k = 0; k < lf->n; k++)
        batch_serve(lf->q[k], worker);
    lf->n = 0;
}

/* Keeps the batch on this worker (above), or queues it for the workers that serve the shared
 * queue (fanout.h), so the subscribers of a large topic are served by every worker whose CPU is
 * free, not by the publisher's alone. */
static void fanout_dispatch(struct broker_batch *batch, void *ctx)
{
    struct fanout *f = ctx;
    struct local_fanout *lf = local_fanout;
    if (lf && batch->n <= LOCAL_BATCH_OWNERS && lf->n < LOCAL_BATCHES) {
        lf->q[lf->n++] = batch;
        return;
    }
    int rc = fanout_push(f, batch, lf ? lf->worker : -1);
    if (rc == 0)
        return;
    /* Closed: destroying connections at shutdown frees sessions, whose presence leaves wake the
     * other members; nobody will serve them, and those owners are destroyed next. */
    if (rc == -ENOMEM && lf && lf->n < LOCAL_BATCHES) {
        lf->q[lf->n++] = batch; /* no memory to queue it: this worker serves it */
    } else {
        /* Out of memory off a worker or with this worker's queue full: the owners stay marked
         * as woken until their own next input or keepalive pong makes them pull. */
        batch_drop(batch);
    }
}

/* Whether workers measure their CPUs' load (cpu_share.h), which steering needs: each must be
 * alone on a CPU of its own, or two on one CPU would each count the other as the load that
 * crowds it. Measured with --fanout-all too, for /metrics. */
static bool measures_cpus(const struct server *srv)
{
    return srv->cfg->pin && srv->nthreads > 1 && srv->nthreads <= srv->ncpus;
}

/* Serves the shared queue's batches while this worker holds a token, FANOUT_CHUNK per wait. */
static void fanout_serve(struct server *srv, int worker)
{
    struct broker_batch *b;
    for (int k = 0; k < FANOUT_CHUNK && (b = fanout_next(&srv->fanout, worker)); k++) {
        STATS_COUNT(fanout_batches, 1);
        batch_serve(b, worker);
    }
}

/* The worker's CPU share (cpu_share.h), sampled after its waits: a time check per wait, /proc read
 * and the verdict and gauge stored once per window. The verdict steers the shared fan-out queue
 * (fanout.h). */
static void share_sample(struct server *srv, struct cpu_share *cs, int worker)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    int rc = cpu_share_sample(cs, now);
    if (rc == 0)
        return; /* the window is still open: nothing new */
    if (rc < 0) {
        /* Unreadable from now on (a CPU gone offline, a /proc without the line): a verdict
         * that can no longer change must not keep the worker out. */
        log_msg(LOG_WARN, "worker %d: cannot read its CPU's load any more: it serves fan-out",
                worker);
        cpu_share_close(cs);
        cs->others = 0;
        cs->crowded = false;
    }
    fanout_set_crowded(&srv->fanout, worker, cs->crowded);
    if (stats_local)
        atomic_store_explicit(&stats_local->cpu_others_permille,
                              (uint_fast64_t)(cs->others * 1000 + 0.5), memory_order_relaxed);
}

static int setup_broker(struct server *srv)
{
    const struct herald_config *cfg = srv->cfg;
    struct fanout *f = &srv->fanout;
    int rc = fanout_init(f, srv->nthreads, cfg->fanout_steer && measures_cpus(srv));
    if (rc < 0)
        return rc;
    rc = epoll_add(srv->epfd, f->efd, EPOLLIN, &srv->fanout_tag);
    if (rc < 0)
        return rc;
    struct broker_config bc = {.history_size = cfg->history_size,
                               .history_ttl = cfg->history_ttl,
                               .history_memory = cfg->history_memory,
                               .max_subscriptions = cfg->max_subscriptions,
                               .max_lag = cfg->max_outbound};
    struct broker_hooks hooks = {
        .ref = owner_ref, .unref = owner_unref, .dispatch = fanout_dispatch, .ctx = f};
    srv->broker = broker_new(&bc, &hooks);
    if (!srv->broker)
        return -ENOMEM;
    broker_ws_init(&srv->broker_ws, srv->broker, cfg);
    srv->stats = aligned_alloc(64, sizeof(*srv->stats) * (size_t)srv->nthreads);
    if (!srv->stats)
        return -ENOMEM;
    memset(srv->stats, 0, sizeof(*srv->stats) * (size_t)srv->nthreads);
    srv->api = (struct http_api){.broker = srv->broker,
                                 .bw = &srv->broker_ws,
                                 .api_key = cfg->api_key,
                                 .nconns = &srv->nconns,
                                 .workers = srv->stats,
                                 .nworkers = srv->nthreads};
    return 0;
}

/* The subprotocol the echo endpoint speaks (any client may also ask for none). */
static const char *const echo_protocols[] = {"echo", NULL};

/* The WebSocket endpoints the configuration asks for. */
static void setup_endpoints(struct server *srv)
{
    const struct herald_config *cfg = srv->cfg;
    struct ws_handshake_config hs = {
        .protocols = NULL,
        .allowed_origins = cfg->allowed_origins[0] ? cfg->allowed_origins : NULL,
        .deflate = {.enabled = cfg->compression != 0},
    };
    unsigned n = 0;
    broker_ws_endpoint(&srv->broker_ws, &srv->endpoints[n++], &hs);
    if (cfg->echo_path && strcmp(cfg->echo_path, cfg->ws_path) != 0) {
        srv->endpoints[n] = (struct ws_endpoint){
            .path = cfg->echo_path, .hs = hs, .on_message = ws_echo_on_message};
        srv->endpoints[n].hs.protocols = echo_protocols;
        n++;
    }
    srv->env.ws_endpoints = srv->endpoints;
    srv->env.n_ws_endpoints = n;
}

int server_new(struct server **out, const struct herald_config *cfg)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->cfg = cfg;
    srv->epfd = srv->listen_fd = srv->timer_fd = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    srv->signal_fd = -1;
    srv->root.dirfd = -1;
    atomic_init(&srv->accept_paused, false);
    atomic_init(&srv->nconns, 0);
    int rc = twheel_init(&srv->wheel, twheel_now());
    if (rc < 0) {
        free(srv);
        return rc;
    }
    rc = static_root_open(&srv->root, cfg->root);
    if (rc < 0) {
        log_msg(LOG_ERROR, "document root %s: %s", cfg->root, herald_strerror(rc));
        server_free(srv);
        return rc;
    }
    if ((rc = usable_cpus(srv)) < 0 || (srv->listen_fd = rc = open_listener(cfg)) < 0 ||
        (rc = setup_fds(srv)) < 0) {
        server_free(srv);
        return rc;
    }
    srv->port = bound_port(srv->listen_fd);
    srv->nthreads = cfg->threads > 0 ? cfg->threads : srv->ncpus;
    if ((rc = reclaim_init(&srv->reclaim, srv->nthreads)) < 0) {
        server_free(srv);
        return rc;
    }
    srv->env = (struct conn_env){
        .cfg = cfg,
        .http = {.root = &srv->root, .api = &srv->api, .file_cache_ms = cfg->file_cache_ms},
        .wheel = &srv->wheel,
        .epfd = srv->epfd,
        .nconns = &srv->nconns,
        .reclaim = &srv->reclaim};
    if ((rc = setup_broker(srv)) < 0) {
        server_free(srv);
        return rc;
    }
    setup_endpoints(srv);
    http_limits_default(&srv->env.limits);
    srv->env.limits.max_request_line = cfg->max_request_line;
    srv->env.limits.max_head = cfg->max_head;
    srv->env.limits.max_headers = cfg->max_headers;
    *out = srv;
    return 0;
}

int server_port(const struct server *srv)
{
    return srv->port;
}

int server_threads(const struct server *srv)
{
    return srv->nthreads;
}

/* Sets socket options and hands the descriptor to a new connection. */
static void admit(struct server *srv, int fd, int worker)
{
    if (atomic_load(&srv->nconns) >= srv->cfg->max_connections) {
        /* At most one line a second, however many are refused. */
        static _Atomic uint64_t last_warned;
        uint64_t now = twheel_now() / 1000, prev = atomic_load(&last_warned);
        if (now != prev && atomic_compare_exchange_strong(&last_warned, &prev, now))
            log_msg(LOG_WARN, "connections refused: %u open (--max-connections)",
                    srv->cfg->max_connections);
        close(fd);
        return;
    }
    int one = 1;
    /* Responses leave in one writev; Nagle would only delay them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_start(&srv->env, fd, worker);
}

static void on_accept(struct server *srv, int worker)
{
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(srv, fd, worker);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The pending connection stays readable: re-arming now would spin. The timer
             * re-arms the listener within a second. */
            log_msg(LOG_WARN, "accept paused: %s", herald_strerror(-errno));
            atomic_store(&srv->accept_paused, true);
            return;
        }
        log_msg(LOG_ERROR, "accept: %s", herald_strerror(-errno));
        break;
    }
    epoll_rearm(srv->epfd, srv->listen_fd, EPOLLIN | EPOLLONESHOT, &srv->listen_tag);
}

/* Expired connections, collected under the wheel's mutex and woken after it is released. */
struct expired {
    struct conn **v;
    size_t n, cap;
};

static int collect_expired(struct twheel_entry *e, void *arg)
{
    struct expired *x = arg;
    if (x->n == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        struct conn **v = realloc(x->v, ncap * sizeof(*v));
        if (!v)
            return -1; /* left in the wheel: retried at the next tick */
        x->v = v;
        x->cap = ncap;
    }
    x->v[x->n++] = (struct conn *)e;
    return 0;
}

static void on_timer(struct server *srv, int worker)
{
    uint64_t ticks;
    ssize_t r = read(srv->timer_fd, &ticks, sizeof(ticks));
    (void)r; /* EAGAIN is harmless: the sweep below is idempotent */
    struct expired x = {0};
    twheel_expire(&srv->wheel, twheel_now(), collect_expired, &x);
    /* These pointers stay valid until this batch ends even if their connections close now: a
     * closed connection is only retired (reclaim.h). */
    for (size_t i = 0; i < x.n; i++)
        conn_wake(x.v[i], CONN_WAKE_TIMER, worker);
    free(x.v);
    /* Topic housekeeping: a slice of the table per tick, so the registry's write lock is short. */
    broker_sweep(srv->broker, SWEEP_BUCKETS);
    if (atomic_exchange(&srv->accept_paused, false))
        epoll_rearm(srv->epfd, srv->listen_fd, EPOLLIN | EPOLLONESHOT, &srv->listen_tag);
    epoll_rearm(srv->epfd, srv->timer_fd, EPOLLIN | EPOLLONESHOT, &srv->timer_tag);
}

/* A stop signal is pending: the worker that got the one-shot event takes it and writes the
 * shutdown pipe, which every worker sees. Left disarmed after that: the server is stopping. */
static void on_signal(struct server *srv)
{
    struct signalfd_siginfo si;
    if (read(srv->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si)) {
        epoll_rearm(srv->epfd, srv->signal_fd, EPOLLIN | EPOLLONESHOT, &srv->signal_tag);
        return;
    }
    log_msg(LOG_INFO, "SIG%s received: stopping", sigabbrev_np((int)si.ssi_signo));
    server_stop(srv);
}

struct worker {
    struct server *srv;
    int index;
    bool batch; /* switch to SCHED_BATCH (want_batch) */
    pthread_t thread;
};

/* Pins the calling worker to its CPU if asked to. Returns whether it is pinned. */
static bool pin(struct server *srv, int index)
{
    if (!srv->cfg->pin)
        return false;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(srv->cpus[index % srv->ncpus], &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0)
        log_msg(LOG_WARN, "worker %d: cannot pin to CPU %d: %s", index,
                srv->cpus[index % srv->ncpus], herald_strerror(-rc));
    return rc == 0;
}

/* Workers run as SCHED_BATCH, which only gives up wakeup preemption. A pinned worker that the
 * shared epoll wakes on a CPU busy with another task cannot move; preempting that task would make
 * the two share one CPU while another worker's CPU idles. Not preempting, it waits its turn. The
 * event it was woken for waits with it, unless a worker already running calls epoll_wait first or
 * a later event wakes another one: under a steady stream of events, the work goes to the workers
 * that can run. Alone on its CPU a worker runs at once either way; behind a busy task, an event
 * can wait for that task's slice to end (README, Design). */
static void set_batch(int index)
{
    struct sched_param sp = {.sched_priority = 0};
    int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (rc != 0)
        log_msg(LOG_WARN, "worker %d: cannot run as SCHED_BATCH: %s", index, herald_strerror(-rc));
}

/* Whether the workers switch to SCHED_BATCH: asked for, and the process runs under the default
 * policy. One chosen from outside (`chrt`: real-time, idle, batch) is kept. Decided once, on the
 * main thread before the others start: with SCHED_RESET_ON_FORK only it still has that policy. */
static bool want_batch(const struct herald_config *cfg)
{
    return cfg->sched_batch && (sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) == SCHED_OTHER;
}

/* Handles the events of one wait. Returns 1 once the stop pipe has been seen. */
static int handle_events(struct server *srv, const struct epoll_event *evs, int n, int worker,
                         struct local_fanout *lf)
{
    int stop = 0;
    for (int i = 0; i < n; i++) {
        if (conn_batch_full())
            conn_batch_flush(worker);
        void *tag = evs[i].data.ptr;
        if (tag == &srv->listen_tag)
            on_accept(srv, worker);
        else if (tag == &srv->timer_tag)
            on_timer(srv, worker);
        else if (tag == &srv->fanout_tag)
            fanout_on_ready(&srv->fanout, worker);
        else if (tag == &srv->signal_tag)
            on_signal(srv);
        else if (tag == &srv->stop_tag)
            stop = 1; /* finish this batch: its connections are owned by this thread */
        else
            serve_event(tag, evs[i].events, worker);
        if (lf->n)
            local_drain(lf, worker);
    }
    return stop;
}

/* Sets up the calling thread as worker `w`: pinned, its policy, counters, caches. */
static void worker_start(struct worker *w, struct cpu_share *cs)
{
    struct server *srv = w->srv;
    bool pinned = pin(srv, w->index);
    if (w->batch)
        set_batch(w->index);
    stats_local = &srv->stats[w->index];
    /* Fan-out takes a frame's references here in bulk, not one atomic per delivery (outq.h). */
    if (obuf_cache_open() < 0)
        log_msg(LOG_WARN, "worker %d: no reference cache (out of memory)", w->index);
    int err = 0;
    worker_batch = srv->cfg->uring ? conn_batch_new(&err) : NULL;
    if (srv->cfg->uring && !worker_batch)
        log_msg(w->index == 0 ? LOG_INFO : LOG_DEBUG,
                "worker %d: no io_uring (%s): one sendmsg per WebSocket send", w->index,
                herald_strerror(err));
    *cs = (struct cpu_share){.stat_fd = -1, .self_fd = -1};
    if (pinned && measures_cpus(srv) &&
        (err = cpu_share_open(cs, srv->cpus[w->index % srv->ncpus])) < 0)
        log_msg(LOG_WARN, "worker %d: cannot measure its CPU's load (%s): it always serves fan-out",
                w->index, herald_strerror(err));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct server *srv = w->srv;
    struct cpu_share cs;
    worker_start(w, &cs);
    struct epoll_event evs[EVENTS_PER_WAIT_ALONE];
    int per_wait = srv->nthreads == 1 ? EVENTS_PER_WAIT_ALONE : EVENTS_PER_WAIT;
    struct local_fanout lf = {.n = 0, .worker = w->index};
    local_fanout = &lf;
    for (int stop = 0; !stop;) {
        obuf_cache_flush(); /* frames whose sends went out are freed before the wait */
        reclaim_enter_wait(&srv->reclaim, w->index);
        /* A token holder only looks for events between its chunks of fan-out. */
        int timeout = fanout_holding(&srv->fanout, w->index) ? 0 : IDLE_WAKE_MS;
        int n = epoll_wait(srv->epfd, evs, per_wait, timeout);
        reclaim_leave_wait(&srv->reclaim, w->index);
        if (n < 0 && errno != EINTR) {
            log_msg(LOG_ERROR, "epoll_wait: %s", herald_strerror(-errno));
            break;
        }
        if (cs.stat_fd >= 0)
            share_sample(srv, &cs, w->index);
        /* The sends of this wait's events go out together (conn_batch.h). */
        conn_batch_begin(worker_batch);
        stop = handle_events(srv, evs, n, w->index, &lf);
        if (fanout_holding(&srv->fanout, w->index))
            fanout_serve(srv, w->index);
        /* Finishing the batched turns may publish (a turn goes on with input left over): the
         * batches it keeps are served before this worker waits again. */
        conn_batch_flush(w->index);
        while (lf.n) {
            local_drain(&lf, w->index);
            conn_batch_flush(w->index);
        }
        conn_batch_end(w->index);
        reclaim_poll(&srv->reclaim, w->index);
    }
    local_fanout = NULL; /* worker 0 is the main thread, which goes on to shut down */
    cpu_share_close(&cs);
    conn_batch_free(worker_batch);
    worker_batch = NULL;
    ws_deflate_thread_cleanup();
    static_cache_thread_free();
    obuf_cache_close();
    return NULL;
}

int server_run(struct server *srv)
{
    int n = srv->nthreads;
    struct worker *ws = calloc((size_t)n, sizeof(*ws));
    if (!ws)
        return -ENOMEM;
    int started = 1, rc = 0;
    bool batch = want_batch(srv->cfg);
    for (int i = 1; i < n; i++, started++) {
        ws[i] = (struct worker){.srv = srv, .index = i, .batch = batch};
        rc = -pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
        if (rc < 0) {
            log_msg(LOG_ERROR, "cannot start worker %d: %s", i, herald_strerror(rc));
            server_stop(srv);
            break;
        }
    }
    ws[0] = (struct worker){.srv = srv, .index = 0, .batch = batch};
    if (rc == 0)
        worker_main(&ws[0]);
    for (int i = 1; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    free(ws);
    /* Every worker is gone. Wake batches still queued only hold references. */
    struct broker_batch *b;
    while ((b = fanout_close(&srv->fanout)))
        batch_drop(b);
    /* The wheel holds every remaining connection. */
    struct twheel_entry *e;
    while ((e = twheel_drain(&srv->wheel)))
        conn_destroy((struct conn *)e);
    return rc;
}

int server_stop_on_signals(struct server *srv, const sigset_t *set)
{
    int rc = -pthread_sigmask(SIG_BLOCK, set, NULL);
    if (rc < 0)
        return rc;
    srv->signal_fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (srv->signal_fd < 0)
        return -errno;
    return epoll_add(srv->epfd, srv->signal_fd, EPOLLIN | EPOLLONESHOT, &srv->signal_tag);
}

void server_stop(struct server *srv)
{
    char b = 1;
    ssize_t r = write(srv->stop_pipe[1], &b, 1);
    (void)r; /* a full pipe already says "stop" */
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    int fds[] = {srv->epfd,         srv->listen_fd,    srv->timer_fd,
                 srv->stop_pipe[0], srv->stop_pipe[1], srv->signal_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    static_root_close(&srv->root);
    if (srv->reclaim.workers)
        reclaim_deinit(&srv->reclaim); /* frees connections closed but not yet reclaimed */
    broker_free(srv->broker);          /* after every session is gone */
    fanout_deinit(&srv->fanout);
    free(srv->stats);
    twheel_deinit(&srv->wheel);
    free(srv->cpus);
    free(srv);
}
