/* twheel.c - a locked wheel of one-second deadline lists (see twheel.h). */
#include "twheel.h"

#include <time.h>

#define WHERE_NONE    0
#define WHERE_SLOT    1
#define WHERE_EXPIRED 2

static void list_init(struct twheel_entry *head)
{
    head->prev = head->next = head;
}

static void list_unlink(struct twheel_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

/* Appends at the tail, so every slot list runs from oldest to newest insertion. */
static void list_append(struct twheel_entry *head, struct twheel_entry *e)
{
    e->prev = head->prev;
    e->next = head;
    head->prev->next = e;
    head->prev = e;
}

int twheel_init(struct twheel *w, uint64_t now)
{
    for (int i = 0; i < TWHEEL_SLOTS; i++)
        list_init(&w->slots[i]);
    list_init(&w->expired);
    w->swept = now / 1000 - 1;
    w->count = 0;
    return -pthread_mutex_init(&w->lock, NULL);
}

void twheel_deinit(struct twheel *w)
{
    pthread_mutex_destroy(&w->lock);
}

void twheel_entry_init(struct twheel_entry *e)
{
    e->prev = e->next = NULL;
    e->deadline = 0;
    e->where = WHERE_NONE;
}

void twheel_set(struct twheel *w, struct twheel_entry *e, uint64_t deadline)
{
    pthread_mutex_lock(&w->lock);
    if (e->where != WHERE_NONE)
        list_unlink(e);
    else
        w->count++;
    e->deadline = deadline;
    e->where = WHERE_SLOT;
    /* A deadline already swept past goes into the next slot to be swept, never behind the hand. */
    uint64_t sec = deadline / 1000;
    uint64_t at = sec > w->swept ? sec : w->swept + 1;
    list_append(&w->slots[at % TWHEEL_SLOTS], e);
    pthread_mutex_unlock(&w->lock);
}

void twheel_remove(struct twheel *w, struct twheel_entry *e)
{
    pthread_mutex_lock(&w->lock);
    if (e->where != WHERE_NONE) {
        list_unlink(e);
        e->where = WHERE_NONE;
        w->count--;
    }
    pthread_mutex_unlock(&w->lock);
}

/* Expires the due entries of one slot; entries a whole turn or more ahead stay. */
static unsigned sweep_slot(struct twheel *w, struct twheel_entry *head, uint64_t now,
                           int (*cb)(struct twheel_entry *, void *), void *arg)
{
    unsigned n = 0;
    struct twheel_entry *e = head->next;
    struct twheel_entry *retry = &w->slots[(now / 1000 + 1) % TWHEEL_SLOTS];
    while (e != head) {
        struct twheel_entry *next = e->next;
        if (e->deadline <= now) {
            list_unlink(e);
            if (cb(e, arg) == 0) {
                list_append(&w->expired, e);
                e->where = WHERE_EXPIRED;
                n++;
            } else if (retry != head) {
                list_append(retry, e); /* the next second's slot: swept next time */
            } else {
                list_append(&w->expired, e); /* nowhere better: keep it reachable */
                e->where = WHERE_EXPIRED;
            }
        }
        e = next;
    }
    return n;
}

unsigned twheel_expire(struct twheel *w, uint64_t now, int (*cb)(struct twheel_entry *, void *),
                       void *arg)
{
    unsigned n = 0;
    uint64_t sec = now / 1000;
    pthread_mutex_lock(&w->lock);
    uint64_t from = w->swept + 1;
    /* After a long pause every slot is due once; there is no need to visit any slot twice. */
    if (sec >= from + TWHEEL_SLOTS)
        from = sec - TWHEEL_SLOTS + 1;
    for (uint64_t t = from; t <= sec; t++)
        n += sweep_slot(w, &w->slots[t % TWHEEL_SLOTS], now, cb, arg);
    /* The current second's slot may still hold deadlines later in this second: the next sweep
     * visits it again. */
    if (sec > 0 && sec - 1 > w->swept)
        w->swept = sec - 1;
    pthread_mutex_unlock(&w->lock);
    return n;
}

struct twheel_entry *twheel_drain(struct twheel *w)
{
    struct twheel_entry *found = NULL;
    pthread_mutex_lock(&w->lock);
    for (int i = -1; i < TWHEEL_SLOTS && !found; i++) {
        struct twheel_entry *head = i < 0 ? &w->expired : &w->slots[i];
        if (head->next != head)
            found = head->next;
    }
    if (found) {
        list_unlink(found);
        found->where = WHERE_NONE;
        w->count--;
    }
    pthread_mutex_unlock(&w->lock);
    return found;
}

uint64_t twheel_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
