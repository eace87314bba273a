/*
 * Integration: fan-out steering (fanout.h). With another process keeping one worker's CPU busy,
 * that worker leaves the wake batches of a large topic to the worker whose CPU is free.
 *
 * A binary of its own with a single test: the test measures which CPU is busy, so no other test
 * may run beside it (Criterion runs a binary's tests in parallel; the Makefile runs binaries one
 * after another).
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wsc.h"
#include "wsc_wire.h"

/* The n-th CPU this process may run on (the n-th worker's: server.c pins worker i to the i-th). */
static int nth_cpu(int n)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set) && n-- == 0)
            return cpu;
    return -1;
}

/* A child spinning on `cpu` until killed (or until this process dies). */
static pid_t spin_on(int cpu)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof(set), &set);
        for (volatile unsigned long i = 0;; i++)
            ;
    }
    return pid;
}

static double worker_metric(int port, const char *name, int worker)
{
    char full[128];
    snprintf(full, sizeof(full), "%s{worker=\"%d\"}", name, worker);
    double v = scrape_metric(port, full);
    cr_assert_geq(v, 0, "%s missing", full);
    return v;
}

static void open_subscriber(struct wsc *c, int port)
{
    char head[2048];
    int st =
        wsc_connect(c, port, "/ws", "Sec-WebSocket-Protocol: herald.v1\r\n", head, sizeof(head));
    cr_assert_eq(st, 101, "%s", head);
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(c, &f, 10000), 0, "no welcome");
    wsc_frame_free(&f);
    const char *sub = "{\"op\":\"sub\",\"topic\":\"steer\"}";
    cr_assert_eq(wsc_send(c, WS_OP_TEXT, sub, strlen(sub)), 0);
}

/* The next message's text contains `want`. */
static void expect(struct wsc *c, const char *want, int who)
{
    struct wsc_frame f;
    cr_assert_eq(wsc_recv(c, &f, 20000), 0, "connection %d: no message", who);
    cr_assert_not_null(memmem(f.data, f.len, want, strlen(want)), "connection %d: %.*s", who,
                       (int)f.len, (char *)f.data);
    wsc_frame_free(&f);
}

/* One round of MSGS messages, each received by every subscriber before the next is published:
 * one wave of wakes each. Gives the batches each worker served. Returns whether worker 0's CPU
 * stayed free throughout (scraped after every message): if it did not, both workers were allowed
 * to serve and the round tells nothing. */
static bool publish_round(int port, struct wsc *subs, int nsubs, struct wsc *pub, int round,
                          double served[2])
{
    enum { MSGS = 20 };
    bool free0 = true;
    double before[2];
    for (int w = 0; w < 2; w++)
        before[w] = worker_metric(port, "herald_worker_fanout_batches_total", w);
    for (int k = round * MSGS + 1; k <= (round + 1) * MSGS; k++) {
        char req[96], want[32];
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"steer\",\"data\":%d}", k);
        snprintf(want, sizeof(want), "\"data\":%d", k);
        cr_assert_eq(wsc_send(pub, WS_OP_TEXT, req, strlen(req)), 0);
        for (int i = 0; i < nsubs; i++)
            expect(&subs[i], want, i);
        free0 = free0 && worker_metric(port, "herald_worker_cpu_others_ratio", 0) < 0.25;
    }
    for (int w = 0; w < 2; w++)
        served[w] = worker_metric(port, "herald_worker_fanout_batches_total", w) - before[w];
    return free0;
}

/* Waits until worker 1's CPU is measured as crowded and worker 0's as free. */
static void wait_for_verdicts(int port)
{
    long long deadline = now_ms() + 10000;
    double others1 = 0, others0 = 1;
    while (now_ms() < deadline) {
        others1 = worker_metric(port, "herald_worker_cpu_others_ratio", 1);
        others0 = worker_metric(port, "herald_worker_cpu_others_ratio", 0);
        if (others1 > 0.6 && others0 < 0.2)
            return;
        usleep(100000);
    }
    cr_assert_fail("worker 1's CPU: %.3f to others, worker 0's: %.3f", others1, others0);
}

Test(steer, a_worker_whose_cpu_is_busy_leaves_fan_out_to_the_free_one, .timeout = 120)
{
    if (nth_cpu(1) < 0)
        cr_skip_test("one CPU: nothing to steer to");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    /* More than two wake batches of 256, so the shared queue serves them. */
    const int SUBS = 600;
    struct herald_proc p;
    const char *args[] = {"--threads", "2", "--log-level", "warn", NULL};
    herald_start(&p, args); /* before this process is pinned: the workers take every CPU */

    /* Worker 1's CPU is kept busy by a spinning child and by this test's own reading; worker 0's
     * is left to worker 0. */
    int busy = nth_cpu(1);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(busy, &set);
    cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
    pid_t spinner = spin_on(busy);
    wait_for_verdicts(p.port);

    struct wsc *subs = calloc(SUBS, sizeof(*subs));
    cr_assert_not_null(subs);
    for (int i = 0; i < SUBS; i++)
        open_subscriber(&subs[i], p.port);
    for (int i = 0; i < SUBS; i++)
        expect(&subs[i], "\"ack\"", i);
    struct wsc pub;
    open_subscriber(&pub, p.port); /* subscribed too: its ack, then its own copies */
    expect(&pub, "\"ack\"", -1);
    /* Another program on worker 0's CPU (this machine is not ours alone) voids a round. */
    double served[2];
    int round = 0;
    while (!publish_round(p.port, subs, SUBS, &pub, round, served) && ++round < 3)
        ;
    double others1 = worker_metric(p.port, "herald_worker_cpu_others_ratio", 1);
    kill(spinner, SIGKILL);
    waitpid(spinner, NULL, 0);
    for (int i = 0; i < SUBS; i++)
        wsc_close(&subs[i]);
    wsc_close(&pub);
    free(subs);
    free(herald_stop(&p));
    if (round == 3)
        cr_skip_test("worker 0's CPU was busy with other programs in each of 3 rounds");
    /* 601 subscribers make three batches per message. */
    cr_assert_eq(served[1], 0,
                 "the crowded worker served %.0f of %.0f batches (its CPU %.3f to others)",
                 served[1], served[0] + served[1], others1);
    cr_assert_eq(served[0], 20 * 3, "the free worker served %.0f batches", served[0]);
}
