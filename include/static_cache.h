/*
 * static_cache.h - the small static files a worker served lately, kept in its memory.
 *
 * Serving a file from disk takes four system calls besides the request's own read and write
 * (openat2, fstat, pread, close): with them a 1 KiB file cost 1.4-1.6 times the server CPU per
 * request that it costs from memory (README: Design). A browser page asks for the same few small
 * files (Herald's own client and demo) again and again, so each worker keeps the ones it served, up
 * to STATIC_CACHE_FILE_MAX bytes each, and serves them without a system call for `ttl_ms` after it
 * read them; then the next request opens and reads the file again. A file changed, removed or
 * made unreadable on disk is therefore noticed within ttl_ms (the --file-cache-ms option), like
 * nginx's open_file_cache_valid. Only what static_open opened is kept, so
 * the root's protections (openat2 beneath it, regular files only) hold for every byte served.
 *
 * Bounded: at most STATIC_CACHE_ENTRIES files and STATIC_CACHE_BYTES of them per thread, the
 * least recently used one leaving first. Errors (404, 403, redirects) are never kept.
 *
 * Each worker keeps its own copies: within ttl_ms of a change, one worker may answer with the new
 * file and another with the old one (and its old ETag). A request on a miss reads the whole small
 * file to keep it, even a HEAD or one answered 304.
 *
 * Thread safety: each thread has its own cache, made at its first use; nothing is shared. A
 * thread that used it calls static_cache_thread_free before it ends.
 */
#ifndef HERALD_STATIC_CACHE_H
#define HERALD_STATIC_CACHE_H

#include "static_files.h"

#define STATIC_CACHE_FILE_MAX (32 * 1024)   /* larger files are always read from disk */
#define STATIC_CACHE_ENTRIES  64            /* files kept per thread */
#define STATIC_CACHE_BYTES    (1024 * 1024) /* their bytes together, per thread */

/*
 * static_cache_open - static_open through the calling thread's cache, for a root whose
 * entries stay valid `ttl_ms` after they were read (0: no cache, every call is static_open).
 * Returns what static_open returns, plus -EIO when a file to be kept could not be read whole.
 * On 0, either *body is not NULL: the file's out->size bytes, valid until this thread's next
 * static_cache call, and out->fd is -1 (nothing to close); or *body is NULL and out->fd is open
 * and the caller's, as after static_open (a file too large to keep, or no memory to keep it).
 */
int static_cache_open(const struct static_root *root, unsigned ttl_ms, const char *rel, int is_dir,
                      struct static_file *out, const char **body);

/* static_cache_thread_free - frees the calling thread's cache (if it has one). */
void static_cache_thread_free(void);

#endif
