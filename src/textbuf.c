/* textbuf.c - a growable text buffer (see textbuf.h). */
#include "textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void textbuf_put(struct textbuf *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t ncap = (t->len + n + 1) * 2;
        char *np = realloc(t->p, ncap);
        if (!np) {
            t->failed = true;
            return;
        }
        t->p = np;
        t->cap = ncap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

void textbuf_puts(struct textbuf *t, const char *s)
{
    textbuf_put(t, s, strlen(s));
}

void textbuf_printf(struct textbuf *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        textbuf_put(t, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void textbuf_free(struct textbuf *t)
{
    free(t->p);
    *t = (struct textbuf){0};
}
