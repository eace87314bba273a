/* static_files.c - document root, openat2 beneath it, content types, dates, entity tags. */
#include "static_files.h"

#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"

/* Attempts of an open that the kernel keeps asking to retry (EAGAIN) before giving up. A walk
 * preempted while renames go on loses every attempt made meanwhile: with two CPUs shared by the
 * server, two threads renaming nonstop and another test, 8 attempts still lost about one request
 * in 10,000 (503); 32 lost none in 40 runs of 5,000. A failed attempt costs one system call. */
#define OPEN_ATTEMPTS 32

static int openat2_beneath(int dirfd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    /* With RESOLVE_BENEATH, a ".." (in a symlink's target: the request path has none left) fails
     * with EAGAIN when any rename on the system races with the lookup, since the kernel cannot
     * then prove the path stayed beneath; openat2(2) says to retry. Under a storm of renames
     * every attempt may lose: then EAGAIN is returned (503). */
    long fd = -1;
    for (int i = 0; i < OPEN_ATTEMPTS; i++) {
        /* glibc 2.36 has no wrapper for openat2. */
        fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
        if (fd >= 0 || errno != EAGAIN)
            break;
    }
    return fd < 0 ? -errno : (int)fd;
}

int static_root_open(struct static_root *root, const char *path)
{
    static atomic_uint_fast64_t next_id;
    root->id = atomic_fetch_add(&next_id, 1) + 1;
    root->dirfd = -1;
    root->path = realpath(path, NULL);
    if (!root->path)
        return -errno;
    root->dirfd = open(root->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root->dirfd < 0) {
        int e = -errno;
        static_root_close(root);
        return e;
    }
    /* Probe openat2 now so a kernel without it is reported at start-up, not per request. */
    int fd = openat2_beneath(root->dirfd, ".", O_PATH);
    if (fd < 0) {
        static_root_close(root);
        return fd;
    }
    close(fd);
    return 0;
}

void static_root_close(struct static_root *root)
{
    if (root->dirfd >= 0)
        close(root->dirfd);
    free(root->path);
    root->dirfd = -1;
    root->path = NULL;
}

static int errno_status(int e)
{
    switch (e) {
    case -EACCES:
    case -EPERM:
        return -403;
    case -ENOENT:
    case -ENOTDIR:
    case -EXDEV: /* RESOLVE_BENEATH: the path would have left the root */
    case -ELOOP:
    case -ENAMETOOLONG:
    case -ENXIO:
        return -404;
    case -EAGAIN: /* renames elsewhere kept racing a ".." (openat2_beneath): try again later */
        return -503;
    default:
        return -500;
    }
}

static void fill_file(struct static_file *out, int fd, const struct stat *st, const char *name)
{
    out->fd = fd;
    out->size = (uint64_t)st->st_size;
    out->mtime = st->st_mtim;
    out->content_type = static_content_type(name);
    snprintf(out->etag, sizeof(out->etag), "\"%llx-%llx\"", (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st->st_mtim.tv_nsec);
}

int static_open(const struct static_root *root, const char *rel, int is_dir,
                struct static_file *out)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = openat2_beneath(root->dirfd, rel[0] ? rel : ".", O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return errno_status(fd);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -500;
    }
    if (S_ISDIR(st.st_mode)) {
        if (!is_dir) {
            close(fd);
            return STATIC_REDIRECT;
        }
        close(fd);
        /* Opened beneath the root, not beneath the directory: an index.html that links up to a
         * page elsewhere in the root ("../shared/page.html") is served, as it is under its own
         * name. A directory swapped for a link meanwhile still cannot lead outside. */
        char index[PATH_MAX + sizeof("/index.html")];
        int n = snprintf(index, sizeof(index), "%s%sindex.html", rel, rel[0] ? "/" : "");
        if (n < 0 || (size_t)n >= sizeof(index))
            return -404;
        fd = openat2_beneath(root->dirfd, index, O_RDONLY | O_NONBLOCK);
        if (fd < 0)
            return errno_status(fd);
        rel = "index.html";
        if (fstat(fd, &st) < 0) {
            close(fd);
            return -500;
        }
    } else if (is_dir) {
        /* "/a.html/" names a directory: a file there is 404 (open(2) says ENOTDIR), or a
         * browser would resolve the page's relative links under it. */
        close(fd);
        return -404;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -404;
    }
    fill_file(out, fd, &st, rel);
    return 0;
}

struct mime {
    const char *ext;
    const char *type;
};

static const struct mime mimes[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"pdf", "application/pdf"},
    /* MPEG transport stream (HLS segments), as nginx maps it: TypeScript is not served to
     * browsers, which would not run it. */
    {"ts", "video/mp2t"},
};

const char *static_content_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(mimes) / sizeof(mimes[0]); i++)
            if (strcasecmp(dot + 1, mimes[i].ext) == 0)
                return mimes[i].type;
    return "application/octet-stream";
}

static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_long_names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                              "Thursday", "Friday", "Saturday"};
static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

size_t http_date(time_t t, char *out)
{
    struct tm tm;
    /* gmtime_r fails when the year overflows an int (an mtime of 2^62 does), and leaves tm
     * unset: its fields would then index the day and month names out of bounds. A year past 9999
     * does not fit the four digits of an IMF-fixdate, and snprintf would cut the header. */
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", day_names[tm.tm_wday],
                            tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                            tm.tm_min, tm.tm_sec);
}

