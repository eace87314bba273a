/* wsload_report.c - the load generator's statistics and report: the latency histogram, the CPU
 * and memory counters read from /proc and getrusage, and the readable and JSON lines (wsload.h). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "wsload.h"

/* ---- latency histogram ------------------------------------------------------------------- */

/*
 * Log-linear, like HdrHistogram: values below 256 us have their own bucket, above that each power
 * of two is split into 128 buckets, so a bucket is at most 1/128 (0.8%) wide relative to its
 * value. Values are clamped at 2^40 us. Fixed size, no allocation.
 */
static unsigned hist_index(uint64_t v)
{
    unsigned shift;

    if (v >= (1ULL << HIST_MAX_BITS))
        v = (1ULL << HIST_MAX_BITS) - 1;
    if (v < (2u << HIST_SUB_BITS))
        return (unsigned)v;
    shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
    return (shift << HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned i)
{
    unsigned shift;

    if (i < (2u << HIST_SUB_BITS))
        return i;
    shift = (i >> HIST_SUB_BITS) - 1;
    return ((uint64_t)(i - (shift << HIST_SUB_BITS)) << shift) + ((1ULL << shift) >> 1);
}

void hist_add(struct hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_N; i++)
        to->n[i] += from->n[i];
    to->count += from->count;
    to->sum += from->sum;
    if (from->max > to->max)
        to->max = from->max;
}

/* The value at quantile q (0..1): the smallest bucket holding at least q of the samples. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->count + 0.999999), seen = 0, v;

    if (h->count == 0)
        return 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_N; i++) {
        seen += h->n[i];
        if (seen >= want) {
            v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- CPU accounting ---------------------------------------------------------------------- */

