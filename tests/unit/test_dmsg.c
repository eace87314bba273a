/* Unit tests for dmsg: growth, the 2x bound, reads across buffer boundaries, consume, cap. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dmsg.h"
#include "err.h"

static void fill_pattern(char *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (start + i) % 26);
}

static void assert_content(const struct dmsg *dm, size_t start, size_t n)
{
    char *got = malloc(n + 1);
    cr_assert_eq(dmsg_copy(dm, 0, got, n), n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], (char)('a' + (start + i) % 26), "byte %zu", i);
    free(got);
}

Test(dmsg, allocates_nothing_until_written)
{
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    cr_assert_eq(dmsg_allocated(&dm), 0);
    cr_assert_eq(dmsg_len(&dm), 0);
    dmsg_deinit(&dm);
}

Test(dmsg, grows_geometrically)
{
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    char b[1] = {'x'};
    size_t expect[] = {64, 128, 256, 512, 1024, 2048};
    size_t written = 0;
    for (size_t k = 0; k < sizeof(expect) / sizeof(expect[0]); k++) {
        while (written < expect[k]) {
            cr_assert_eq(dmsg_append(&dm, b, 1), 0);
            written++;
        }
        cr_assert_eq(dmsg_allocated(&dm), expect[k], "after %zu bytes", written);
    }
    /* Buffer sizes: the first 64, the second as much again, then each twice the previous. */
    cr_assert_eq(dm.nbufs, 6);
    cr_assert_eq(dm.iov[0].iov_len, 64);
    cr_assert_eq(dm.iov[1].iov_len, 64);
    for (uint32_t i = 2; i < dm.nbufs; i++)
        cr_assert_eq(dm.iov[i].iov_len, 2 * dm.iov[i - 1].iov_len);
    dmsg_deinit(&dm);
}

Test(dmsg, allocation_within_twice_the_data_from_32_bytes)
{
    char *data = malloc(1 << 20);
    fill_pattern(data, 1 << 20, 0);
    for (size_t n = 32; n <= (1 << 20); n += (n < 4096 ? 1 : n / 7)) {
        struct dmsg dm;
        dmsg_init(&dm, 1 << 21);
        cr_assert_eq(dmsg_append(&dm, data, n), 0);
        cr_assert_leq(dmsg_allocated(&dm), 2 * n, "%zu bytes took %zu", n, dmsg_allocated(&dm));
        dmsg_deinit(&dm);
    }
    free(data);
}

