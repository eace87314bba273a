/* Unit tests for the growable text buffer. */
#include <criterion/criterion.h>
#include <string.h>

#include "textbuf.h"

Test(textbuf, grows_and_stays_terminated)
{
    struct textbuf t = {0};
    for (int i = 0; i < 1000; i++)
        textbuf_printf(&t, "%d,", i % 10);
    cr_assert_not(t.failed);
    cr_assert_eq(t.len, 2000);
    cr_assert_eq(strlen(t.p), 2000);
    cr_assert_eq(strncmp(t.p, "0,1,2,", 6), 0);
    textbuf_puts(&t, "end");
    cr_assert_str_eq(t.p + 2000, "end");
    textbuf_put(&t, "x\0y", 3); /* bytes, NUL included */
    cr_assert_eq(t.len, 2006);
    cr_assert_eq(memcmp(t.p + 2003, "x\0y", 3), 0);
    textbuf_free(&t);
    cr_assert_null(t.p);
    cr_assert_eq(t.len, 0);
}

Test(textbuf, printf_is_bounded_per_call)
{
    struct textbuf t = {0};
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    textbuf_printf(&t, "%s", big);
    cr_assert_eq(t.len, 511, "one call writes at most 511 bytes");
    textbuf_free(&t);
}

Test(textbuf, failure_is_sticky)
{
    struct textbuf t = {.failed = true};
    textbuf_puts(&t, "lost");
    cr_assert_null(t.p);
    cr_assert(t.failed);
}
