/* sendring.c - batched sendmsg through io_uring, with raw system calls (see sendring.h). */
#include "sendring.h"

#include <errno.h>
#include <stdbool.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_ENTRIES 4096

struct sendring {
    int fd;
    unsigned entries;
    unsigned queued;  /* SQEs written since the last submit */
    bool dead;        /* io_uring_enter failed: SQEs may be left in the ring, never submit again */
    unsigned sq_tail; /* our copy: the kernel only reads the shared one */
    unsigned *sq_ktail, *sq_mask, *sq_array;
    unsigned *cq_khead, *cq_ktail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map;
    size_t sq_len, cq_len, sqes_len;
};

static int ring_setup(unsigned entries, struct io_uring_params *p)
{
    /* SUBMIT_ALL: one bad send does not stop the rest; COOP_TASKRUN and SINGLE_ISSUER spare the
     * kernel interrupts and locking a ring of one thread does not need. Older kernels refuse
     * flags they do not know, so fewer are tried next. */
    static const unsigned flag_sets[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                                             IORING_SETUP_SINGLE_ISSUER,
                                         IORING_SETUP_SUBMIT_ALL, 0};
    int fd = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        memset(p, 0, sizeof(*p));
        p->flags = flag_sets[i];
        fd = (int)syscall(__NR_io_uring_setup, entries, p);
        if (fd >= 0)
            return fd;
        fd = -errno;
        if (fd != -EINVAL)
            break;
    }
    return fd;
}

static void *map(int fd, size_t len, off_t off)
{
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
    return m == MAP_FAILED ? NULL : m;
}

/* One real send through the ring, on a socket pair: a kernel may create rings and still refuse
 * IORING_OP_SENDMSG (before 5.3) or restrict a ring's operations (sandboxes). Such a ring would
 * fail every send; refusing it here makes the caller send the ordinary way. 0 or -errno. */
static int probe(struct sendring *r)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    char byte = 'p';
    struct iovec v = {&byte, 1};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    int res = -EOPNOTSUPP;
    if (sendring_add(r, sv[0], &m, 0) == 0)
        sendring_submit(r, &res);
    close(sv[0]);
    close(sv[1]);
    if (res == 1)
        return 0;
    return res < 0 && res != SENDRING_UNKNOWN ? res : -EOPNOTSUPP;
}

struct sendring *sendring_new(unsigned entries, int *err)
{
    if (entries == 0 || entries > MAX_ENTRIES || (entries & (entries - 1))) {
        *err = -EINVAL;
        return NULL;
    }
    struct sendring *r = calloc(1, sizeof(*r));
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    struct io_uring_params p;
    r->fd = ring_setup(entries, &p);
    if (r->fd < 0) {
        *err = r->fd;
        free(r);
        return NULL;
    }
    r->entries = p.sq_entries;
    r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    bool single = p.features & IORING_FEAT_SINGLE_MMAP;
    if (single && r->cq_len > r->sq_len)
        r->sq_len = r->cq_len;
    r->sq_map = map(r->fd, r->sq_len, IORING_OFF_SQ_RING);
    r->cq_map = single ? r->sq_map : map(r->fd, r->cq_len, IORING_OFF_CQ_RING);
    r->sqes = map(r->fd, r->sqes_len, IORING_OFF_SQES);
    if (!r->sq_map || !r->cq_map || !r->sqes) {
        *err = -ENOMEM;
        sendring_free(r);
        return NULL;
    }
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_ktail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_khead = (unsigned *)(cq + p.cq_off.head);
    r->cq_ktail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sq_tail = *r->sq_ktail;
    int rc = probe(r);
    if (rc < 0) {
        *err = rc;
        sendring_free(r);
        return NULL;
    }
    return r;
}

void sendring_free(struct sendring *r)
{
    if (!r)
        return;
    if (r->sqes)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_map && r->cq_map != r->sq_map)
        munmap(r->cq_map, r->cq_len);
    if (r->sq_map)
        munmap(r->sq_map, r->sq_len);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

unsigned sendring_room(const struct sendring *r)
{
    return r->dead ? 0 : r->entries - r->queued;
}

int sendring_add(struct sendring *r, int fd, const struct msghdr *msg, int flags)
{
    if (r->queued == r->entries || r->dead)
        return -1;
    unsigned idx = r->sq_tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[idx];
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_SENDMSG;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)msg;
    sqe->len = 1;
    /* MSG_DONTWAIT makes io_uring fail a full socket's send with -EAGAIN at once instead of
     * waiting for room: submit can then return every result (sendring.h). */
    sqe->msg_flags = (unsigned)(flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    sqe->user_data = r->queued;
    r->sq_array[idx] = idx;
    r->sq_tail++;
    return (int)r->queued++;
}

/* Moves every completion waiting in the CQ ring into res; returns how many. */
static unsigned reap(struct sendring *r, int *res, unsigned n)
{
    unsigned head = *r->cq_khead, got = 0;
    unsigned tail = __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
        if (cqe->user_data < n) {
            res[cqe->user_data] = cqe->res;
            got++;
        }
    }
    __atomic_store_n(r->cq_khead, head, __ATOMIC_RELEASE);
    return got;
}

unsigned sendring_submit(struct sendring *r, int *res)
{
    unsigned n = r->queued;
    if (n == 0)
        return 0;
    for (unsigned i = 0; i < n; i++)
        res[i] = SENDRING_UNKNOWN; /* taken and never reported (sendring.h) */
    /* Publishes the SQEs: the kernel reads them after it sees the new tail. */
    __atomic_store_n(r->sq_ktail, r->sq_tail, __ATOMIC_RELEASE);
    unsigned submitted = 0, done = 0;
    while (done < n) {
        /* Sends complete during submission (MSG_DONTWAIT), so waiting for one completion returns
         * with all of them posted; the loop covers a kernel that posts them later. */
        long rc =
            syscall(__NR_io_uring_enter, r->fd, n - submitted, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EBUSY)
                continue;
            /* The ring failed (not seen in practice). What it never took is reported as not
             * sent, so the caller can send it the ordinary way; SQEs may be left in the ring,
             * naming memory that is about to be reused, so it is never submitted again. */
            r->dead = true;
            for (unsigned i = submitted; i < n; i++)
                res[i] = -ECANCELED;
            break;
        }
        submitted += (unsigned)rc;
        done += reap(r, res, n);
    }
    r->queued = 0;
    return n;
}
