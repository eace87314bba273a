/* Integration: threads, timeouts, shutdown, limits, the command line, and load. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(server, .timeout = 120);

/* An idle keep-alive connection is closed quietly, also after the empty line a client may send
 * after a request (RFC 9112 2.2: skipped; it once counted as a request begun, and earned a 408). */
Test(server, idle_connection_is_closed_after_idle_timeout)
{
    struct herald_proc p;
    const char *args[] = {"--idle-timeout", "1", NULL};
    herald_start(&p, args);
    static const char *const tails[] = {"", "\r\n", "\n\r\n"};
    for (size_t k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
        struct client c;
        client_open(&c, p.port);
        char req[128];
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\n\r\n%s", tails[k]);
        send_str(c.fd, req);
        struct http_resp r;
        cr_assert_eq(read_response(&c, &r, 0), 0);
        resp_free(&r);
        long long t0 = now_ms();
        char buf[256];
        ssize_t n = read_to_eof(c.fd, buf, sizeof(buf) - 1, 6000);
        long long dt = now_ms() - t0;
        if (n > 0)
            buf[n] = '\0';
        cr_assert_eq(n, 0, "case %zu: closed without sending anything more (got: %s)", k,
                     n > 0 ? buf : "-");
        cr_assert(dt >= 900 && dt <= 3500, "closed after %lld ms, want about 1-2 s", dt);
        client_close(&c);
    }
    free(herald_stop(&p));
}

Test(server, trickling_client_is_cut_off_by_header_timeout)
{
    struct herald_proc p;
    const char *args[] = {"--idle-timeout", "3", "--header-timeout", "2", NULL};
    herald_start(&p, args);
    int fd = tcp_connect(p.port);
    long long t0 = now_ms();
    const char *req = "GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int closed = 0;
    char buf[1024];
    for (const char *s = req; *s && !closed; s++) {
        if (send(fd, s, 1, MSG_NOSIGNAL) < 0)
            break;
        /* Every byte is within the idle timeout; only the header timeout can end this. */
        ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 400);
        if (n >= 0) {
            buf[n] = '\0';
            closed = 1;
            if (n > 0)
                cr_assert(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "%s", buf);
        }
    }
    long long dt = now_ms() - t0;
    cr_assert(closed, "the server kept a trickling connection open for %lld ms", dt);
    cr_assert(dt >= 1500 && dt <= 4500, "cut off after %lld ms, want about 2-3 s", dt);
    close(fd);
    free(herald_stop(&p));
}

/* The same for a body: each byte within the idle timeout, the whole body never. Before
 * --body-timeout a 1 MiB body could take 5 s a byte, holding the connection for weeks. */
Test(server, trickling_body_is_cut_off_by_body_timeout)
{
    struct herald_proc p;
    const char *args[] = {"--idle-timeout", "3", "--body-timeout", "2", NULL};
    herald_start(&p, args);
    static const char *const methods[] = {"POST", "HEAD"}; /* HEAD: the 408 without a body */
    for (size_t m = 0; m < 2; m++) {
        int fd = tcp_connect(p.port);
        char req[128];
        snprintf(req, sizeof(req), "%s /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n",
                 methods[m]);
        send_str(fd, req);
        long long t0 = now_ms();
        int closed = 0;
        char buf[1024];
        for (int i = 0; i < 100 && !closed; i++) {
            if (send(fd, "b", 1, MSG_NOSIGNAL) < 0)
                break;
            ssize_t n = read_to_eof(fd, buf, sizeof(buf) - 1, 400);
            if (n >= 0) {
                buf[n] = '\0';
                closed = 1;
                cr_assert(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "%s", n > 0 ? buf : "(nothing)");
                const char *end = strstr(buf, "\r\n\r\n");
                cr_assert(end && (m == 0) == (end[4] != '\0'), "%s: %s", methods[m], buf);
            }
        }
        long long dt = now_ms() - t0;
        cr_assert(closed, "the server kept a trickling %s body open for %lld ms", methods[m], dt);
        cr_assert(dt >= 1500 && dt <= 4500, "cut off after %lld ms, want about 2-3 s", dt);
        close(fd);
    }
    free(herald_stop(&p));
}

