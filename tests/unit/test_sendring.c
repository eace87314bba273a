/* Unit tests for batched sends through io_uring: results per send, full and broken sockets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sendring.h"

static struct sendring *ring(unsigned entries)
{
    int err = 0;
    struct sendring *r = sendring_new(entries, &err);
    if (!r)
        cr_skip_test("no io_uring here (%s): Herald sends one sendmsg at a time", strerror(-err));
    return r;
}

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

static struct msghdr msg_of(struct iovec *iov, int n)
{
    return (struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n};
}

Test(sendring, rejects_sizes_that_are_not_powers_of_two)
{
    int err = 0;
    cr_assert_null(sendring_new(0, &err));
    cr_assert_eq(err, -EINVAL);
    cr_assert_null(sendring_new(6, &err));
    cr_assert_null(sendring_new(8192, &err));
}

Test(sendring, sends_to_many_sockets_in_one_submit_each_its_own_bytes)
{
    struct sendring *r = ring(8);
    int sv[8][2];
    char text[8][32];
    struct iovec iov[8][2];
    struct msghdr m[8];
    for (int i = 0; i < 8; i++) {
        pair(sv[i]);
        snprintf(text[i], sizeof(text[i]), "socket %d says hello", i);
        /* Two pieces each: the iovecs are gathered by the kernel in order. */
        iov[i][0] = (struct iovec){text[i], 7};
        iov[i][1] = (struct iovec){text[i] + 7, strlen(text[i]) - 7};
        m[i] = msg_of(iov[i], 2);
        cr_assert_eq(sendring_room(r), 8u - (unsigned)i);
        cr_assert_eq(sendring_add(r, sv[i][0], &m[i], 0), i);
    }
    cr_assert_eq(sendring_room(r), 0u);
    cr_assert_eq(sendring_add(r, sv[0][0], &m[0], 0), -1, "a full ring refuses another send");
    int res[8];
    cr_assert_eq(sendring_submit(r, res), 8u);
    cr_assert_eq(sendring_room(r), 8u, "the ring is empty again");
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(res[i], (int)strlen(text[i]));
        char got[64] = {0};
        cr_assert_eq(recv(sv[i][1], got, sizeof(got), 0), (ssize_t)strlen(text[i]));
        cr_assert_str_eq(got, text[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    sendring_free(r);
}

Test(sendring, a_full_socket_fails_at_once_and_does_not_stop_the_others)
{
    struct sendring *r = ring(4);
    int full[2], ok[2];
    pair(full);
    pair(ok);
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    while (send(full[0], chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
    struct iovec a = {chunk, 100}, b = {"still here", 10};
    struct msghdr ma = msg_of(&a, 1), mb = msg_of(&b, 1);
    cr_assert_eq(sendring_add(r, full[0], &ma, 0), 0);
    cr_assert_eq(sendring_add(r, ok[0], &mb, 0), 1);
    int res[2];
    /* Without MSG_DONTWAIT io_uring would park the first send until the socket drained, and
     * this submit would never return. */
    cr_assert_eq(sendring_submit(r, res), 2u);
    cr_assert_eq(res[0], -EAGAIN);
    cr_assert_eq(res[1], 10);
    char got[16] = {0};
    cr_assert_eq(recv(ok[1], got, sizeof(got), 0), 10);
    cr_assert_str_eq(got, "still here");
    sendring_free(r);
    close(full[0]);
    close(full[1]);
    close(ok[0]);
    close(ok[1]);
}

Test(sendring, a_vanished_peer_is_epipe_without_sigpipe)
{
    /* SIGPIPE's default action would kill this test process: MSG_NOSIGNAL must be set. */
    cr_assert_neq(signal(SIGPIPE, SIG_DFL), SIG_ERR);
    struct sendring *r = ring(2);
    int sv[2];
    pair(sv);
    close(sv[1]);
    struct iovec v = {"gone", 4};
    struct msghdr m = msg_of(&v, 1);
    cr_assert_eq(sendring_add(r, sv[0], &m, 0), 0);
    int res[1];
    cr_assert_eq(sendring_submit(r, res), 1u);
    cr_assert_eq(res[0], -EPIPE);
    cr_assert_eq(sendring_submit(r, res), 0u, "nothing queued, nothing sent");
    sendring_free(r);
    close(sv[0]);
}