/* utime+stime of a process (all its threads) in clock ticks, or -1. */
static long long proc_ticks(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* VmRSS of a process in KiB, or -1. */
static long long proc_rss_kib(int pid)
{
    char path[64], line[256];
    long long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

void cpu_sample_take(const struct opts *o, struct cpu_sample *s)
{
    unsigned long long v[8] = {0};
    long long t;
    FILE *f;

    s->wall_us = now_us();
    getrusage(RUSAGE_SELF, &s->self);
    s->server_ticks = o->nserver_pid ? 0 : -1;
    for (unsigned i = 0; i < o->nserver_pid && s->server_ticks >= 0; i++)
        s->server_ticks = (t = proc_ticks(o->server_pid[i])) < 0 ? -1 : s->server_ticks + t;
    s->server_rss_kib = o->nserver_pid ? 0 : -1;
    for (unsigned i = 0; i < o->nserver_pid && s->server_rss_kib >= 0; i++)
        s->server_rss_kib = (t = proc_rss_kib(o->server_pid[i])) < 0 ? -1 : s->server_rss_kib + t;
    s->sys_busy = s->sys_all = 0;
    f = fopen("/proc/stat", "re");
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8) {
        s->sys_busy = v[0] + v[1] + v[2] + v[5] + v[6];
        for (int i = 0; i < 8; i++)
            s->sys_all += v[i];
    }
    if (f)
        fclose(f);
}

static double tv_secs(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

void stats_merge(struct stats *to, const struct stats *from)
{
    const uint64_t *f = &from->rx_bytes;
    uint64_t *t = &to->rx_bytes;

    hist_merge(&to->lat, &from->lat);
    /* Every field after the histogram is a uint64_t counter. */
    for (size_t i = 0; i < (sizeof(*to) - offsetof(struct stats, rx_bytes)) / sizeof(uint64_t); i++)
        t[i] += f[i];
}

void report(const struct run *run, const struct stats *st)
{
    const struct opts *o = &run->o;
    double secs = (double)(run->t_end - run->t_meas) / 1e6;
    double rate = secs > 0 ? (double)st->lat.count / secs : 0;
    const struct cpu_sample *c0 = &run->cpu0, *c1 = &run->cpu1;
    double cpu = tv_secs(&c1->self.ru_utime) + tv_secs(&c1->self.ru_stime) -
                 tv_secs(&c0->self.ru_utime) - tv_secs(&c0->self.ru_stime);
    double wall = (double)(c1->wall_us - c0->wall_us) / 1e6;
    double hz = (double)sysconf(_SC_CLK_TCK);
    bool have_srv = c0->server_ticks >= 0 && c1->server_ticks >= 0;
    double srv = have_srv ? (double)(c1->server_ticks - c0->server_ticks) / hz : 0;
    double all = (double)(c1->sys_all - c0->sys_all) / hz, other;
    char srv_json[160] = "null,\"server_cpu_pct\":null,\"server_cpu_us_per_msg\":null";
    char srv_txt[96] = "", extra[1024] = "", rss[96];
    double cpu_pct = wall > 0.001 ? cpu * 100 / wall : 0;
    /* Voluntary context switches of all our threads: each is a wait that blocked, so a server's
     * send that finds its reader there pays for waking it (on loopback, in the server's CPU). */
    double sleeps = (double)(c1->self.ru_nvcsw - c0->self.ru_nvcsw);
    double cpu_per = st->lat.count ? cpu * 1e6 / (double)st->lat.count : 0;
    double mean = st->lat.count ? (double)st->lat.sum / (double)st->lat.count : 0;
    uint64_t errors = st->connect_err + st->proto_err + st->bad_echo + st->closed;
    uint64_t p50 = hist_quantile(&st->lat, 0.50), p90 = hist_quantile(&st->lat, 0.90);
    uint64_t p99 = hist_quantile(&st->lat, 0.99), p999 = hist_quantile(&st->lat, 0.999);
    const char *type = o->opcode == WS_OP_TEXT ? "text" : "binary";

    /*
     * Other load: the machine's busy time minus the server's and ours, as % of all CPUs' time.
     * Busy includes irq and softirq: loopback TCP runs in softirq in the context of the sending
     * process, and the kernel charges that time to the process's stime as well as to /proc/stat's
     * softirq, so leaving softirq out of busy would hide other load (busy - ours < 0).
     */
    if (run->cpu_start.server_rss_kib >= 0 && c1->server_rss_kib >= 0)
        snprintf(rss, sizeof(rss), "%lld,\"server_rss_end_kib\":%lld",
                 run->cpu_start.server_rss_kib, c1->server_rss_kib);
    else
        snprintf(rss, sizeof(rss), "null,\"server_rss_end_kib\":null");
    other = (double)(c1->sys_busy - c0->sys_busy) / hz - cpu - srv;
    other = all > 0 && other > 0 ? other * 100 / all : 0;
    if (have_srv) {
        snprintf(srv_json, sizeof(srv_json),
                 "%.3f,\"server_cpu_pct\":%.1f,\"server_cpu_us_per_msg\":%.3f", srv,
                 wall > 0.001 ? srv * 100 / wall : 0,
                 st->lat.count ? srv * 1e6 / (double)st->lat.count : 0);
        snprintf(srv_txt, sizeof(srv_txt), ", server CPU %.2f us/msg",
                 st->lat.count ? srv * 1e6 / (double)st->lat.count : 0);
    }

    printf("wsload %s %s: %u conns (%" PRIu64 " open) x %u in flight, %zu B %s, %u thread(s), "
           "%.1f s: %.0f msg/s, latency us p50 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64
           " max %" PRIu64 ", errors %" PRIu64 ", generator CPU %.2f s (%.0f%% of a core, "
           "%.2f us/msg)%s, other load %.1f%%\n",
           o->scenario->name, o->url, o->conns, st->open, o->inflight, o->bytes, type, o->threads,
           secs, rate, p50, p99, p999, st->lat.max, errors, cpu, cpu_pct, cpu_per, srv_txt, other);
    /* The scenario's own readable line, then its JSON fields (appended below). */
    if (o->scenario->report_cb)
        o->scenario->report_cb(run, st, extra, sizeof(extra));
    printf("JSON {\"tool\":\"wsload\",\"scenario\":\"%s\",\"url\":\"%s\",\"conns\":%u,"
           "\"open\":%" PRIu64 ",\"inflight\":%u,\"bytes\":%zu,\"type\":\"%s\",\"threads\":%u,"
           "\"duration_s\":%.3f,\"warmup_s\":%.3f,\"messages\":%" PRIu64 ",\"msgs_per_s\":%.1f,"
           "\"rx_bytes\":%" PRIu64 ",\"reads\":%" PRIu64
           ",\"msgs_per_read\":%.2f,\"lat_mean_us\":%.1f,\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64
           ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
           ",\"bad_echoes\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"gen_cpu_s\":%.3f,"
           "\"gen_cpu_pct\":%.1f,\"gen_cpu_us_per_msg\":%.3f,\"gen_sleeps_per_s\":%.0f,"
           "\"server_cpu_s\":%s,"
           "\"other_cpu_pct\":%.1f,\"spin_us\":%" PRIu64 ",\"server_rss_start_kib\":%s%s}\n",
           o->scenario->name, o->url, o->conns, st->open, o->inflight, o->bytes, type, o->threads,
           secs, (double)o->warmup_us / 1e6, st->lat.count, rate, st->rx_bytes, st->reads,
           st->reads ? (double)st->lat.count / (double)st->reads : 0, mean, p50, p90, p99, p999,
           st->lat.max, errors, st->connect_err, st->proto_err, st->bad_echo, st->closed, cpu,
           cpu_pct, cpu_per, wall > 0.001 ? sleeps / wall : 0, srv_json, other, o->spin_us, rss,
           extra);
    fflush(stdout);
}
