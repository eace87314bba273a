/*
 * sendring.h - many sends, to many sockets, in one system call (io_uring, raw system calls).
 *
 * A broker fan-out sends once to each of hundreds of subscribers in a row. Made one sendmsg at a
 * time, each send pays the system call's entry and exit, which on the project's virtual machines
 * costs about 1 us on its own, and a loopback send much more: made 256 at a time through a ring
 * they cost about half the CPU (README: Design, Batched sends).
 *
 * Every send is queued with MSG_DONTWAIT: io_uring then completes it at once, with -EAGAIN when
 * the socket is full, instead of parking it until the socket drains. sendring_submit therefore
 * returns with every result known, and the caller's buffers are free again when it returns
 * (but see sendring_submit for a failing ring).
 *
 * Thread safety: a ring belongs to the thread that created it (IORING_SETUP_SINGLE_ISSUER);
 * rings of different threads are independent.
 */
#ifndef HERALD_SENDRING_H
#define HERALD_SENDRING_H

#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>

/* A send's result when the ring failed after taking it and never said what became of it: some of
 * it may have gone, so it must not be made again (its connection can only be closed). */
#define SENDRING_UNKNOWN INT_MIN

struct sendring;

/* sendring_new - a ring taking up to `entries` sends (a power of two, at most 4096) per submit,
 * checked with one real send on a socket pair. Returns NULL with *err set (-ENOSYS, -EPERM where
 * io_uring is disabled or filtered, -EINVAL or -EOPNOTSUPP where the ring cannot send, -ENOMEM)
 * when the kernel offers none that works: the caller then sends one sendmsg at a time. */
struct sendring *sendring_new(unsigned entries, int *err);

/* sendring_free - closes the ring. NULL is ignored. Nothing may be queued. */
void sendring_free(struct sendring *r);

/* sendring_room - sends that can still be queued before sendring_submit. */
unsigned sendring_room(const struct sendring *r);

/* sendring_add - queues sendmsg(fd, msg, flags | MSG_DONTWAIT | MSG_NOSIGNAL). `msg`, its iovecs
 * and the bytes they name must stay valid and unchanged until sendring_submit returns. Returns the
 * send's index (0, 1, ... in the order queued), or -1 when the ring is full. */
int sendring_add(struct sendring *r, int fd, const struct msghdr *msg, int flags);

/* sendring_submit - issues every queued send in one io_uring_enter and collects the results:
 * res[i] is what sendmsg would have returned for send i (bytes, or -errno, -EAGAIN for a full
 * socket), or an error of the ring's own: any negative result other than SENDRING_UNKNOWN means
 * nothing of the send went out. If io_uring_enter itself fails (not seen in practice), the sends
 * it never took get -ECANCELED, those it took without reporting get SENDRING_UNKNOWN, and the
 * ring takes nothing more (sendring_room 0): the kernel might still hold such a send, so the
 * bytes it names should not be reused while the process can avoid it. Afterwards the ring is
 * empty. Returns the number of sends. */
unsigned sendring_submit(struct sendring *r, int *res);

#endif
