/*
 * path.h - turning a request path into a safe path relative to the document root.
 *
 * Pure string code, no I/O. The file layer still opens the result with RESOLVE_BENEATH, so even a
 * symlink inside the root cannot lead outside it; this module makes sure the text itself never
 * names anything outside the root or hidden.
 */
#ifndef HERALD_PATH_H
#define HERALD_PATH_H

#include <stddef.h>

/*
 * path_normalize - percent-decodes the absolute request path `in[0..len)` (no query), removes dot
 * segments (RFC 3986 5.2.4: "." vanishes, ".." removes the previous segment and never climbs above
 * the root) and empty segments, and writes the result without a leading '/' to `out`
 * (NUL-terminated; "" means the root itself). `*is_dir` is set when the path ends in '/' (or is
 * the root), so the caller can serve the directory's index.
 *
 * Returns the length written, or:
 *   -400  not starting with '/', a bad or NUL percent-escape, or an encoded '/' ("%2F"), which
 *         would let one segment pose as two
 *   -404  a segment starting with '.' after normalisation (dotfiles and dot-directories are not
 *         served)
 *   -414  the result does not fit in `cap` bytes (including the NUL)
 */
int path_normalize(const char *in, size_t len, char *out, size_t cap, int *is_dir);

#endif
