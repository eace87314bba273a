/* Unit tests for cpu_share: the /proc parsers, the window arithmetic and its hysteresis. */
#include <criterion/criterion.h>
#include <sched.h>

#include "cpu_share.h"

static const char STAT[] = "cpu  980091 2206 954340 3246849 1903 0 309545 0 0 0\n"
                           "cpu0 425840 1114 471127 1691617 217 0 154826 0 0 0\n"
                           "cpu1 554250 1092 483213 1555231 1685 7 154719 3 0 0\n"
                           "cpu10 1 1 1 1 1 1 1 1 0 0\n"
                           "intr 1234 0 0 5\n";

Test(cpu_share, busy_time_is_tasks_time_user_nice_system_steal)
{
    uint64_t busy = 0;
    cr_assert_eq(cpu_share_parse_stat(STAT, 1, 10000000, &busy), 0);
    /* user nice system steal of cpu1, in 10 ms ticks: not idle, iowait, irq nor softirq */
    uint64_t ticks = 554250ull + 1092 + 483213 + 3;
    cr_assert_eq(busy, ticks * 10000000ull);
    cr_assert_eq(cpu_share_parse_stat(STAT, 10, 4000000, &busy), 0);
    cr_assert_eq(busy, 4ull * 4000000, "cpu10 is not cpu1's line, nor the reverse");
}

Test(cpu_share, a_missing_or_short_line_is_an_error)
{
    uint64_t busy = 42;
    cr_assert_eq(cpu_share_parse_stat(STAT, 2, 10000000, &busy), -1, "no cpu2");
    cr_assert_eq(cpu_share_parse_stat("cpu0 1 2 3 4 5\n", 0, 10000000, &busy), -1);
    cr_assert_eq(cpu_share_parse_stat("cpu0 1 2 x 4 5 6 7 8\n", 0, 10000000, &busy), -1);
    cr_assert_eq(cpu_share_parse_stat("", 0, 10000000, &busy), -1);
    cr_assert_eq(cpu_share_parse_stat("cpu0 1 2 3 4 5 6 7 8", 0, 10000000, &busy), -1,
                 "cut off at the buffer's end: the last field may be short");
    cr_assert_eq(busy, 42, "left alone on error");
}

Test(cpu_share, run_time_is_schedstat_s_first_field)
{
    uint64_t run = 0;
    cr_assert_eq(cpu_share_parse_schedstat("2654986 120 2\n", &run), 0);
    cr_assert_eq(run, 2654986);
    cr_assert_eq(cpu_share_parse_schedstat("x 1 2\n", &run), -1);
    cr_assert_eq(cpu_share_parse_schedstat("", &run), -1);
    cr_assert_eq(cpu_share_parse_schedstat("2654", &run), -1, "cut off");
}

#define MS 1000000ull

/* One window of 100 ms in which the CPU was busy busy_ms and the thread ran run_ms. */
static int window(struct cpu_share *s, uint64_t *busy, uint64_t *run, uint64_t *now,
                  uint64_t busy_ms, uint64_t run_ms)
{
    *busy += busy_ms * MS;
    *run += run_ms * MS;
    *now += 100 * MS;
    return cpu_share_update(s, *busy, *run, *now);
}

Test(cpu_share, crowded_above_forty_percent_free_again_below_twenty_five)
{
    struct cpu_share s = {.crowded = false};
    uint64_t busy = 5000 * MS, run = 700 * MS, now = 90000 * MS;
    cr_assert_eq(cpu_share_update(&s, busy, run, now), 0, "the first sample starts the window");
    cr_assert_not(s.crowded);
    /* The thread itself busy: its own time is not others' time. */
    cr_assert_eq(window(&s, &busy, &run, &now, 90, 90), 0);
    cr_assert_float_eq(s.others, 0.0, 1e-9);
    cr_assert_eq(window(&s, &busy, &run, &now, 80, 45), 0, "35%%: not yet");
    cr_assert_eq(window(&s, &busy, &run, &now, 80, 30), 1, "50%%: crowded");
    cr_assert(s.crowded);
    cr_assert_float_eq(s.others, 0.5, 1e-9);
    cr_assert_eq(window(&s, &busy, &run, &now, 30, 0), 0, "30%%: still crowded");
    cr_assert(s.crowded);
    cr_assert_eq(window(&s, &busy, &run, &now, 20, 0), 1, "20%%: free");
    cr_assert_not(s.crowded);
}

Test(cpu_share, ticks_rounding_below_the_thread_s_run_time_count_as_nothing)
{
    struct cpu_share s = {.crowded = false};
    uint64_t busy = 100 * MS, run = 100 * MS, now = 1000 * MS;
    cpu_share_update(&s, busy, run, now);
    /* /proc/stat counts 10 ms ticks: the CPU can seem less busy than the thread ran. */
    cr_assert_eq(window(&s, &busy, &run, &now, 50, 58), 0);
    cr_assert_float_eq(s.others, 0.0, 1e-9);
    /* A counter that went back (a wrapped or reset reading) is no time either. */
    busy -= 10 * MS;
    now += 100 * MS;
    cr_assert_eq(cpu_share_update(&s, busy, run, now), 0);
    cr_assert_float_eq(s.others, 0.0, 1e-9);
    /* More than the window (a late sample's rounding) is capped at all of it. */
    cr_assert_eq(window(&s, &busy, &run, &now, 130, 0), 1);
    cr_assert_float_eq(s.others, 1.0, 1e-9);
}

/* The real files parse: this is what the workers read. */
Test(cpu_share, this_kernel_s_proc_files_parse)
{
    int cpu = sched_getcpu();
    cr_assert_geq(cpu, 0);
    struct cpu_share s;
    cr_assert_eq(cpu_share_open(&s, cpu), 0);
    cr_assert_eq(cpu_share_sample(&s, 1000 * MS), 0, "the first sample starts the window");
    cr_assert_eq(cpu_share_sample(&s, 1050 * MS), 0, "the window is still open");
    cr_assert_eq(cpu_share_sample(&s, 1200 * MS), 1, "a second sample reads both files");
    cr_assert(s.others >= 0 && s.others <= 1, "%f", s.others);
    cpu_share_close(&s);
    cpu_share_close(&s);
}
