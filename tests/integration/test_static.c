/* Integration: the document root cannot be escaped; files of every size arrive intact. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct herald_proc srv;
static char *root, *outside;

static void setup(void)
{
    outside = make_temp_dir();
    write_file(outside, "secret.txt", "outside secret\n", 0);
    root = make_temp_dir();
    write_file(root, "index.html", "home\n", 0);
    write_file(root, ".env", "TOKEN=hidden\n", 0);
    write_file(root, "big.bin", NULL, 3 * 1024 * 1024 + 17);
    write_file(root, "mid.bin", NULL, 40000);
    char path[600], target[600];
    snprintf(path, sizeof(path), "%s/docs", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    write_file(path, "index.html", "docs index\n", 0);
    write_file(path, "page.css", "body{}\n", 0);
    snprintf(path, sizeof(path), "%s/.git", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    write_file(path, "config", "[core]\n", 0);
    /* Escapes: to a directory outside, to a file outside, absolute and relative. */
    snprintf(path, sizeof(path), "%s/out", root);
    cr_assert_eq(symlink(outside, path), 0);
    snprintf(path, sizeof(path), "%s/passwd", root);
    cr_assert_eq(symlink("/etc/passwd", path), 0);
    snprintf(path, sizeof(path), "%s/rel", root);
    snprintf(target, sizeof(target), "../%s/secret.txt", strrchr(outside, '/') + 1);
    cr_assert_eq(symlink(target, path), 0);
    /* A symlink that stays inside the root is fine. */
    snprintf(path, sizeof(path), "%s/inside", root);
    cr_assert_eq(symlink("docs/index.html", path), 0);
    /* A directory whose index.html climbs to a page elsewhere inside the root. */
    snprintf(path, sizeof(path), "%s/shared", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    write_file(path, "page.html", "shared page\n", 0);
    snprintf(path, sizeof(path), "%s/up", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/up/index.html", root);
    cr_assert_eq(symlink("../shared/page.html", path), 0);
    const char *args[] = {"--threads", "2", "--root", root, NULL};
    herald_start(&srv, args);
}

static void teardown(void)
{
    free(herald_stop(&srv));
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", root, outside);
    cr_assert_eq(system(cmd), 0);
    free(root);
    free(outside);
}

TestSuite(static_files, .init = setup, .fini = teardown, .timeout = 60);

static int get_status(const char *path, struct http_resp *r)
{
    char req[1024];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    cr_assert_eq(http_once(srv.port, req, r), 0, "%s", path);
    return r->status;
}

Test(static_files, traversal_never_leaves_the_root)
{
    const char *paths[] = {
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/docs/../../../etc/passwd",
        "/out/secret.txt",
        "/passwd",
        "/rel",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_resp r;
        int st = get_status(paths[i], &r);
        cr_assert(st == 404 || st == 400, "%s gave %d", paths[i], st);
        cr_assert_null(strstr(r.body, "root:"), "%s leaked /etc/passwd", paths[i]);
        cr_assert_null(strstr(r.body, "secret"), "%s leaked a file outside", paths[i]);
        resp_free(&r);
    }
}

Test(static_files, dotfiles_are_not_served)
{
    const char *paths[] = {"/.env", "/.git/config", "/%2eenv", "/docs/../.env"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_resp r;
        cr_assert_eq(get_status(paths[i], &r), 404, "%s", paths[i]);
        cr_assert_null(strstr(r.body, "TOKEN"));
        resp_free(&r);
    }
}

Test(static_files, symlink_inside_the_root_and_directories)
{
    struct http_resp r;
    cr_assert_eq(get_status("/inside", &r), 200);
    cr_assert_str_eq(r.body, "docs index\n");
    resp_free(&r);
    cr_assert_eq(get_status("/docs/", &r), 200);
    cr_assert_str_eq(r.body, "docs index\n");
    resp_free(&r);
    cr_assert_eq(get_status("/docs?x=1", &r), 301);
    char v[128];
    cr_assert_eq(resp_header(&r, "Location", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "/docs/?x=1");
    resp_free(&r);
    cr_assert_eq(get_status("/docs/page.css", &r), 200);
    resp_header(&r, "Content-Type", v, sizeof(v));
    cr_assert_str_eq(v, "text/css; charset=utf-8");
    resp_free(&r);
    cr_assert_eq(get_status("http://example.org/docs/page.css", &r), 200, "absolute-form");
    resp_free(&r);
}

/* A directory's index.html that is a symlink going up (and staying inside the root) serves the
 * directory, as it serves its own name: it was 404 for "/up/", being resolved beneath the
 * directory instead of beneath the root. */
Test(static_files, a_directory_index_that_links_up_inside_the_root)
{
    const char *paths[] = {"/up/index.html", "/up/"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_resp r;
        cr_assert_eq(get_status(paths[i], &r), 200, "%s", paths[i]);
        cr_assert_str_eq(r.body, "shared page\n", "%s", paths[i]);
        char v[128];
        cr_assert_eq(resp_header(&r, "Content-Type", v, sizeof(v)), 0);
        cr_assert_str_eq(v, "text/html; charset=utf-8");
        resp_free(&r);
    }
}

/* A file named with a trailing slash is not a directory: 404, as nginx (a 200 there made
 * browsers resolve the page's relative links under "/docs/page.css/"). */
Test(static_files, a_file_with_a_trailing_slash_is_not_found)
{
    const char *paths[] = {"/docs/page.css/", "/index.html/", "/inside/index.html/"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_resp r;
        cr_assert_eq(get_status(paths[i], &r), 404, "%s", paths[i]);
        resp_free(&r);
    }
}

static void check_pattern(const struct http_resp *r, size_t n)
{
    cr_assert_eq(r->body_len, n);
    for (size_t i = 0; i < n; i++)
        if (r->body[i] != (char)('a' + i % 26))
            cr_assert_fail("byte %zu differs", i);
}

Test(static_files, large_files_arrive_whole_and_keep_alive_continues)
{
    struct client *c = malloc(sizeof(*c));
    client_open(c, srv.port);
    send_str(c->fd,
             "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /mid.bin HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    size_t sizes[] = {3 * 1024 * 1024 + 17, 40000, 3 * 1024 * 1024 + 17};
    for (int i = 0; i < 3; i++) {
        struct http_resp r;
        cr_assert_eq(read_response(c, &r, 0), 0, "response %d", i);
        cr_assert_eq(r.status, 200);
        check_pattern(&r, sizes[i]);
        resp_free(&r);
    }
    client_close(c);
    free(c);
}

/* Small files are served from each worker's memory (static_cache.h) and read again once
 * --file-cache-ms has passed: a change on disk shows within that time, whichever worker answers. */
Test(static_files, a_changed_or_removed_file_is_noticed_within_the_cache_time)
{
    struct http_resp r;
    char etag[64], etag2[64];
    cr_assert_eq(get_status("/docs/page.css", &r), 200);
    cr_assert_str_eq(r.body, "body{}\n");
    cr_assert_eq(resp_header(&r, "ETag", etag, sizeof(etag)), 0);
    resp_free(&r);
    char path[600];
    snprintf(path, sizeof(path), "%s/docs", root);
    usleep(20000); /* a later modification time */
    write_file(path, "page.css", "body{color:red}\n", 0);
    usleep(1300 * 1000);          /* the default --file-cache-ms is 1000 */
    for (int i = 0; i < 4; i++) { /* whichever worker answers */
        cr_assert_eq(get_status("/docs/page.css", &r), 200);
        cr_assert_str_eq(r.body, "body{color:red}\n", "request %d", i);
        cr_assert_eq(resp_header(&r, "ETag", etag2, sizeof(etag2)), 0);
        cr_assert_str_neq(etag, etag2);
        resp_free(&r);
    }
    snprintf(path, sizeof(path), "%s/docs/page.css", root);
    cr_assert_eq(unlink(path), 0);
    usleep(1300 * 1000);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(get_status("/docs/page.css", &r), 404, "request %d", i);
        resp_free(&r);
    }
}

/* Sets a file's modification time (atime too) to t. 1 when the file system kept it as given (tmpfs
 * does; ext4 clamps to 2446), 0 when it clamped. */
static int set_mtime(const char *dir, const char *name, time_t t)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0, "%s: %m", path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return st.st_mtim.tv_sec == t;
}

static time_t parse_http_date(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cr_assert(end && !*end, "not an IMF-fixdate: %s", s);
    return timegm(&tm);
}

/* A file's mtime can be anything. One past year 9999 (2^62 made gmtime_r fail and the server
 * index days[] with garbage: SIGSEGV) gets no Last-Modified; one in the future gets the Date
 * instead (RFC 9110 8.8.2.1). tmpfs (/dev/shm) keeps such times; elsewhere they are clamped and
 * only the future case is checked. */
Test(static_files, an_mtime_out_of_range_or_in_the_future_is_not_stated)
{
    char *dir = strdup("/dev/shm/herald-mtime-XXXXXX");
    if (!mkdtemp(dir)) {
        free(dir);
        dir = make_temp_dir();
    }
    write_file(dir, "huge.txt", "huge\n", 0);
    write_file(dir, "y10000.txt", "y10000\n", 0);
    write_file(dir, "future.txt", "future\n", 0);
    int kept = set_mtime(dir, "huge.txt", (time_t)1 << 62);
    kept &= set_mtime(dir, "y10000.txt", 253402300800 + 86400); /* 10000-01-02 */
    set_mtime(dir, "future.txt", time(NULL) + 365 * 86400);
    struct herald_proc p;
    const char *args[] = {"--threads", "1", "--root", dir, NULL};
    herald_start(&p, args);
    const char *names[] = {"huge.txt", "y10000.txt", "future.txt"};
    for (int i = 0; i < 3; i++) {
        char req[256], v[128], date[128];
        snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n", names[i]);
        struct http_resp r;
        cr_assert_eq(http_once(p.port, req, &r), 0, "%s: no answer", names[i]);
        cr_assert_eq(r.status, 200, "%s", names[i]);
        cr_assert_eq(resp_header(&r, "Date", date, sizeof(date)), 0);
        int has_lm = resp_header(&r, "Last-Modified", v, sizeof(v)) == 0;
        if (i < 2 && kept)
            cr_assert(!has_lm, "%s: Last-Modified: %s", names[i], v);
        if (has_lm)
            cr_assert_leq(parse_http_date(v), parse_http_date(date), "%s: %s, Date %s", names[i], v,
                          date);
        if (i == 2)
            cr_assert(has_lm, "a future mtime is stated as the Date");
        resp_free(&r);
    }
    free(herald_stop(&p));
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
    if (!kept)
        cr_log_warn("no tmpfs at /dev/shm: years past 9999 were not tried");
}

struct renamer {
    const char *dir;
    atomic_int stop;
    long renames;
};

/* Renames a file back and forth in a directory of its own. Any rename on the system may make
 * openat2(RESOLVE_BENEATH) fail with EAGAIN while it resolves a "..". */
static void *rename_loop(void *arg)
{
    struct renamer *rn = arg;
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/a", rn->dir);
    snprintf(b, sizeof(b), "%s/b", rn->dir);
    while (!atomic_load(&rn->stop)) {
        if (rename(a, b) == 0 && rename(b, a) == 0)
            rn->renames += 2;
    }
    return NULL;
}

/* A symlink whose target climbs with ".." (and stays inside the root) is served even while files
 * are renamed elsewhere: the kernel asks for a retry (EAGAIN), which was answered 500. */
Test(static_files, a_symlink_with_dotdot_survives_renames_elsewhere)
{
    char *dir = make_temp_dir(), *busy = make_temp_dir();
    write_file(dir, "index.html", "top\n", 0);
    /* Deep, so that the walk to the ".."s takes long enough for renames to hit it often. */
    char path[600], target[64] = "";
    snprintf(path, sizeof(path), "%s", dir);
    for (int i = 0; i < 8; i++) {
        strcat(path, "/d");
        cr_assert_eq(mkdir(path, 0755), 0);
        strcat(target, "../");
    }
    strcat(path, "/up.html");
    strcat(target, "index.html");
    cr_assert_eq(symlink(target, path), 0);
    write_file(busy, "a", "x", 0);
    struct herald_proc p;
    const char *args[] = {"--threads", "1", "--root", dir, "--file-cache-ms", "0", NULL};
    herald_start(&p, args);
    struct renamer rn = {.dir = busy};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, rename_loop, &rn), 0);
    struct client *c = malloc(sizeof(*c));
    client_open(c, p.port);
    int n = under_sanitizer() ? 2000 : 5000, bad = 0, first_bad = 0;
    for (int i = 0; i < n; i++) {
        send_str(c->fd, "GET /d/d/d/d/d/d/d/d/up.html HTTP/1.1\r\nHost: t\r\n\r\n");
        struct http_resp r;
        cr_assert_eq(read_response(c, &r, 0), 0, "request %d", i);
        int st = r.status;
        resp_free(&r);
        if (st != 200 && bad++ == 0)
            first_bad = st;
        if (st != 200) { /* an error closes the connection */
            client_close(c);
            client_open(c, p.port);
        }
    }
    atomic_store(&rn.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    client_close(c);
    free(c);
    free(herald_stop(&p));
    cr_log_info("%d requests, %ld renames meanwhile", n, rn.renames);
    cr_assert_eq(bad, 0, "%d of %d requests failed, the first with %d", bad, n, first_bad);
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, busy);
    cr_assert_eq(system(cmd), 0);
    free(dir);
    free(busy);
}