Test(dmsg, appends_in_small_pieces_read_back_across_boundaries)
{
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    char piece[37];
    size_t total = 0;
    while (total < 5000) {
        fill_pattern(piece, sizeof(piece), total);
        cr_assert_eq(dmsg_append(&dm, piece, sizeof(piece)), 0);
        total += sizeof(piece);
    }
    cr_assert_eq(dmsg_len(&dm), total);
    assert_content(&dm, 0, total);
    /* A window straddling the 64/128 boundary. */
    char w[10];
    cr_assert_eq(dmsg_copy(&dm, 60, w, 10), 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(w[i], (char)('a' + (60 + i) % 26));
    /* The iovecs cover exactly the data, in order. */
    struct iovec iov[32];
    int n = dmsg_iov(&dm, 0, iov, 32);
    size_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += iov[i].iov_len;
    cr_assert_eq(sum, total);
    n = dmsg_iov(&dm, 100, iov, 32);
    cr_assert_eq(*(char *)iov[0].iov_base, (char)('a' + 100 % 26));
    dmsg_deinit(&dm);
}

Test(dmsg, space_and_commit_fill_like_a_readv)
{
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    size_t total = 0;
    while (total < 3000) {
        struct iovec iov[4];
        int n = dmsg_space(&dm, iov, 4);
        cr_assert_gt(n, 0);
        /* Fill only part of the offered space, as a short read would. */
        size_t take = iov[0].iov_len > 50 ? 50 : iov[0].iov_len;
        fill_pattern(iov[0].iov_base, take, total);
        dmsg_commit(&dm, take);
        total += take;
    }
    cr_assert_eq(dmsg_len(&dm), total);
    assert_content(&dm, 0, total);
    dmsg_deinit(&dm);
}

Test(dmsg, consume_moves_the_front_and_resets_when_empty)
{
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    char data[1000];
    fill_pattern(data, sizeof(data), 0);
    cr_assert_eq(dmsg_append(&dm, data, sizeof(data)), 0);
    dmsg_consume(&dm, 130);
    cr_assert_eq(dmsg_len(&dm), 870);
    assert_content(&dm, 130, 870);
    dmsg_consume(&dm, 870);
    cr_assert_eq(dmsg_len(&dm), 0);
    /* Everything consumed: only the first buffer is kept. */
    cr_assert_eq(dmsg_allocated(&dm), 64);
    cr_assert_eq(dmsg_append(&dm, data, 10), 0);
    assert_content(&dm, 0, 10);
    dmsg_deinit(&dm);
}

Test(dmsg, cap_refuses_excess_without_partial_append)
{
    struct dmsg dm;
    dmsg_init(&dm, 200);
    char data[300];
    fill_pattern(data, sizeof(data), 0);
    cr_assert_eq(dmsg_append(&dm, data, 150), 0);
    cr_assert_eq(dmsg_append(&dm, data, 51), HERALD_ELIMIT);
    cr_assert_eq(dmsg_len(&dm), 150);
    cr_assert_eq(dmsg_append(&dm, data + 150, 50), 0);
    cr_assert_eq(dmsg_len(&dm), 200);
    cr_assert_leq(dmsg_allocated(&dm), 200);
    struct iovec iov[2];
    cr_assert_eq(dmsg_space(&dm, iov, 2), HERALD_ELIMIT);
    assert_content(&dm, 0, 200);
    dmsg_deinit(&dm);
}

Test(dmsg, compact_moves_partial_tail_to_the_front)
{
    struct dmsg dm;
    dmsg_init(&dm, 1024);
    char data[1024];
    fill_pattern(data, sizeof(data), 0);
    cr_assert_eq(dmsg_append(&dm, data, 1000), 0);
    /* Not worth it while the unconsumed part is larger than the consumed prefix. */
    dmsg_consume(&dm, 300);
    cr_assert_eq(dmsg_compact(&dm), 0);
    dmsg_consume(&dm, 600); /* 100 bytes left, starting at 900 */
    cr_assert_eq(dmsg_compact(&dm), 1);
    cr_assert_eq(dmsg_len(&dm), 100);
    assert_content(&dm, 900, 100);
    cr_assert_eq(dm.off, 0);
    /* Room again, under the same limit. */
    cr_assert_eq(dmsg_append(&dm, data, 900), 0);
    cr_assert_eq(dmsg_len(&dm), 1000);
    cr_assert_leq(dmsg_allocated(&dm), 1024);
    dmsg_deinit(&dm);
}

Test(dmsg, pipelined_stream_stays_within_limit)
{
    /* A reader that consumes 90-byte messages while bytes keep arriving never hits the limit when
     * it compacts whenever the buffer is full. */
    struct dmsg dm;
    dmsg_init(&dm, 512);
    size_t produced = 0, consumed = 0;
    for (int round = 0; round < 2000; round++) {
        struct iovec iov[4];
        int n = dmsg_space(&dm, iov, 4);
        if (n == HERALD_ELIMIT) {
            cr_assert_eq(dmsg_compact(&dm), 1, "round %d", round);
            n = dmsg_space(&dm, iov, 4);
        }
        cr_assert_gt(n, 0);
        size_t take = iov[0].iov_len > 70 ? 70 : iov[0].iov_len;
        fill_pattern(iov[0].iov_base, take, produced);
        dmsg_commit(&dm, take);
        produced += take;
        while (dmsg_len(&dm) >= 90) {
            char msg[90];
            dmsg_copy(&dm, 0, msg, 90);
            for (int i = 0; i < 90; i++)
                cr_assert_eq(msg[i], (char)('a' + (consumed + i) % 26));
            dmsg_consume(&dm, 90);
            consumed += 90;
        }
    }
    cr_assert_gt(consumed, 100000);
    dmsg_deinit(&dm);
}