Test(server, shutdown_is_clean_with_connections_open)
{
    struct herald_proc p;
    const char *args[] = {"--threads", "3", NULL};
    herald_start(&p, args);
    int fds[20];
    for (int i = 0; i < 20; i++) {
        fds[i] = tcp_connect(p.port);
        if (i % 3 == 0)
            send_str(fds[i], "GET / HTTP/1.1\r\nHost: t\r\n"); /* mid-request */
        else if (i % 3 == 1)
            send_str(fds[i], "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); /* answered, kept alive */
    }
    usleep(300000);
    long long t0 = now_ms();
    char *log = herald_stop(&p); /* asserts exit 0 and no sanitizer (leak) report */
    cr_assert_lt(now_ms() - t0, 5000, "shutdown took too long");
    cr_assert_not_null(strstr(log, "stopped"));
    free(log);
    for (int i = 0; i < 20; i++)
        close(fds[i]);
}

/* Calls fn(k, line, ctx) with every line of /proc/PID/task/TID/status of each of pid's threads
 * (k: the thread's index), for at most `max` threads. Returns how many threads were read. */
static int each_thread_status(pid_t pid, int max, void (*fn)(int, const char *, void *), void *ctx)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        if (de->d_name[0] == '.')
            continue;
        char sp[400], line[256];
        snprintf(sp, sizeof(sp), "/proc/%d/task/%s/status", pid, de->d_name);
        FILE *f = fopen(sp, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f))
            fn(n, line, ctx);
        fclose(f);
        n++;
    }
    closedir(d);
    return n;
}

struct sig_count {
    const char *field; /* "SigBlk:" or "SigCgt:" */
    int sig, set;
};

static void count_sig(int k, const char *line, void *ctx)
{
    (void)k;
    struct sig_count *c = ctx;
    if (strncmp(line, c->field, strlen(c->field)) == 0)
        c->set += (strtoull(line + strlen(c->field), NULL, 16) >> (c->sig - 1)) & 1;
}

/* How many of pid's threads have `sig` in their "SigBlk:" or "SigCgt:" mask, out of *nthreads. */
static int threads_with_signal(pid_t pid, const char *field, int sig, int *nthreads)
{
    struct sig_count c = {.field = field, .sig = sig};
    *nthreads = each_thread_status(pid, 1 << 20, count_sig, &c);
    return c.set;
}

/* A stop signal is read from a signalfd, never handled asynchronously: a handler runs on whichever
 * thread the kernel picks, and TSan's runtime, which defers handlers, once lost a SIGTERM that
 * way (CI: a server that never stopped). So every thread blocks SIGINT and SIGTERM and none catches
 * them, and either signal stops a server with requests in flight, every time. */
