/* fanout.c - the shared queue of wake batches and its serving tokens (see fanout.h). */
#include "fanout.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int fanout_init(struct fanout *f, int nworkers, bool steer)
{
    *f = (struct fanout){.efd = -1, .nworkers = nworkers, .steer = steer};
    f->w = aligned_alloc(64, sizeof(*f->w) * (size_t)nworkers);
    if (!f->w)
        return -ENOMEM;
    for (int i = 0; i < nworkers; i++) {
        atomic_init(&f->w[i].crowded, false);
        f->w[i].holding = false;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
    return f->efd < 0 ? -errno : 0;
}

void fanout_deinit(struct fanout *f)
{
    if (!f->w)
        return; /* never initialised, or failed before anything else */
    if (f->efd >= 0)
        close(f->efd);
    pthread_mutex_destroy(&f->lock);
    free(f->q);
    free(f->w);
    *f = (struct fanout){.efd = -1};
}

/* Room for one more batch, doubling the ring. Returns 0 or -1. Under f->lock. */
static int reserve(struct fanout *f)
{
    if (f->n < f->cap)
        return 0;
    size_t ncap = f->cap ? f->cap * 2 : 64;
    struct broker_batch **nq = malloc(ncap * sizeof(*nq));
    if (!nq)
        return -1;
    for (size_t i = 0; i < f->n; i++)
        nq[i] = f->q[(f->head + i) % f->cap];
    free(f->q);
    f->q = nq;
    f->cap = ncap;
    f->head = 0;
    return 0;
}

/* Takes the oldest batch; the queue is not empty. Under f->lock. */
static struct broker_batch *pop(struct fanout *f)
{
    struct broker_batch *b = f->q[f->head];
    f->head = (f->head + 1) % f->cap;
    f->n--;
    return b;
}

/* Workers that should serve: the free ones when some are free and some crowded, else all. */
static unsigned servers(const struct fanout *f)
{
    if (!f->steer)
        return (unsigned)f->nworkers;
    unsigned free_ = 0;
    for (int i = 0; i < f->nworkers; i++)
        free_ += !atomic_load_explicit(&f->w[i].crowded, memory_order_relaxed);
    return free_ == 0 ? (unsigned)f->nworkers : free_;
}

/* Whether `worker` should leave the queue to others. */
static bool stands_aside(const struct fanout *f, int worker)
{
    return f->steer && atomic_load_explicit(&f->w[worker].crowded, memory_order_relaxed) &&
           servers(f) < (unsigned)f->nworkers;
}

/* Gives up a token taken or held by a worker standing aside: dropped when another is out or
 * nothing is queued, else posted again for a free worker. Under f->lock; unlocks. Returns whether
 * it posted. */
static bool pass_on(struct fanout *f)
{
    bool post = f->tokens == 1 && f->n > 0;
    if (!post)
        f->tokens--;
    pthread_mutex_unlock(&f->lock);
    if (post)
        eventfd_write(f->efd, 1);
    return post;
}

int fanout_push(struct fanout *f, struct broker_batch *b, int worker)
{
    pthread_mutex_lock(&f->lock);
    int rc = f->closed ? -ESHUTDOWN : reserve(f) < 0 ? -ENOMEM : 0;
    if (rc < 0) {
        pthread_mutex_unlock(&f->lock);
        return rc;
    }
    f->q[(f->head + f->n++) % f->cap] = b;
    bool post = false;
    if (f->tokens < servers(f) && f->tokens < f->n) {
        f->tokens++;
        /* The pusher takes it when it may serve: it serves after the events it has taken, and
         * no other worker is woken to find the queue already served, nor a crowded one to pass
         * the token on while the pusher is busy. */
        if (worker >= 0 && !f->w[worker].holding && !stands_aside(f, worker))
            f->w[worker].holding = true;
        else
            post = true;
    }
    pthread_mutex_unlock(&f->lock);
    if (post)
        eventfd_write(f->efd, 1);
    return 0;
}

void fanout_on_ready(struct fanout *f, int worker)
{
    /* A holder serves already: the count is for another worker (the holder polls between its
     * chunks, so it would see, and take, most of them). */
    if (f->w[worker].holding)
        return;
    eventfd_t one;
    if (eventfd_read(f->efd, &one) < 0)
        return; /* another worker took it */
    pthread_mutex_lock(&f->lock);
    if (stands_aside(f, worker)) {
        /* Posted again, the token is there at this worker's next epoll_wait too, until a free
         * worker takes it: the CPU goes to the task that crowds it in between. */
        if (pass_on(f))
            sched_yield();
    } else {
        f->w[worker].holding = true;
        pthread_mutex_unlock(&f->lock);
    }
}

bool fanout_holding(const struct fanout *f, int worker)
{
    return f->w[worker].holding;
}

struct broker_batch *fanout_next(struct fanout *f, int worker)
{
    pthread_mutex_lock(&f->lock);
    if (f->n == 0) {
        f->tokens--;
        f->w[worker].holding = false;
        pthread_mutex_unlock(&f->lock);
        return NULL;
    }
    if (stands_aside(f, worker)) {
        f->w[worker].holding = false;
        (void)pass_on(f);
        return NULL;
    }
    struct broker_batch *b = pop(f);
    pthread_mutex_unlock(&f->lock);
    return b;
}

void fanout_set_crowded(struct fanout *f, int worker, bool crowded)
{
    atomic_store_explicit(&f->w[worker].crowded, crowded, memory_order_relaxed);
}

struct broker_batch *fanout_close(struct fanout *f)
{
    struct broker_batch *b = NULL;
    pthread_mutex_lock(&f->lock);
    f->closed = true;
    if (f->n > 0)
        b = pop(f);
    pthread_mutex_unlock(&f->lock);
    return b;
}