/* A cursor over a date being parsed. Each scan_ step consumes what it matched, or fails. */
struct scan {
    const char *p, *end;
};

static bool scan_lit(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* Exactly n digits (no sign, no space). */
static bool scan_num(struct scan *s, int n, int *v)
{
    if (s->end - s->p < n)
        return false;
    *v = 0;
    for (int i = 0; i < n; i++, s->p++) {
        if (*s->p < '0' || *s->p > '9')
            return false;
        *v = *v * 10 + (*s->p - '0');
    }
    return true;
}

/* One of `count` names, matched case-sensitively (RFC 9110 5.6.7); its index, or -1. */
static int scan_name(struct scan *s, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (scan_lit(s, names[i]))
            return i;
    return -1;
}

/* "HH:MM:SS" into tm. */
static bool scan_time(struct scan *s, struct tm *tm)
{
    return scan_num(s, 2, &tm->tm_hour) && scan_lit(s, ":") && scan_num(s, 2, &tm->tm_min) &&
           scan_lit(s, ":") && scan_num(s, 2, &tm->tm_sec);
}

/* IMF-fixdate after its day name: ", 06 Nov 1994 08:49:37 GMT". */
static bool scan_imf_fixdate(struct scan *s, struct tm *tm)
{
    return scan_lit(s, ", ") && scan_num(s, 2, &tm->tm_mday) && scan_lit(s, " ") &&
           (tm->tm_mon = scan_name(s, month_names, 12)) >= 0 && scan_lit(s, " ") &&
           scan_num(s, 4, &tm->tm_year) && scan_lit(s, " ") && scan_time(s, tm) &&
           scan_lit(s, " GMT");
}

/* asctime-date after its day name: " Nov  6 08:49:37 1994" (or " Nov 06 ..."). */
static bool scan_asctime(struct scan *s, struct tm *tm)
{
    if (!scan_lit(s, " ") || (tm->tm_mon = scan_name(s, month_names, 12)) < 0 || !scan_lit(s, " "))
        return false;
    bool day = scan_lit(s, " ") ? scan_num(s, 1, &tm->tm_mday) : scan_num(s, 2, &tm->tm_mday);
    return day && scan_lit(s, " ") && scan_time(s, tm) && scan_lit(s, " ") &&
           scan_num(s, 4, &tm->tm_year);
}

/* rfc850-date after its day name: ", 06-Nov-94 08:49:37 GMT". RFC 9110 5.6.7: a two-digit year
 * that would be more than 50 years in the future is the most recent past year with those
 * digits. */
static bool scan_rfc850(struct scan *s, struct tm *tm)
{
    int yy;
    if (!(scan_lit(s, ", ") && scan_num(s, 2, &tm->tm_mday) && scan_lit(s, "-") &&
          (tm->tm_mon = scan_name(s, month_names, 12)) >= 0 && scan_lit(s, "-") &&
          scan_num(s, 2, &yy) && scan_lit(s, " ") && scan_time(s, tm) && scan_lit(s, " GMT")))
        return false;
    time_t now = time(NULL);
    struct tm today;
    if (!gmtime_r(&now, &today))
        return false;
    int this_year = today.tm_year + 1900;
    tm->tm_year = this_year - this_year % 100 + yy;
    if (tm->tm_year > this_year + 50)
        tm->tm_year -= 100;
    return true;
}

int http_date_parse(const char *s, size_t len, time_t *t)
{
    struct scan sc = {s, s + len};
    struct tm tm = {0};
    bool ok;
    /* The day name tells the three formats apart: "Sun," "Sun " or "Sunday,". */
    if (scan_name(&sc, day_long_names, 7) >= 0)
        ok = scan_rfc850(&sc, &tm);
    else if (scan_name(&sc, day_names, 7) >= 0)
        ok = sc.p < sc.end && *sc.p == ',' ? scan_imf_fixdate(&sc, &tm) : scan_asctime(&sc, &tm);
    else
        ok = false;
    if (!ok || sc.p != sc.end || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -1;
    tm.tm_year -= 1900;
    *t = timegm(&tm);
    return *t == (time_t)-1 ? -1 : 0;
}

int static_etag_matches(const char *inm, size_t len, const char *etag, int strong)
{
    size_t elen = strlen(etag);
    size_t i = 0;
    while (i < len) {
        while (i < len && (inm[i] == ' ' || inm[i] == '\t' || inm[i] == ','))
            i++;
        if (i < len && inm[i] == '*')
            return 1;
        bool weak = i + 1 < len && inm[i] == 'W' && inm[i + 1] == '/';
        if (weak)
            i += 2; /* weak comparison: W/"x" matches "x"; strong: nothing weak matches */
        size_t start = i;
        if (i < len && inm[i] == '"') {
            i++;
            while (i < len && inm[i] != '"')
                i++;
            if (i < len)
                i++;
        } else {
            while (i < len && inm[i] != ',')
                i++;
        }
        if (!(weak && strong) && i - start == elen && memcmp(inm + start, etag, elen) == 0)
            return 1;
    }
    return 0;
}
