/*
 * textbuf.h - a growable text buffer for replies whose size is known only once written (the HTTP
 * API's JSON, /metrics, a presence answer listing up to 1000 members).
 *
 * Errors are sticky: once an allocation fails, nothing more is written and `failed` stays set, so
 * a writer appends freely and checks once at the end. The text is kept NUL-terminated. Pure code;
 * a textbuf belongs to the thread that writes it.
 */
#ifndef HERALD_TEXTBUF_H
#define HERALD_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct textbuf {
    char *p; /* malloc'ed text (NUL-terminated), or NULL while empty */
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete */
};

/* textbuf_put - appends s[0..n). */
void textbuf_put(struct textbuf *t, const char *s, size_t n);
/* textbuf_puts - appends a NUL-terminated string. */
void textbuf_puts(struct textbuf *t, const char *s);
/* textbuf_printf - appends formatted text (at most 511 bytes per call). */
void textbuf_printf(struct textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* textbuf_free - frees the text; the buffer is empty again. */
void textbuf_free(struct textbuf *t);

#endif
