/* Unit tests for the send queue: order, coalescing, partial sends, shared buffers, files, dmsgs. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
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

/* Flushes q through a socket pair with a small send buffer, draining the other end between
 * flushes; checks that exactly the `total` bytes of `expect` arrived, in more than one flush. */
static void flush_through_small_buffer(struct outq *q, const char *expect, size_t total)
{
    int sv[2];
    pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    size_t cap = total + 1; /* room for one byte too many */
    char *got = malloc(cap);
    size_t have = 0;
    int rounds = 0;
    for (;;) {
        int rc = outq_flush(q, sv[0], NULL);
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
    cr_assert_eq(outq_bytes(q), 0);
    cr_assert_eq(memcmp(got, expect, total), 0, "bytes lost, repeated or reordered");
    free(got);
    close(sv[0]);
    close(sv[1]);
}

/* Queues n buffers, the i-th of len_of(i) bytes of a pattern that differs between neighbours, and
 * copies their bytes to expect; returns the total. */
static size_t queue_buffers(struct outq *q, int n, size_t (*len_of)(int), char *expect)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t len = len_of(i);
        struct obuf *b = obuf_new(len);
        for (size_t k = 0; k < len; k++)
            b->data[k] = (char)('A' + (i * 7 + (int)k) % 58);
        b->len = (uint32_t)len;
        memcpy(expect + total, b->data, len);
        total += len;
        cr_assert_eq(outq_push_take(q, b), 0);
    }
    return total;
}

static size_t len_1000(int i)
{
    (void)i;
    return 1000;
}

static size_t len_1_to_97(int i)
{
    return 1 + (size_t)(i * 37) % 97; /* never aligned to a send */
}

/* Sends of 64 such pieces (6-16 KiB, gathered) are larger than what a Unix socket takes in one
 * packet (about 4 KiB with a 4 KiB send buffer), so they go out in part; with 1-97 bytes, 64
 * pieces fit in one packet and a send is all or nothing. */
static size_t len_100_to_250(int i)
{
    return 100 + (size_t)(i * 37) % 151;
}

/* 200 buffers of 1000 bytes: sent scattered, each send stopping anywhere. */
Test(outq, partial_sends_resume_where_they_stopped)
{
    struct outq q;
    outq_init(&q);
    char *expect = malloc(200 * 1000);
    flush_through_small_buffer(&q, expect, queue_buffers(&q, 200, len_1000, expect));
    free(expect);
    outq_deinit(&q);
}

/* Small segments are gathered into one buffer per send (outq.c); a send that stops part-way
 * through the gathered bytes must resume at the right byte of the right segment. */
Test(outq, many_small_segments_partly_sent_arrive_whole_and_in_order)
{
    struct outq q;
    outq_init(&q);
    char *expect = malloc(3000 * 250);
    flush_through_small_buffer(&q, expect, queue_buffers(&q, 3000, len_100_to_250, expect));
    free(expect);
    outq_deinit(&q);
}

/* Exactly FLUSH_IOV (64) buffers and nothing after them: the send must not carry MSG_MORE, or the
 * kernel keeps the bytes corked for up to 200 ms waiting for more. Over TCP on 127.0.0.1, nothing
 * may be left unsent in the socket once the flush returns. */
