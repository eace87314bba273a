/*
 * sendring.h - many sends, to many sockets, in one system call (io_uring, raw system calls).
 *
 * A broker fan-out sends once to each of hundreds of subscribers in a row. Made one sendmsg at a
 * time, each send pays the system call's entry and exit, which on the project's virtual machines
 * costs about 1 us on its own (a getppid loop) and much more around a loopback send: a C program
 * that sent 2,100 bytes to each of 1,000 loopback sockets per round spent 6.4-9.6 us of CPU per
 * sendmsg against 3.0-3.7 us per send queued 256 at a time to an io_uring (README: Design).
 *
 * Every send is queued with MSG_DONTWAIT: io_uring then completes it at once, with -EAGAIN when
 * the socket is full, instead of parking it until the socket drains. sendring_submit therefore
 * returns with every result known, and the caller's buffers are free again when it returns.
 *
 * Thread safety: a ring belongs to the thread that created it (IORING_SETUP_SINGLE_ISSUER);
 * rings of different threads are independent.
 */
#ifndef HERALD_SENDRING_H
#define HERALD_SENDRING_H

#include <stdint.h>
#include <sys/socket.h>

struct sendring;

/* sendring_new - a ring taking up to `entries` sends (a power of two, at most 4096) per submit.
 * Returns NULL with *err set (-ENOSYS, -EPERM where io_uring is disabled or filtered, -ENOMEM, ...)
 * when the kernel offers none: the caller then sends one sendmsg at a time. */
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
 * socket). A send the kernel never took (the ring failed, which should not happen) gets
 * -ECANCELED: nothing of it went out. Afterwards the ring is empty. Returns the number of sends. */
unsigned sendring_submit(struct sendring *r, int *res);

#endif
