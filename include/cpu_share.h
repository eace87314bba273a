/*
 * cpu_share.h - how much of a worker's CPU other tasks take.
 *
 * Why: workers are pinned, one per CPU. A worker whose CPU another process keeps busy (a load
 * generator, a database, another service) takes its CPU time from that process whenever it runs,
 * while another worker's CPU may have time to spare. Work that any worker can do (the shared
 * fan-out queue, fanout.h) is better left to the workers whose CPUs are free. The measure must not
 * depend on what the worker itself does: a worker that stops taking work waits less for its CPU,
 * so its own run delay would say "free" as soon as it stepped aside, and it would flap.
 *
 * How: over a window of at least CPU_SHARE_WINDOW_NS, the time the CPU ran tasks (/proc/stat:
 * user, nice, system and steal) minus the calling thread's own run time
 * (/proc/thread-self/schedstat) is the time other tasks had, as a share of the window. Interrupt
 * and softirq time are left out of the CPU's side: whether the thread's own run time includes the
 * softirq work done in its context (the receive side of its loopback sends) depends on the kernel
 * (CONFIG_IRQ_TIME_ACCOUNTING), and counting it as others' would make a busy worker crowd itself
 * out; left out, others' share can only come out lower. /proc/stat counts in USER_HZ ticks
 * (10 ms), each field rounded down, so a window of 200 ms keeps a tick at each end of a field
 * within 5% of it, under the 15% between the two thresholds. The verdict has hysteresis: crowded
 * above CPU_SHARE_CROWDED, free again below CPU_SHARE_FREE.
 *
 * Threads: a struct cpu_share belongs to the thread that opened it (its schedstat is that
 * thread's); the parsers are pure.
 */
#ifndef HERALD_CPU_SHARE_H
#define HERALD_CPU_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPU_SHARE_WINDOW_NS 200000000u /* 200 ms */
#define CPU_SHARE_CROWDED   0.40       /* others' share above which the CPU is crowded */
#define CPU_SHARE_FREE      0.25       /* and below which it is free again */

struct cpu_share {
    int cpu;              /* the CPU the thread is pinned to */
    int stat_fd, self_fd; /* /proc/stat, /proc/thread-self/schedstat */
    long tick_ns;         /* nanoseconds per USER_HZ tick */
    char *text;           /* room for /proc/stat's lines up to this CPU's */
    size_t text_size;
    uint64_t busy_ns;  /* the CPU's busy time at the window's start */
    uint64_t run_ns;   /* the thread's run time at the window's start */
    uint64_t start_ns; /* the window's start (CLOCK_MONOTONIC), 0 before the first sample */
    double others;     /* others' share in the last window, 0..1 */
    bool crowded;      /* the verdict */
};

/* cpu_share_open - measures `cpu` for the calling thread. Returns 0, or -errno when /proc cannot
 * tell (then nothing is measured and the CPU is never crowded). */
int cpu_share_open(struct cpu_share *s, int cpu);
/* cpu_share_close - closes the files and frees the buffer (a closed or failed share may be
 * closed again). */
void cpu_share_close(struct cpu_share *s);

/* cpu_share_sample - at `now_ns` (CLOCK_MONOTONIC), closes the window if it is
 * CPU_SHARE_WINDOW_NS old and updates others and the verdict. Returns 1 if a window closed (others
 * and crowded are new), 0 if the window is still open (or this first call only started it), -1 if
 * /proc could not be read or parsed (the caller
 * should stop measuring: the verdict would stay where it was). A window costs two reads (3.5 us
 * on a 2-CPU machine; the kernel formats all of /proc/stat, so more on large ones); the check
 * before is a comparison. */
int cpu_share_sample(struct cpu_share *s, uint64_t now_ns);

/* cpu_share_update - the arithmetic of a sample, from the counters read: the CPU's time running
 * tasks, the thread's run time, now. Returns 1 if the verdict changed, else 0. A first call only
 * starts the window. Counters that went backwards (they cannot, but ticks round) count as no time.
 */
int cpu_share_update(struct cpu_share *s, uint64_t busy_ns, uint64_t run_ns, uint64_t now_ns);

/* cpu_share_parse_stat - the time `cpu` ran tasks, from /proc/stat's text: user, nice, system and
 * steal, in ticks of tick_ns. Returns 0, or -1 if the line is missing, short or cut off. */
int cpu_share_parse_stat(const char *text, int cpu, long tick_ns, uint64_t *busy_ns);
/* cpu_share_parse_schedstat - the run time (ns, the first field) from a task's schedstat text.
 * Returns 0 or -1. */
int cpu_share_parse_schedstat(const char *text, uint64_t *run_ns);

#endif
