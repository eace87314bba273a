/* cpu_share.c - others' share of a worker's CPU, from /proc (see cpu_share.h). */
#include "cpu_share.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the whole of a small /proc file from its start. Returns 0 or -1. */
static int read_text(int fd, char *buf, size_t size)
{
    ssize_t n = pread(fd, buf, size - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* Parses `n` unsigned decimal fields separated by spaces. Returns 0 or -1. */
static int parse_fields(const char *p, unsigned long long *v, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtoull(p, &end, 10);
        /* A field ends at a space or the line's end, never at the buffer's: cut off, it would
         * read short. */
        if (end == p || errno || (*end != ' ' && *end != '\n'))
            return -1;
        p = end;
    }
    return 0;
}

int cpu_share_parse_stat(const char *text, int cpu, long tick_ns, uint64_t *busy_ns)
{
    char key[24];
    int klen = snprintf(key, sizeof(key), "cpu%d ", cpu);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, (size_t)klen) == 0) {
            /* user nice system idle iowait irq softirq steal: the first eight of any kernel
             * since 2.6.11. Interrupts and softirqs are left out (cpu_share.h). */
            unsigned long long v[8];
            if (parse_fields(line + klen, v, 8) < 0)
                return -1;
            *busy_ns = (uint64_t)(v[0] + v[1] + v[2] + v[7]) * (uint64_t)tick_ns;
            return 0;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

int cpu_share_parse_schedstat(const char *text, uint64_t *run_ns)
{
    unsigned long long v;
    if (parse_fields(text, &v, 1) < 0)
        return -1;
    *run_ns = v;
    return 0;
}

int cpu_share_open(struct cpu_share *s, int cpu)
{
    long hz = sysconf(_SC_CLK_TCK);
    *s = (struct cpu_share){.cpu = cpu, .stat_fd = -1, .self_fd = -1};
    if (hz <= 0)
        return -EINVAL;
    s->tick_ns = 1000000000L / hz;
    s->stat_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    s->self_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    /* The CPU lines come first, one per CPU up to ours: "cpuN" and ten counters at most. */
    s->text_size = (size_t)(cpu + 2) * (8 + 10 * 21) + 1;
    s->text = malloc(s->text_size);
    if (s->stat_fd < 0 || s->self_fd < 0 || !s->text) {
        int err = s->text ? -errno : -ENOMEM;
        cpu_share_close(s);
        return err;
    }
    return 0;
}

void cpu_share_close(struct cpu_share *s)
{
    if (s->stat_fd >= 0)
        close(s->stat_fd);
    if (s->self_fd >= 0)
        close(s->self_fd);
    s->stat_fd = s->self_fd = -1;
    free(s->text);
    s->text = NULL;
}

/* b - a, or 0 where rounding made b the smaller. */
static uint64_t since(uint64_t a, uint64_t b)
{
    return b > a ? b - a : 0;
}

int cpu_share_update(struct cpu_share *s, uint64_t busy_ns, uint64_t run_ns, uint64_t now_ns)
{
    bool first = s->start_ns == 0;
    uint64_t busy = since(s->busy_ns, busy_ns), run = since(s->run_ns, run_ns);
    uint64_t window = since(s->start_ns, now_ns);
    s->busy_ns = busy_ns;
    s->run_ns = run_ns;
    s->start_ns = now_ns;
    if (first || window == 0)
        return 0;
    double others = (double)since(run, busy) / (double)window;
    s->others = others > 1 ? 1 : others;
    bool was = s->crowded;
    s->crowded = was ? s->others > CPU_SHARE_FREE : s->others > CPU_SHARE_CROWDED;
    return s->crowded != was;
}

int cpu_share_sample(struct cpu_share *s, uint64_t now_ns)
{
    if (s->stat_fd < 0 || (s->start_ns && now_ns - s->start_ns < CPU_SHARE_WINDOW_NS))
        return 0;
    char self[128];
    uint64_t busy, run;
    /* Own run time first: read after the CPU's busy time it could exceed it by the read between. */
    if (read_text(s->self_fd, self, sizeof(self)) < 0 ||
        cpu_share_parse_schedstat(self, &run) < 0 ||
        read_text(s->stat_fd, s->text, s->text_size) < 0 ||
        cpu_share_parse_stat(s->text, s->cpu, s->tick_ns, &busy) < 0)
        return -1;
    bool first = s->start_ns == 0;
    cpu_share_update(s, busy, run, now_ns);
    return !first;
}