Test(outq, a_send_of_the_whole_queue_leaves_nothing_corked)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    cr_assert_eq(listen(lfd, 1), 0);
    int rx = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(rx, (struct sockaddr *)&a, sizeof(a)), 0);
    int tx = accept(lfd, NULL, NULL);
    cr_assert_geq(tx, 0);
    int one = 1;
    setsockopt(tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (int n = 63; n <= 65; n++) {
        struct outq q;
        outq_init(&q);
        char *expect = malloc((size_t)n * 97);
        size_t total = queue_buffers(&q, n, len_1_to_97, expect);
        cr_assert_eq(outq_flush(&q, tx, NULL), 0);
        int unsent = -1;
        cr_assert_eq(ioctl(tx, SIOCOUTQNSD, &unsent), 0);
        cr_assert_eq(unsent, 0, "%d buffers: %d bytes held back in the socket", n, unsent);
        char *got = malloc(total);
        size_t have = 0;
        while (have < total) {
            ssize_t r = recv(rx, got + have, total - have, 0);
            cr_assert_gt(r, 0);
            have += (size_t)r;
        }
        cr_assert_eq(memcmp(got, expect, total), 0);
        free(got);
        free(expect);
        outq_deinit(&q);
    }
    close(tx);
    close(rx);
    close(lfd);
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

/* Queues a frame as a header and a payload of its own (as ws_send does with large replies), then
 * another frame. */
static void push_split_frame_and_next(struct outq *q)
{
    struct dmsg dm;
    dmsg_init(&dm, 1 << 20);
    cr_assert_eq(dmsg_append(&dm, "payload", 7), 0);
    cr_assert_eq(outq_push_take(q, buf_of("HEAD")), 0);
    cr_assert_eq(outq_push_dmsg_take(q, &dm), 0);
    outq_join_last(q);
    cr_assert_eq(outq_push_take(q, buf_of("next")), 0);
}

/* A frame in two segments is kept or dropped whole: a slow consumer's close frame once followed a
 * header whose payload had been dropped, and the peer read the close as payload. */
Test(outq, drop_unsent_never_splits_a_joined_frame)
{
    struct outq q;
    /* The header alone went out: its payload stays, the next frame goes. */
    outq_init(&q);
    push_split_frame_and_next(&q);
    outq_sent(&q, 4);
    cr_assert_eq(outq_drop_unsent(&q), 4);
    cr_assert_eq(outq_bytes(&q), 7);
    cr_assert_eq(q.count, 1);
    outq_deinit(&q);
    /* Part of the header went out: the rest of it and the payload stay. */
    outq_init(&q);
    push_split_frame_and_next(&q);
    outq_sent(&q, 2);
    cr_assert_eq(outq_drop_unsent(&q), 4);
    cr_assert_eq(outq_bytes(&q), 9);
    cr_assert_eq(q.count, 2);
    outq_deinit(&q);
    /* Nothing went out: everything goes. */
    outq_init(&q);
    push_split_frame_and_next(&q);
    cr_assert_eq(outq_drop_unsent(&q), 15);
    cr_assert_eq(q.count, 0);
    outq_deinit(&q);
}

/* outq_prepare describes a send without making it; outq_sent then accounts for what went. This is
 * how a batch of sends (conn.c, sendring.h) uses the queue. */
Test(outq, prepare_gathers_small_pieces_and_sent_releases_what_went)
{
    struct outq q;
    outq_init(&q);
    const char *parts[] = {"one ", "two ", "three ", "four ", "five ", "six"};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(outq_push_take(&q, buf_of(parts[i])), 0);
    struct iovec iov[OUTQ_IOV];
    int more = -1;
    /* Without a stage every piece has its own iovec, in order, and nothing follows them. */
    cr_assert_eq(outq_prepare(&q, iov, OUTQ_IOV, NULL, 0, &more), 6);
    cr_assert_eq(more, 0);
    cr_assert_eq(iov[2].iov_len, 6u);
    cr_assert_eq(memcmp(iov[2].iov_base, "three ", 6), 0);
    /* With room for at most 3 iovecs, what is left is announced. */
    cr_assert_eq(outq_prepare(&q, iov, 3, NULL, 0, &more), 3);
    cr_assert_eq(more, 1);
    /* Given a stage large enough, five or more pieces are copied into it as one. */
    char stage[64];
    cr_assert_eq(outq_prepare(&q, iov, OUTQ_IOV, stage, sizeof(stage), &more), 1);
    cr_assert_eq(iov[0].iov_base, stage);
    cr_assert_eq(iov[0].iov_len, 27u);
    cr_assert_eq(memcmp(stage, "one two three four five six", 27), 0);
    /* ...but not when they would not fit: then they go as they are. */
    cr_assert_eq(outq_prepare(&q, iov, OUTQ_IOV, stage, 20, &more), 6);
    cr_assert_eq(outq_bytes(&q), 27u, "preparing changes nothing");
    /* 10 bytes went: "one two " whole and two bytes of "three ". */
    outq_sent(&q, 10);
    cr_assert_eq(outq_bytes(&q), 17u);
    cr_assert_eq(q.count, 4u);
    cr_assert_eq(outq_prepare(&q, iov, OUTQ_IOV, NULL, 0, &more), 4);
    cr_assert_eq(iov[0].iov_len, 4u);
    cr_assert_eq(memcmp(iov[0].iov_base, "ree ", 4), 0);
    outq_sent(&q, 17);
    cr_assert_eq(outq_bytes(&q), 0u);
    cr_assert_eq(q.count, 0u);
    cr_assert_eq(outq_prepare(&q, iov, OUTQ_IOV, stage, sizeof(stage), &more), 0);
    outq_deinit(&q);
}

/* ---- a thread's reference cache ---- */

#define CACHED_BUFS 1000 /* more than the cache has slots: some give way to others */

static struct obuf *bufs[CACHED_BUFS];

static void make_bufs(void)
{
    for (int i = 0; i < CACHED_BUFS; i++)
        bufs[i] = buf_of("cached");
}

/* Every buffer back to the test's own reference alone, then freed (ASan checks the frees). */
static void assert_only_the_test_holds_them(void)
{
    for (int i = 0; i < CACHED_BUFS; i++) {
        cr_assert_eq(atomic_load(&bufs[i]->refs), 1, "buffer %d holds %u references", i,
                     atomic_load(&bufs[i]->refs));
        obuf_unref(bufs[i]);
    }
}

Test(outq, a_cache_gives_every_reference_back_at_flush)
{
    cr_assert_eq(obuf_cache_open(), 0);
    struct obuf *b = buf_of("fan-out");
    for (int i = 0; i < 1000; i++)
        obuf_ref(b);
    cr_assert_geq(atomic_load(&b->refs), 1001, "a held reference is always counted");
    for (int i = 0; i < 1000; i++)
        obuf_unref(b);
    cr_assert_geq(atomic_load(&b->refs), 1, "the creator's reference still counts");
    obuf_cache_flush();
    cr_assert_eq(atomic_load(&b->refs), 1);
    obuf_cache_close();
    obuf_unref(b);
}

Test(outq, a_cache_with_more_buffers_than_slots_loses_no_reference)
{
    make_bufs();
    cr_assert_eq(obuf_cache_open(), 0);
    for (int round = 0; round < 3; round++) /* each taken 3 times, interleaved */
        for (int i = 0; i < CACHED_BUFS; i++)
            obuf_ref(bufs[i]);
    for (int i = 0; i < CACHED_BUFS; i++)
        cr_assert_geq(atomic_load(&bufs[i]->refs), 4);
    for (int round = 0; round < 3; round++)
        for (int i = CACHED_BUFS - 1; i >= 0; i--)
            obuf_unref(bufs[i]);
    obuf_cache_close();
    assert_only_the_test_holds_them();
}

Test(outq, a_cache_takes_references_in_bulk_and_takes_released_ones_back)
{
    cr_assert_eq(obuf_cache_open(), 0);
    struct obuf *b = buf_of("bulk");
    obuf_ref(b);
    unsigned after_one = atomic_load(&b->refs);
    cr_assert_gt(after_one, 2, "one atomic add takes references for later ones");
    obuf_ref(b);
    cr_assert_eq(atomic_load(&b->refs), after_one, "the second comes from the cache");
    obuf_unref(b);
    obuf_unref(b);
    cr_assert_eq(atomic_load(&b->refs), after_one, "released ones go back to the cache");
    obuf_cache_flush();
    cr_assert_eq(atomic_load(&b->refs), 1);
    obuf_cache_close();
    obuf_unref(b);
}

Test(outq, a_buffer_whose_holders_left_lives_until_the_flush)
{
    cr_assert_eq(obuf_cache_open(), 0);
    struct outq q;
    outq_init(&q);
    struct obuf *b = buf_of("last");
    obuf_ref(b); /* the test's, to look at the count */
    cr_assert_eq(outq_push_take(&q, obuf_ref(b)), 0);
    obuf_unref(b);   /* the publisher's */
    outq_deinit(&q); /* the last holder but the test */
    cr_assert_gt(atomic_load(&b->refs), 1, "the cache's credits are still counted");
    obuf_cache_close();
    cr_assert_eq(atomic_load(&b->refs), 1);
    obuf_unref(b);
}

static void *unref_times(void *arg)
{
    for (int i = 0; i < 257; i++)
        obuf_unref(arg);
    return NULL;
}

/* A slot whose credits were all handed out and whose buffer was then freed by other threads: the
 * cache must not touch that memory again (ASan), and a new buffer at the same address is counted
 * as its own. */
Test(outq, a_slot_without_credits_outlives_its_buffer_safely)
{
    cr_assert_eq(obuf_cache_open(), 0);
    struct obuf *a = buf_of("gone");
    for (int i = 0; i < 256; i++)
        obuf_ref(a); /* every credit of one bulk handed out, if the bulk is 256 */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, unref_times, a), 0);
    pthread_join(th, NULL); /* dropped the 256 and the creator's: a is freed if no credit is left */
    obuf_cache_flush();     /* must not touch a if its slot has no credit */
    struct obuf *b = buf_of("new");
    obuf_ref(b);
    obuf_unref(b);
    obuf_cache_flush();
    cr_assert_eq(atomic_load(&b->refs), 1);
    obuf_cache_close();
    obuf_unref(b);
}

