/* static_cache.c - per-thread cache of small static files (see static_cache.h). */
#include "static_cache.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_handler.h"
#include "twheel.h"

/* A kept file is always answered inline, from its bytes (http_handler.c: serve_file). */
_Static_assert(STATIC_CACHE_FILE_MAX <= HTTP_INLINE_FILE_MAX, "kept files are sent inline");

struct kept {
    char *rel;  /* NULL: the slot is free */
    size_t len; /* of rel */
    uint64_t root_id;
    int is_dir;
    uint64_t expires_ms;
    uint64_t used;           /* the cache's clock at the last hit: the smallest leaves first */
    struct static_file meta; /* fd -1 */
    char *body;
};

struct static_cache {
    struct kept k[STATIC_CACHE_ENTRIES];
    size_t bytes; /* of every body kept */
    uint64_t clock;
};

static __thread struct static_cache *cache;

static void drop(struct static_cache *c, struct kept *k)
{
    c->bytes -= k->meta.size;
    free(k->rel);
    free(k->body);
    memset(k, 0, sizeof(*k));
}

static struct kept *find(struct static_cache *c, uint64_t root_id, const char *rel, size_t len,
                         int is_dir)
{
    for (size_t i = 0; i < STATIC_CACHE_ENTRIES; i++) {
        struct kept *k = &c->k[i];
        if (k->rel && k->len == len && k->root_id == root_id && k->is_dir == is_dir &&
            memcmp(k->rel, rel, len) == 0)
            return k;
    }
    return NULL;
}

/* A free slot, after the least recently used files left until `size` more bytes fit. */
static struct kept *make_room(struct static_cache *c, size_t size)
{
    for (;;) {
        struct kept *free_slot = NULL, *oldest = NULL;
        for (size_t i = 0; i < STATIC_CACHE_ENTRIES; i++) {
            struct kept *k = &c->k[i];
            if (!k->rel)
                free_slot = free_slot ? free_slot : k;
            else if (!oldest || k->used < oldest->used)
                oldest = k;
        }
        if (free_slot && c->bytes + size <= STATIC_CACHE_BYTES)
            return free_slot;
        drop(c, oldest); /* not NULL: a full table or bytes kept means some file is */
    }
}

/* Reads the whole of an opened file; 0 or -EIO (it shrank since its fstat, or a read failed). */
static int read_whole(int fd, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -EIO;
        got += (size_t)r;
    }
    return 0;
}

/* Keeps the file static_open just opened in *out; on 0 its fd is closed and *body set. A file
 * that cannot be kept (too large, no memory) is left open for the caller, *body NULL. */
static int keep(struct static_cache *c, uint64_t root_id, const char *rel, size_t len, int is_dir,
                uint64_t expires, struct static_file *out, const char **body)
{
    if (out->size > STATIC_CACHE_FILE_MAX)
        return 0;
    size_t size = (size_t)out->size;
    char *copy = strdup(rel), *bytes = malloc(size ? size : 1);
    if (!copy || !bytes) {
        free(copy);
        free(bytes);
        return 0;
    }
    int rc = read_whole(out->fd, bytes, size);
    close(out->fd);
    out->fd = -1;
    if (rc < 0) {
        free(copy);
        free(bytes);
        return rc;
    }
    struct kept *k = make_room(c, size);
    *k = (struct kept){.rel = copy,
                       .root_id = root_id,
                       .len = len,
                       .is_dir = is_dir,
                       .expires_ms = expires,
                       .used = ++c->clock,
                       .meta = *out,
                       .body = bytes};
    c->bytes += size;
    *body = bytes;
    return 0;
}

int static_cache_open(const struct static_root *root, unsigned ttl_ms, const char *rel, int is_dir,
                      struct static_file *out, const char **body)
{
    *body = NULL;
    if (ttl_ms == 0 || (!cache && !(cache = calloc(1, sizeof(*cache)))))
        return static_open(root, rel, is_dir, out);
    size_t len = strlen(rel);
    uint64_t now = twheel_now();
    struct kept *k = find(cache, root->id, rel, len, is_dir);
    if (k && now < k->expires_ms) {
        k->used = ++cache->clock;
        *out = k->meta;
        *body = k->body;
        return 0;
    }
    if (k)
        drop(cache, k); /* read again: the file may have changed */
    int rc = static_open(root, rel, is_dir, out);
    if (rc != 0)
        return rc;
    return keep(cache, root->id, rel, len, is_dir, now + ttl_ms, out, body);
}

void static_cache_thread_free(void)
{
    if (!cache)
        return;
    for (size_t i = 0; i < STATIC_CACHE_ENTRIES; i++)
        if (cache->k[i].rel)
            drop(cache, &cache->k[i]);
    free(cache);
    cache = NULL;
}
