/* Unit tests for the send queue: order, coalescing, partial sends, shared buffers, files, dmsgs. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "outq.h"

static struct obuf *buf_of(const char *s)
{
    struct obuf *b = obuf_new(strlen(s));
    cr_assert_eq(obuf_puts(b, s), 0);
    return b;
}

/* Reads everything available from fd (non-blocking) into out; returns the length. */
static size_t drain(int fd, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = recv(fd, out + n, cap - n, MSG_DONTWAIT)) > 0)
        n += (size_t)r;
    return n;
}

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

Test(outq, sends_segments_in_order_in_one_call)
{
    int sv[2];
    pair(sv);
    struct outq q;
    outq_init(&q);
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    cr_assert_eq(dmsg_append(&dm, "dmsg-part ", 10), 0);
    cr_assert_eq(outq_push_take(&q, buf_of("one ")), 0);
    cr_assert_eq(outq_push_dmsg_take(&q, &dm), 0);
    cr_assert_eq(dmsg_len(&dm), 0, "the dmsg's buffers moved into the queue");
    cr_assert_eq(outq_push_take(&q, buf_of("two")), 0);
    cr_assert_eq(outq_bytes(&q), 17);
    size_t sent = 0;
    cr_assert_eq(outq_flush(&q, sv[0], &sent), 0);
    cr_assert_eq(sent, 17);
    cr_assert_eq(outq_bytes(&q), 0);
    char got[64] = {0};
    cr_assert_eq(drain(sv[1], got, sizeof(got)), 17);
    cr_assert_str_eq(got, "one dmsg-part two");
    outq_deinit(&q);
    dmsg_deinit(&dm);
    close(sv[0]);
    close(sv[1]);
}

Test(outq, shared_buffer_is_freed_by_its_last_holder)
{
    struct obuf *b = buf_of("shared");
    struct outq a, c;
    outq_init(&a);
    outq_init(&c);
    cr_assert_eq(outq_push_take(&a, obuf_ref(b)), 0);
    cr_assert_eq(outq_push_take(&c, obuf_ref(b)), 0);
    obuf_unref(b); /* the publisher's reference */
    cr_assert_eq(atomic_load(&b->refs), 2);
    outq_deinit(&a);
    cr_assert_eq(atomic_load(&b->refs), 1);
    outq_deinit(&c); /* frees it: ASan would report a leak or a double free otherwise */
}

Test(outq, partial_sends_resume_where_they_stopped)
{
    int sv[2];
    pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct outq q;
    outq_init(&q);
    size_t total = 0;
    char *expect = malloc(1 << 20);
    for (int i = 0; i < 200; i++) {
        struct obuf *b = obuf_new(1000);
        for (int k = 0; k < 1000; k++)
            b->data[k] = (char)('a' + (i + k) % 26);
        b->len = 1000;
        memcpy(expect + total, b->data, 1000);
        total += 1000;
        cr_assert_eq(outq_push_take(&q, b), 0);
    }
    char *got = malloc(1 << 20);
    size_t have = 0;
    int rounds = 0;
    for (;;) {
        int rc = outq_flush(&q, sv[0], NULL);
        have += drain(sv[1], got + have, (1 << 20) - have);
        rounds++;
        if (rc == 0)
            break;
        cr_assert_eq(rc, -EAGAIN);
        cr_assert_lt(rounds, 10000);
    }
    have += drain(sv[1], got + have, (1 << 20) - have);
    cr_assert_gt(rounds, 1, "the small socket buffer forced partial sends");
    cr_assert_eq(have, total);
    cr_assert_eq(memcmp(got, expect, total), 0);
    free(got);
    free(expect);
    outq_deinit(&q);
    close(sv[0]);
    close(sv[1]);
}

/* Small segments are gathered into one buffer per send (outq.c); a send that stops part-way
 * through the gathered bytes must resume at the right byte of the right segment. */
