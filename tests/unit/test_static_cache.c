/* Unit tests for the per-thread cache of small static files: what it keeps, for how long, and
 * within which bounds. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "static_cache.h"

static char dir[64];
static struct static_root root;

static void put(const char *name, const char *text, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    if (text)
        fputs(text, f);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    cr_assert_eq(fclose(f), 0);
}

static void rm(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(unlink(path), 0, "%s", path);
}

static void setup(void)
{
    strcpy(dir, "/tmp/herald-scache-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(static_root_open(&root, dir), 0);
}

static void teardown(void)
{
    static_cache_thread_free();
    static_root_close(&root);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(static_cache, .init = setup, .fini = teardown);

/* Opens through the cache with `ttl` and returns the body as a string (kept or read from the fd
 * the cache handed back), or NULL with *rc set when it failed. */
static char *get(const struct static_root *r, unsigned ttl, const char *rel, int *rc, int *kept)
{
    struct static_file f;
    const char *body;
    *rc = static_cache_open(r, ttl, rel, 0, &f, &body);
    if (*rc != 0)
        return NULL;
    char *s = malloc(f.size + 1);
    cr_assert_not_null(s);
    if (body) {
        cr_assert_eq(f.fd, -1, "a kept file has no descriptor");
        memcpy(s, body, f.size);
    } else {
        cr_assert_geq(f.fd, 0);
        cr_assert_eq(pread(f.fd, s, f.size, 0), (ssize_t)f.size);
        close(f.fd);
    }
    s[f.size] = '\0';
    if (kept)
        *kept = body != NULL;
    return s;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

Test(static_cache, a_kept_file_is_served_from_memory_until_its_time_is_up)
{
    put("a.txt", "alpha\n", 0);
    int rc, kept;
    char *s = get(&root, 300, "a.txt", &rc, &kept);
    cr_assert_str_eq(s, "alpha\n");
    cr_assert(kept);
    free(s);
    rm("a.txt"); /* gone from disk, still kept */
    s = get(&root, 300, "a.txt", &rc, &kept);
    cr_assert_str_eq(s, "alpha\n");
    free(s);
    sleep_ms(400);
    cr_assert_null(get(&root, 300, "a.txt", &rc, &kept));
    cr_assert_eq(rc, -404, "read again after its time: the removal is noticed");
}

Test(static_cache, a_changed_file_is_read_again_with_a_new_entity_tag)
{
    put("c.css", "body{}\n", 0);
    struct static_file f1, f2;
    const char *body;
    cr_assert_eq(static_cache_open(&root, 100, "c.css", 0, &f1, &body), 0);
    cr_assert_not_null(body);
    sleep_ms(20); /* a different modification time */
    put("c.css", "body{color:red}\n", 0);
    sleep_ms(150);
    cr_assert_eq(static_cache_open(&root, 100, "c.css", 0, &f2, &body), 0);
    cr_assert_eq(f2.size, strlen("body{color:red}\n"));
    cr_assert_eq(memcmp(body, "body{color:red}\n", f2.size), 0);
    cr_assert_str_neq(f1.etag, f2.etag);
    cr_assert_str_eq(f2.content_type, "text/css; charset=utf-8");
}

Test(static_cache, errors_are_not_kept)
{
    int rc, kept;
    cr_assert_null(get(&root, 60000, "late.txt", &rc, &kept));
    cr_assert_eq(rc, -404);
    put("late.txt", "here now\n", 0);
    char *s = get(&root, 60000, "late.txt", &rc, &kept);
    cr_assert_str_eq(s, "here now\n", "a 404 is not remembered");
    free(s);
}

Test(static_cache, no_time_means_no_cache)
{
    put("n.txt", "one\n", 0);
    int rc, kept;
    char *s = get(&root, 0, "n.txt", &rc, &kept);
    cr_assert_str_eq(s, "one\n");
    cr_assert_not(kept, "ttl 0: the caller gets the descriptor");
    free(s);
    rm("n.txt");
    cr_assert_null(get(&root, 0, "n.txt", &rc, &kept));
    cr_assert_eq(rc, -404);
}

Test(static_cache, large_files_are_never_kept)
{
    put("big.bin", NULL, STATIC_CACHE_FILE_MAX + 1);
    put("edge.bin", NULL, STATIC_CACHE_FILE_MAX);
    int rc, kept;
    char *s = get(&root, 60000, "big.bin", &rc, &kept);
    cr_assert_eq(strlen(s), STATIC_CACHE_FILE_MAX + 1);
    cr_assert_not(kept);
    free(s);
    s = get(&root, 60000, "edge.bin", &rc, &kept);
    cr_assert_eq(strlen(s), STATIC_CACHE_FILE_MAX);
    cr_assert(kept, "the largest kept size is kept");
    free(s);
}

/* Past STATIC_CACHE_ENTRIES files, the least recently used one leaves. */
Test(static_cache, the_least_recently_used_file_leaves_past_the_entry_bound)
{
    char name[32];
    for (int i = 0; i <= STATIC_CACHE_ENTRIES; i++) {
        snprintf(name, sizeof(name), "f%d.txt", i);
        put(name, name, 0);
    }
    int rc, kept;
    for (int i = 0; i < STATIC_CACHE_ENTRIES; i++) {
        snprintf(name, sizeof(name), "f%d.txt", i);
        free(get(&root, 60000, name, &rc, &kept));
    }
    free(get(&root, 60000, "f0.txt", &rc, &kept)); /* f0 used again: f1 is now the oldest */
    snprintf(name, sizeof(name), "f%d.txt", STATIC_CACHE_ENTRIES);
    free(get(&root, 60000, name, &rc, &kept)); /* one more: f1 leaves */
    for (int i = 0; i <= STATIC_CACHE_ENTRIES; i++) {
        snprintf(name, sizeof(name), "f%d.txt", i);
        rm(name);
    }
    cr_assert_null(get(&root, 60000, "f1.txt", &rc, &kept), "f1 was dropped, and is gone");
    char *s = get(&root, 60000, "f0.txt", &rc, &kept);
    cr_assert_str_eq(s, "f0.txt", "f0 stayed");
    free(s);
    s = get(&root, 60000, "f2.txt", &rc, &kept);
    cr_assert_str_eq(s, "f2.txt", "f2 stayed");
    free(s);
}

/* Past STATIC_CACHE_BYTES, files leave too, however few they are. */
Test(static_cache, files_leave_past_the_byte_bound)
{
    int n = STATIC_CACHE_BYTES / STATIC_CACHE_FILE_MAX + 1, rc, kept;
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "m%d.bin", i);
        put(name, NULL, STATIC_CACHE_FILE_MAX);
        free(get(&root, 60000, name, &rc, &kept));
        cr_assert(kept);
    }
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "m%d.bin", i);
        rm(name);
    }
    cr_assert_null(get(&root, 60000, "m0.bin", &rc, &kept), "the first left to make room");
    snprintf(name, sizeof(name), "m%d.bin", n - 1);
    char *s = get(&root, 60000, name, &rc, &kept);
    cr_assert_not_null(s, "the last is kept");
    free(s);
}

