/* reclaim.c - quiescent-state-based reclamation over epoll_wait (see reclaim.h). */
#include "reclaim.h"

#include <errno.h>
#include <stdlib.h>

struct reclaim_batch {
    struct reclaim_batch *next;
    struct reclaim_item *items;
    uint64_t snap[]; /* every worker's seq when the batch was closed */
};

int reclaim_init(struct reclaim *r, int nworkers)
{
    r->nworkers = nworkers;
    r->workers = aligned_alloc(64, sizeof(*r->workers) * (size_t)nworkers);
    if (!r->workers)
        return -ENOMEM;
    for (int i = 0; i < nworkers; i++) {
        atomic_init(&r->workers[i].seq, 0);
        r->workers[i].pending = NULL;
        r->workers[i].waiting = r->workers[i].waiting_tail = NULL;
    }
    return 0;
}

static void free_items(struct reclaim_item *it)
{
    while (it) {
        struct reclaim_item *next = it->next;
        it->free_cb(it);
        it = next;
    }
}

void reclaim_deinit(struct reclaim *r)
{
    for (int i = 0; i < r->nworkers; i++) {
        struct reclaim_worker *w = &r->workers[i];
        free_items(w->pending);
        for (struct reclaim_batch *b = w->waiting, *next; b; b = next) {
            next = b->next;
            free_items(b->items);
            free(b);
        }
    }
    free(r->workers);
    r->workers = NULL;
}

void reclaim_enter_wait(struct reclaim *r, int w)
{
    /* Release: everything this batch did with retired items happens before others see us pass. */
    atomic_fetch_add_explicit(&r->workers[w].seq, 1, memory_order_release);
}

void reclaim_leave_wait(struct reclaim *r, int w)
{
    atomic_fetch_add_explicit(&r->workers[w].seq, 1, memory_order_seq_cst);
}

void reclaim_retire(struct reclaim *r, int w, struct reclaim_item *it,
                    void (*free_cb)(struct reclaim_item *))
{
    it->free_cb = free_cb;
    it->next = r->workers[w].pending;
    r->workers[w].pending = it;
}

/* 1 when every worker has left the batch it was in at the snapshot. */
static int grace_passed(const struct reclaim *r, const uint64_t *snap)
{
    for (int i = 0; i < r->nworkers; i++) {
        uint64_t now = atomic_load_explicit(&r->workers[i].seq, memory_order_acquire);
        uint64_t need = (snap[i] & 1) ? 2 : 1;
        if (now - snap[i] < need)
            return 0;
    }
    return 1;
}

/* Closes the items retired in this batch under a snapshot of every counter. */
static void close_batch(struct reclaim *r, struct reclaim_worker *w)
{
    struct reclaim_batch *b = malloc(sizeof(*b) + sizeof(uint64_t) * (size_t)r->nworkers);
    if (!b)
        return; /* keep them pending: the next poll tries again */
    /* seq_cst loads pair with reclaim_leave_wait's seq_cst increment: a worker whose epoll_wait
     * returned one of these items before it was retired is either seen working (even) or must
     * count twice more before the items go. */
    for (int i = 0; i < r->nworkers; i++)
        b->snap[i] = atomic_load_explicit(&r->workers[i].seq, memory_order_seq_cst);
    b->items = w->pending;
    b->next = NULL;
    w->pending = NULL;
    if (w->waiting_tail)
        w->waiting_tail->next = b;
    else
        w->waiting = b;
    w->waiting_tail = b;
}

unsigned reclaim_poll(struct reclaim *r, int wi)
{
    struct reclaim_worker *w = &r->workers[wi];
    if (w->pending)
        close_batch(r, w);
    unsigned n = 0;
    while (w->waiting && grace_passed(r, w->waiting->snap)) {
        struct reclaim_batch *b = w->waiting;
        w->waiting = b->next;
        if (!w->waiting)
            w->waiting_tail = NULL;
        for (struct reclaim_item *it = b->items; it; it = it->next)
            n++;
        free_items(b->items);
        free(b);
    }
    return n;
}