Test(outq, many_small_segments_partly_sent_arrive_whole_and_in_order)
{
    int sv[2];
    pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct outq q;
    outq_init(&q);
    size_t total = 0, cap = 3000 * 97;
    char *expect = malloc(cap);
    for (int i = 0; i < 3000; i++) {
        size_t len = 1 + (size_t)(i * 37) % 97; /* 1-97 bytes: never aligned to a send */
        struct obuf *b = obuf_new(len);
        for (size_t k = 0; k < len; k++)
            b->data[k] = (char)('A' + (i * 7 + (int)k) % 58);
        b->len = (uint32_t)len;
        memcpy(expect + total, b->data, len);
        total += len;
        cr_assert_eq(outq_push_take(&q, b), 0);
    }
    char *got = malloc(cap);
    size_t have = 0;
    int rounds = 0;
    for (;;) {
        int rc = outq_flush(&q, sv[0], NULL);
        have += drain(sv[1], got + have, cap - have);
        rounds++;
        if (rc == 0)
            break;
        cr_assert_eq(rc, -EAGAIN);
        cr_assert_lt(rounds, 100000);
    }
    have += drain(sv[1], got + have, cap - have);
    cr_assert_gt(rounds, 1, "the small socket buffer forced partial sends");
    cr_assert_eq(have, total);
    cr_assert_eq(outq_bytes(&q), 0);
    cr_assert_eq(memcmp(got, expect, total), 0, "bytes lost, repeated or reordered");
    free(got);
    free(expect);
    outq_deinit(&q);
    close(sv[0]);
    close(sv[1]);
}

Test(outq, file_range_follows_its_head)
{
    char path[] = "/tmp/outq-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "0123456789", 10), 10);
    unlink(path);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct outq q;
    outq_init(&q);
    cr_assert_eq(outq_push_take(&q, buf_of("head:")), 0);
    cr_assert_eq(outq_push_file_take(&q, fd, 2, 5), 0);
    cr_assert_eq(outq_push_take(&q, buf_of(":tail")), 0);
    cr_assert_eq(outq_flush(&q, sv[0], NULL), 0);
    char got[64] = {0};
    cr_assert_eq(drain(sv[1], got, sizeof(got)), 15);
    cr_assert_str_eq(got, "head:23456:tail");
    outq_deinit(&q);
    close(sv[0]);
    close(sv[1]);
}

Test(outq, a_closed_peer_is_an_error_not_a_signal)
{
    int sv[2];
    pair(sv);
    close(sv[1]);
    struct outq q;
    outq_init(&q);
    cr_assert_eq(outq_push_take(&q, buf_of("nobody listens")), 0);
    cr_assert_eq(outq_flush(&q, sv[0], NULL), -EPIPE);
    outq_deinit(&q);
    close(sv[0]);
}

Test(outq, drop_unsent_keeps_a_partly_sent_front)
{
    int sv[2];
    pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct outq q;
    outq_init(&q);
    struct obuf *big = obuf_new(1 << 20);
    memset(big->data, 'b', 1 << 20);
    big->len = 1 << 20;
    cr_assert_eq(outq_push_take(&q, big), 0);
    cr_assert_eq(outq_push_take(&q, buf_of("later")), 0);
    cr_assert_eq(outq_flush(&q, sv[0], NULL), -EAGAIN);
    size_t left = outq_bytes(&q);
    cr_assert_gt(left, 5);
    cr_assert_eq(outq_drop_unsent(&q), 5, "only the untouched segment goes");
    cr_assert_eq(outq_bytes(&q), left - 5);
    cr_assert_eq(q.count, 1);
    outq_deinit(&q);
    /* Nothing started: everything goes. */
    outq_init(&q);
    cr_assert_eq(outq_push_take(&q, buf_of("abc")), 0);
    cr_assert_eq(outq_drop_unsent(&q), 3);
    cr_assert_eq(q.count, 0);
    outq_deinit(&q);
    close(sv[0]);
    close(sv[1]);
}
