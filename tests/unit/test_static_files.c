/* Unit tests for static_files' pure helpers: HTTP dates. */
#include <criterion/criterion.h>
#include <string.h>

#include "static_files.h"

Test(http_date, formats_an_imf_fixdate)
{
    char out[32];
    cr_assert_eq(http_date(784111777, out), 29);
    cr_assert_str_eq(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_assert_eq(http_date(0, out), 29);
    cr_assert_str_eq(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    cr_assert_eq(http_date(253402300799, out), 29); /* the last second of 9999 */
    cr_assert_str_eq(out, "Fri, 31 Dec 9999 23:59:59 GMT");
}

/* A file's mtime can be any 64-bit value: 2^62 made gmtime_r fail and left its struct tm unset,
 * which then indexed the day and month names out of bounds (the server crashed). */
Test(http_date, refuses_years_an_imf_fixdate_cannot_hold)
{
    char out[32];
    const time_t bad[] = {253402300800 /* 10000-01-01 */, (time_t)1 << 62, -((time_t)1 << 62),
                          -62167219201 /* the last second of the year -1 */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(out, 'x', sizeof(out));
        cr_assert_eq(http_date(bad[i], out), 0, "%lld", (long long)bad[i]);
        cr_assert_str_eq(out, "");
    }
    cr_assert_eq(http_date(-62167219200, out), 29); /* 0000-01-01 */
    cr_assert_str_eq(out, "Sat, 01 Jan 0000 00:00:00 GMT");
}
