/*
 * static_files.h - opening files under the document root, safely.
 *
 * Every open goes through openat2(2) with RESOLVE_BENEATH relative to a directory descriptor of
 * the root, so no path, ".." or symlink (absolute or relative) can resolve outside the root; the
 * kernel enforces it, not string checks. Only regular files are served; FIFOs and devices are
 * opened non-blocking and refused.
 *
 * Thread safety: a static_root is opened before the workers start and only read afterwards.
 */
#ifndef HERALD_STATIC_FILES_H
#define HERALD_STATIC_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct static_root {
    int dirfd;
    char *path;  /* as resolved by realpath, for messages */
    uint64_t id; /* unique among the roots this process opened: names it in caches */
};

/* static_root_open - opens `path` as the root. Returns 0 or -errno (ENOTDIR, ENOENT, ENOSYS when
 * the kernel lacks openat2, ...). */
int static_root_open(struct static_root *root, const char *path);
/* static_root_close - releases the root. */
void static_root_close(struct static_root *root);

struct static_file {
    int fd; /* owned by the caller on success */
    uint64_t size;
    struct timespec mtime;
    const char *content_type; /* static string */
    char etag[48];            /* quoted strong entity tag */
};

/* Results of static_open besides 0. */
#define STATIC_REDIRECT 1 /* `rel` names a directory but the request path lacked the final '/' */

/*
 * static_open - opens the file for the normalised relative path `rel` (see path_normalize); when
 * `is_dir` or when rel names a directory reached with a trailing '/', its index.html.
 * Returns 0 (out filled, out->fd open), STATIC_REDIRECT, -404 (absent, not a regular file, or
 * outside the root), -403 (permission denied), -503 (a symlink's ".." kept racing renames
 * elsewhere on the system, each of a few attempts: worth a retry) or -500.
 */
int static_open(const struct static_root *root, const char *rel, int is_dir,
                struct static_file *out);

/* static_content_type - MIME type for a file name, by extension; application/octet-stream when
 * unknown. */
const char *static_content_type(const char *name);

/* http_date - formats t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into out (>= 30
 * bytes); returns the length (29), or 0 (out is then "") when t has no IMF-fixdate: its year is
 * outside 0..9999 or gmtime_r cannot convert it (a file's mtime can be anything). */
size_t http_date(time_t t, char *out);

/* http_date_parse - parses an HTTP-date in any of the three formats RFC 9110 5.6.7 says a
 * recipient MUST accept: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), rfc850-date
 * ("Sunday, 06-Nov-94 08:49:37 GMT", whose two-digit year is taken as at most 50 years ahead of
 * the current year) and asctime-date ("Sun Nov  6 08:49:37 1994"), names case-sensitive and
 * nothing around them. Returns 0 and sets *t, or -1 (another format, a field out of range, a year
 * before 1970). Reads the clock only for an rfc850-date. Any thread. */
int http_date_parse(const char *s, size_t len, time_t *t);

/* static_etag_matches - 1 if a list of entity tags (an If-None-Match or If-Match value) matches
 * the strong `etag`, else 0. "*" matches anything. `strong` 0: weak comparison, W/"x" matches
 * "x" (If-None-Match); 1: strong comparison, a weak tag matches nothing (If-Match, RFC 9110
 * 13.1.1). */
int static_etag_matches(const char *inm, size_t len, const char *etag, int strong);

#endif