/* Two roots with the same relative path are two files. */
Test(static_cache, each_root_has_its_own_files)
{
    put("index.html", "first\n", 0);
    char other[64] = "/tmp/herald-scache2-XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(other));
    snprintf(path, sizeof(path), "%s/index.html", other);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("second\n", f);
    fclose(f);
    struct static_root r2;
    cr_assert_eq(static_root_open(&r2, other), 0);
    int rc, kept;
    char *a = get(&root, 60000, "index.html", &rc, &kept),
         *b = get(&r2, 60000, "index.html", &rc, &kept);
    cr_assert_str_eq(a, "first\n");
    cr_assert_str_eq(b, "second\n");
    free(a);
    free(b);
    static_root_close(&r2);
    unlink(path);
    rmdir(other);
}

/* A directory's index is kept under the directory's path, and the redirect for a directory asked
 * without its '/' is never kept in its place. */
Test(static_cache, directories_and_their_redirect)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/docs", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    put("docs/index.html", "docs\n", 0);
    struct static_file f;
    const char *body;
    cr_assert_eq(static_cache_open(&root, 60000, "docs", 0, &f, &body), STATIC_REDIRECT);
    cr_assert_eq(static_cache_open(&root, 60000, "docs", 1, &f, &body), 0);
    cr_assert_not_null(body);
    cr_assert_eq(memcmp(body, "docs\n", 5), 0);
    cr_assert_str_eq(f.content_type, "text/html; charset=utf-8");
    cr_assert_eq(static_cache_open(&root, 60000, "docs", 0, &f, &body), STATIC_REDIRECT);
}
