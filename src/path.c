/* path.c - request path normalisation (see path.h). */
#include "path.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one segment starting at in[*i] up to the next '/' or the end into out[o..]. Returns the
 * new output length or a negative status. */
static int decode_segment(const char *in, size_t len, size_t *i, char *out, size_t o, size_t cap)
{
    while (*i < len && in[*i] != '/') {
        char c = in[*i];
        if (c == '%') {
            int hi = *i + 2 < len ? hexval(in[*i + 1]) : -1;
            int lo = *i + 2 < len ? hexval(in[*i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -400;
            c = (char)(hi * 16 + lo);
            if (c == '\0' || c == '/')
                return -400;
            *i += 3;
        } else {
            (*i)++;
        }
        if (o + 1 >= cap)
            return -414;
        out[o++] = c;
    }
    return (int)o;
}

int path_normalize(const char *in, size_t len, char *out, size_t cap, int *is_dir)
{
    if (len == 0 || in[0] != '/' || cap == 0)
        return -400;
    size_t o = 0, i = 1;
    *is_dir = 1;
    while (i <= len) {
        size_t seg_start = o;
        int r = decode_segment(in, len, &i, out, o, cap);
        if (r < 0)
            return r;
        size_t seg_len = (size_t)r - seg_start;
        const char *seg = out + seg_start;
        int at_end = i >= len;
        i++; /* skip the '/' (or step past the end) */
        if (seg_len == 0 || (seg_len == 1 && seg[0] == '.')) {
            o = seg_start; /* empty or "." segment: drop it */
            *is_dir = 1;
        } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
            /* ".." drops the previous segment ("a/b/" becomes "a/"); at the root it stays. */
            o = seg_start;
            if (o > 0)
                o--; /* the '/' that ended the previous segment */
            while (o > 0 && out[o - 1] != '/')
                o--;
            *is_dir = 1;
        } else if (seg[0] == '.') {
            return -404;
        } else {
            o = (size_t)r;
            *is_dir = 0;
            if (!at_end) {
                if (o + 1 >= cap)
                    return -414;
                out[o++] = '/';
                *is_dir = 1;
            }
        }
        if (at_end)
            break;
    }
    /* A trailing '/' is reported through is_dir, not kept in the name. */
    if (o > 0 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return (int)o;
}