Test(server, sigint_and_sigterm_stop_a_busy_server_every_time)
{
    for (int round = 0; round < 8; round++) {
        int sig = round % 2 ? SIGINT : SIGTERM;
        struct herald_proc p;
        const char *args[] = {"--threads", "4", NULL};
        herald_start(&p, args);
        int n = 0; /* the workers start after the startup line */
        for (long long end = now_ms() + 10000; n < 4 && now_ms() < end; usleep(10000))
            threads_with_signal(p.pid, "SigBlk:", SIGINT, &n);
        cr_assert_geq(n, 4);
        for (int s = SIGINT; s <= SIGTERM; s += SIGTERM - SIGINT) {
            int blocked = threads_with_signal(p.pid, "SigBlk:", s, &n);
            cr_assert_eq(blocked, n, "%d of %d threads block signal %d", blocked, n, s);
            cr_assert_eq(threads_with_signal(p.pid, "SigCgt:", s, &n), 0, "a handler for %d", s);
        }
        int fds[4];
        for (int i = 0; i < 4; i++) {
            fds[i] = tcp_connect(p.port);
            for (int k = 0; k < 50; k++)
                send_str(fds[i], "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        char *log = herald_stop_signal(&p, sig); /* exit 0 within 20 s, clean stderr */
        cr_assert_not_null(
            strstr(log, sig == SIGINT ? "SIGINT received: stopping" : "SIGTERM received: stopping"),
            "%s", log);
        free(log);
        for (int i = 0; i < 4; i++)
            close(fds[i]);
    }
}

/* A shell that starts a server in the background leaves SIGINT ignored in it; `kill -INT` must
 * still stop it (Linux queues a blocked signal even when ignored, and the server also restores
 * the default disposition, as installing a handler used to). */
Test(server, sigint_stops_a_server_started_with_sigint_ignored)
{
    struct herald_proc p;
    signal(SIGINT, SIG_IGN); /* inherited through fork and exec, as from `sh -c 'herald &'` */
    herald_start(&p, NULL);
    signal(SIGINT, SIG_DFL);
    char *log = herald_stop_signal(&p, SIGINT);
    cr_assert_not_null(strstr(log, "SIGINT received: stopping"), "%s", log);
    free(log);
}

static void cpus_of(int k, const char *line, void *ctx)
{
    char(*cpus)[64] = ctx;
    if (strncmp(line, "Cpus_allowed_list:", 18) == 0)
        sscanf(line + 18, "%63s", cpus[k]);
}

static int count_threads(pid_t pid, char cpus[][64], int max)
{
    for (int i = 0; i < max; i++)
        cpus[i][0] = '\0';
    return each_thread_status(pid, max, cpus_of, cpus);
}

Test(server, one_pinned_worker_per_cpu)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct herald_proc p;
    herald_start(&p, NULL);
    /* Workers pin themselves as they start, just after the start-up line: allow them a moment.
     * Sanitizer runtimes may add an unpinned background thread of their own. */
    int pinned = 0;
    for (long long end = now_ms() + 5000; pinned != ncpu && now_ms() < end; usleep(20000)) {
        char cpus[64][64];
        int n = count_threads(p.pid, cpus, 64);
        pinned = 0;
        for (int i = 0; i < n; i++) {
            int single = strchr(cpus[i], ',') == NULL && strchr(cpus[i], '-') == NULL;
            pinned += single;
            for (int j = 0; j < i; j++)
                if (single && strcmp(cpus[i], cpus[j]) == 0)
                    cr_assert_fail("two workers pinned to CPU %s", cpus[i]);
        }
    }
    cr_assert_eq(pinned, ncpu, "%d pinned workers, %ld CPUs", pinned, ncpu);
    free(herald_stop(&p));
}

struct policy_count {
    int policy, with;
};

/* A thread's status names its id ("Pid:"), which sched_getscheduler takes. */
static void count_policy(int k, const char *line, void *ctx)
{
    (void)k;
    struct policy_count *c = ctx;
    if (strncmp(line, "Pid:", 4) == 0)
        c->with += sched_getscheduler((pid_t)atoi(line + 4)) == c->policy;
}

/* How many of pid's threads run under scheduling policy `policy`, out of *nthreads. */
static int threads_with_policy(pid_t pid, int policy, int *nthreads)
{
    struct policy_count c = {.policy = policy};
    *nthreads = each_thread_status(pid, 1 << 20, count_policy, &c);
    return c.with;
}

/* Waits until pid has at least `want` threads, then a moment more: each worker sets its policy
 * as it starts, before anything else. Returns how many of them run under `policy`. */
static int settled_threads_with_policy(pid_t pid, int want, int policy, int *nthreads)
{
    for (long long end = now_ms() + 10000; now_ms() < end; usleep(20000)) {
        threads_with_policy(pid, policy, nthreads);
        if (*nthreads >= want)
            break;
    }
    cr_assert_geq(*nthreads, want, "only %d threads", *nthreads);
    usleep(200000);
    return threads_with_policy(pid, policy, nthreads);
}

/* Workers run as SCHED_BATCH: a pinned worker woken over another busy task waits its turn
 * instead of preempting it (README, Design). `--sched normal` leaves them as started. */
Test(server, workers_run_as_sched_batch_unless_told_normal)
{
    if (sched_getscheduler(0) != SCHED_OTHER)
        cr_skip_test("the tests run under a policy of their own, which Herald inherits");
    struct herald_proc p;
    const char *args[] = {"--threads", "3", NULL};
    herald_start(&p, args);
    int n = 0;
    int batch = settled_threads_with_policy(p.pid, 3, SCHED_BATCH, &n);
    cr_assert_eq(batch, 3, "%d of %d threads SCHED_BATCH", batch, n);
    free(herald_stop(&p));

    const char *normal[] = {"--threads", "3", "--sched", "normal", NULL};
    herald_start(&p, normal);
    cr_assert_eq(settled_threads_with_policy(p.pid, 3, SCHED_BATCH, &n), 0);
    cr_assert_geq(threads_with_policy(p.pid, SCHED_OTHER, &n), 3, "%d threads", n);
    free(herald_stop(&p));
}

/* A policy chosen from outside, as with `chrt --fifo 1 herald`, is kept by every worker. */
Test(server, a_policy_set_from_outside_is_kept)
{
    struct sched_param fifo = {.sched_priority = 1}, zero = {.sched_priority = 0};
    if (sched_setscheduler(0, SCHED_FIFO, &fifo) != 0) /* inherited through fork and exec */
        cr_skip_test("no real-time policy allowed here");
    struct herald_proc p;
    const char *args[] = {"--threads", "3", NULL};
    herald_start(&p, args);
    cr_assert_eq(sched_setscheduler(0, SCHED_OTHER, &zero), 0);
    int n = 0;
    cr_assert_eq(settled_threads_with_policy(p.pid, 3, SCHED_BATCH, &n), 0);
    cr_assert_geq(threads_with_policy(p.pid, SCHED_FIFO, &n), 3, "%d threads", n);
    free(herald_stop(&p));
}

Test(server, max_connections_refuses_the_excess)
{
    struct herald_proc p;
    const char *args[] = {"--max-connections", "3", NULL};
    herald_start(&p, args);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = tcp_connect(p.port);
        send_str(fds[i], "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    usleep(200000);
    /* (Connections are accepted once their first bytes arrive: TCP_DEFER_ACCEPT.) */
    int extra = tcp_connect(p.port);
    send_str(extra, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[256];
    long long t0 = now_ms();
    ssize_t got = read_to_eof(extra, buf, sizeof(buf), 3000);
    /* Closed unanswered, at once: EOF, or a reset since its request was never read. */
    cr_assert(got <= 0 && now_ms() - t0 < 2500, "the fourth was not refused (%zd)", got);
    close(extra);
    close(fds[0]);
    usleep(300000);
    struct http_resp r;
    cr_assert_eq(http_once(p.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0,
                 "a slot frees up when a connection closes");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    close(fds[1]);
    close(fds[2]);
    free(herald_stop(&p));
}

/* Runs herald with `arg` and returns its exit status; its stdout goes to out. */
static int run_cli(const char *arg, char *out, size_t cap)
{
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        const char *bin = getenv("HERALD_BIN");
        execl(bin ? bin : "build/herald", "herald", arg, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + len, cap - len - 1)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(pipefd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WEXITSTATUS(st);
}

Test(server, command_line_help_version_and_errors)
{
    char out[8192];
    cr_assert_eq(run_cli("--help", out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "--listen HOST:PORT"));
    cr_assert_not_null(strstr(out, "--idle-timeout"));
    cr_assert_not_null(strstr(out, "--fanout-all"));
    cr_assert_eq(run_cli("--version", out, sizeof(out)), 0);
    cr_assert(strncmp(out, "herald ", 7) == 0);
    cr_assert_eq(run_cli("--bogus", out, sizeof(out)), 2);
    cr_assert_not_null(strstr(out, "--bogus"));
    cr_assert_eq(run_cli("--threads=0", out, sizeof(out)), 2);
    cr_assert_eq(run_cli("--listen=nocolon", out, sizeof(out)), 2);
    cr_assert_eq(run_cli("--file-cache-ms=-1", out, sizeof(out)), 2);
    cr_assert_not_null(strstr(out, "for --file-cache-ms"), "%s", out);
    /* Every option's error names that option (the table's order is not the options' enum's). */
    const char *bad[] = {"--threads=0",      "--idle-timeout=0",  "--echo-path=x",
                         "--max-message=1",  "--ping-interval=0", "--pong-timeout=0",
                         "--ws-path=x",      "--history-size=0",  "--max-subscriptions=0",
                         "--max-outbound=0", "--sched=fast"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "for %.*s", (int)(strchr(bad[i], '=') - bad[i]), bad[i]);
        cr_assert_eq(run_cli(bad[i], out, sizeof(out)), 2, "%s", bad[i]);
        cr_assert_not_null(strstr(out, want), "%s: %s", bad[i], out);
    }
    cr_assert_eq(run_cli("--file-cache-ms=3600001", out, sizeof(out)), 2);
    cr_assert_eq(run_cli("--help", out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "--file-cache-ms"));
    cr_assert_not_null(strstr(out, "GET /api/presence"), "the key covers presence too");
    /* A short key in the environment is an error, as on the command line, not an API quietly
     * left off. */
    cr_assert_eq(run_cli("--api-key=short", out, sizeof(out)), 2);
    setenv("HERALD_API_KEY", "short", 1);
    cr_assert_eq(run_cli("--threads=1", out, sizeof(out)), 2);
    cr_assert_not_null(strstr(out, "HERALD_API_KEY"), "%s", out);
    unsetenv("HERALD_API_KEY");
}

Test(server, ipv6_listener)
{
    /* Skipped where the machine has no IPv6 loopback. */
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = probe >= 0 && bind(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (probe >= 0)
        close(probe);
    if (!ok)
        cr_skip_test("no IPv6 loopback");
    const char *bin = getenv("HERALD_BIN");
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl(bin ? bin : "build/herald", "herald", "--listen", "[::1]:18777", (char *)NULL);
        _exit(127);
    }
    int fd = -1;
    for (int i = 0; i < 200 && fd < 0; i++) {
        usleep(50000);
        fd = socket(AF_INET6, SOCK_STREAM, 0);
        sa.sin6_port = htons(18777);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(fd);
            fd = -1;
        }
    }
    cr_assert_geq(fd, 0, "could not connect over IPv6");
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[64] = {0};
    cr_assert_gt(recv(fd, buf, sizeof(buf) - 1, 0), 12);
    cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    close(fd);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A small epoll load generator: `conns` keep-alive connections, `total` requests in all. */
struct lconn {
    int fd;
    char buf[4096];
    size_t len;
    int sent;
};

static int response_complete(struct lconn *c, size_t *consumed)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    char *cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length: ", 16);
    cr_assert_not_null(cl);
    size_t need = (size_t)(end - c->buf) + 4 + strtoul(cl + 16, NULL, 10);
    if (c->len < need)
        return 0;
    cr_assert(strncmp(c->buf, "HTTP/1.1 200 ", 13) == 0, "bad response under load");
    *consumed = need;
    return 1;
}

static long run_load(int port, int conns, long total)
{
    int ep = epoll_create1(0);
    struct lconn *cs = calloc((size_t)conns, sizeof(*cs));
    static const char req[] = "GET / HTTP/1.1\r\nHost: load\r\n\r\n";
    long issued = 0, done = 0;
    for (int i = 0; i < conns; i++) {
        cs[i].fd = tcp_connect(port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        send_all(cs[i].fd, req, sizeof(req) - 1);
        issued++;
    }
    long long deadline = now_ms() + 100000;
    struct epoll_event evs[64];
    while (done < total && now_ms() < deadline) {
        int n = epoll_wait(ep, evs, 64, 1000);
        for (int i = 0; i < n; i++) {
            struct lconn *c = evs[i].data.ptr;
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
            cr_assert(r > 0 || errno == EAGAIN, "connection lost under load");
            if (r > 0)
                c->len += (size_t)r;
            size_t used;
            while (response_complete(c, &used)) {
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= used;
                done++;
                if (issued < total) {
                    send_all(c->fd, req, sizeof(req) - 1);
                    issued++;
                }
            }
        }
    }
    for (int i = 0; i < conns; i++)
        close(cs[i].fd);
    free(cs);
    close(ep);
    return done;
}

Test(server, hundred_thousand_requests_from_200_connections_on_4_workers)
{
    struct herald_proc p;
    const char *args[] = {"--threads", "4", "--log-level", "warn", NULL};
    herald_start(&p, args);
    long long t0 = now_ms();
    long done = run_load(p.port, 200, 100000);
    long long dt = now_ms() - t0;
    cr_assert_eq(done, 100000, "only %ld of 100000 answered", done);
    cr_log_info("100000 requests in %lld ms", dt);
    /* The server is still healthy afterwards and stops cleanly (no sanitizer report). */
    struct http_resp r;
    cr_assert_eq(http_once(p.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    free(herald_stop(&p));
}

Test(server, activity_racing_the_timeout_sweep)
{
    /* Requests arrive right around each connection's deadline, so the sweep's wake-ups race with
     * the connections' own events. Every request must get a whole answer or a clean close, and
     * the server (under the sanitizer builds too) must stay healthy. */
    struct herald_proc p;
    const char *args[] = {"--idle-timeout", "1", "--threads", "3", NULL};
    herald_start(&p, args);
    enum { N = 48, ROUNDS = 5 };
    struct client *cs = calloc(N, sizeof(*cs));
    for (int i = 0; i < N; i++)
        client_open(&cs[i], p.port);
    int answered = 0, reopened = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
            if (send(cs[i].fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
                client_close(&cs[i]);
                client_open(&cs[i], p.port);
                send_str(cs[i].fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                reopened++;
            }
        }
        for (int i = 0; i < N; i++) {
            struct http_resp r;
            if (read_response(&cs[i], &r, 0) == 0) {
                cr_assert_eq(r.status, 200, "status %d", r.status);
                answered++;
            } else {
                /* Closed by the sweep before the request arrived: a clean close, then reopen. */
                client_close(&cs[i]);
                client_open(&cs[i], p.port);
                reopened++;
            }
            resp_free(&r);
        }
        /* Straddle the deadline: 1 s idle timeout + the wheel's slack + up to a 1 s tick. */
        usleep(1100000 + (useconds_t)round * 300000);
    }
    for (int i = 0; i < N; i++)
        client_close(&cs[i]);
    free(cs);
    cr_log_info("answered %d, reopened %d", answered, reopened);
    cr_assert_gt(answered, N * ROUNDS / 2);
    cr_assert_gt(reopened, 0, "the sweep closed none: the test did not race it");
    free(herald_stop(&p));
}