struct cache_thread {
    struct outq q[16];
    bool cached;
};

/* Takes references to every buffer into its queues (with or without a cache), then drops them. */
static void *take_and_drop(void *arg)
{
    struct cache_thread *ct = arg;
    if (ct->cached)
        cr_assert_eq(obuf_cache_open(), 0);
    for (int k = 0; k < 16; k++) {
        outq_init(&ct->q[k]);
        for (int i = 0; i < CACHED_BUFS; i++)
            cr_assert_eq(outq_push_take(&ct->q[k], obuf_ref(bufs[i])), 0);
    }
    for (int k = 0; k < 16; k++)
        outq_deinit(&ct->q[k]);
    if (ct->cached)
        obuf_cache_close();
    return NULL;
}

Test(outq, threads_with_and_without_caches_share_buffers)
{
    make_bufs();
    struct cache_thread ct[3] = {{.cached = true}, {.cached = true}, {.cached = false}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, take_and_drop, &ct[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_only_the_test_holds_them();
}

/* A queue filled on a worker with a cache and sent (released) on another, as when a connection's
 * next turn runs on the other worker. */
static void *release_queues(void *arg)
{
    struct cache_thread *ct = arg;
    for (int k = 0; k < 16; k++)
        outq_deinit(&ct->q[k]);
    return NULL;
}

Test(outq, references_taken_through_a_cache_may_be_dropped_on_another_thread)
{
    make_bufs();
    static struct cache_thread ct;
    cr_assert_eq(obuf_cache_open(), 0);
    for (int k = 0; k < 16; k++) {
        outq_init(&ct.q[k]);
        for (int i = 0; i < CACHED_BUFS; i++)
            cr_assert_eq(outq_push_take(&ct.q[k], obuf_ref(bufs[i])), 0);
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, release_queues, &ct), 0);
    pthread_join(th, NULL);
    obuf_cache_close();
    assert_only_the_test_holds_them();
}
