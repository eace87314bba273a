/* Unit tests for static_files' pure helpers: HTTP dates, content types. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static time_t parsed(const char *s)
{
    time_t t = 0;
    cr_assert_eq(http_date_parse(s, strlen(s), &t), 0, "refused: \"%s\"", s);
    return t;
}

/* RFC 9110 5.6.7: a recipient MUST accept all three formats; the RFC's own examples. */
Test(http_date_parse, accepts_the_three_formats)
{
    cr_assert_eq(parsed("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    cr_assert_eq(parsed("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    cr_assert_eq(parsed("Sun Nov  6 08:49:37 1994"), 784111777);
    cr_assert_eq(parsed("Sun Nov 06 08:49:37 1994"), 784111777);
    cr_assert_eq(parsed("Wed, 31 Dec 2025 23:59:59 GMT"), 1767225599);
    cr_assert_eq(parsed("Wednesday, 31-Dec-25 23:59:59 GMT"), 1767225599);
    cr_assert_eq(parsed("Wed Dec 31 23:59:59 2025"), 1767225599);
}

/* A two-digit year more than 50 years ahead is the latest past year with those digits. */
Test(http_date_parse, rfc850_two_digit_years_pivot_at_50_years_ahead)
{
    time_t now = time(NULL);
    struct tm today;
    gmtime_r(&now, &today);
    int year = today.tm_year + 1900;
    char s[64];
    struct tm tm;
    for (int ahead = -49; ahead <= 50; ahead += 11) {
        int want = year + ahead;
        snprintf(s, sizeof(s), "Monday, 01-Jan-%02d 00:00:00 GMT", want % 100);
        time_t t = parsed(s);
        gmtime_r(&t, &tm);
        cr_assert_eq(tm.tm_year + 1900, want, "%s", s);
    }
    snprintf(s, sizeof(s), "Monday, 01-Jan-%02d 00:00:00 GMT", (year + 51) % 100);
    time_t t = parsed(s);
    gmtime_r(&t, &tm);
    cr_assert_eq(tm.tm_year + 1900, year + 51 - 100, "%s", s);
}

Test(http_date_parse, refuses_what_is_no_http_date)
{
    const char *bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",        /* no GMT */
        "Sun, 06 Nov 1994 08:49:37 GMT ",   /* trailing space */
        "Sun, 6 Nov 1994 08:49:37 GMT",     /* one-digit day */
        "Sun, 06 nov 1994 08:49:37 GMT",    /* names are case-sensitive */
        "Sun, 06 Nov 94 08:49:37 GMT",      /* two-digit year in an IMF-fixdate */
        "Sun, 06 Nov 1994 24:00:00 GMT",    /* hour */
        "Sun, 06 Nov 1994 08:60:00 GMT",    /* minute */
        "Sun, 00 Nov 1994 08:49:37 GMT",    /* day */
        "Sun, 32 Nov 1994 08:49:37 GMT",    /* day */
        "Sun, +6 Nov 1994 08:49:37 GMT",    /* a sign */
        "Xyz, 06 Nov 1994 08:49:37 GMT",    /* day name */
        "Sun, 06 Nov 1969 08:49:37 GMT",    /* before 1970 */
        "Sunday, 06-Nov-1994 08:49:37 GMT", /* four-digit year in an rfc850-date */
        "Sunday, 06 Nov 1994 08:49:37 GMT", /* long name, IMF layout */
        "Sun, 06-Nov-94 08:49:37 GMT",      /* short name, rfc850 layout */
        "Sun Nov  6 08:49:37 1994 GMT",     /* asctime has no zone */
        "Sun Nov 6 08:49:37 1994",          /* asctime's one-digit day is space-padded */
        "Sun Nov   6 08:49:37 1994",
        "1994-11-06T08:49:37Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        time_t t;
        cr_assert_eq(http_date_parse(bad[i], strlen(bad[i]), &t), -1, "took \"%s\"", bad[i]);
    }
}

/* The value is a span of the request's buffer, not a string: nothing after len is read. */
Test(http_date_parse, reads_only_len_bytes)
{
    const char *s = "Sun, 06 Nov 1994 08:49:37 GMTxyz";
    time_t t;
    cr_assert_eq(http_date_parse(s, 29, &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(http_date_parse(s, 28, &t), -1);
}

Test(static_content_type, by_extension)
{
    cr_assert_str_eq(static_content_type("a/index.html"), "text/html; charset=utf-8");
    cr_assert_str_eq(static_content_type("app.JS"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(static_content_type("noext"), "application/octet-stream");
    cr_assert_str_eq(static_content_type("a.b/noext"), "application/octet-stream");
    /* An HLS segment, as nginx types it; it was text/javascript (TypeScript). */
    cr_assert_str_eq(static_content_type("live/seg001.ts"), "video/mp2t");
}

Test(static_etag_matches, weak_for_if_none_match_strong_for_if_match)
{
    const char *etag = "\"a-1\"";
    const char *list = "\"x\", W/\"a-1\"";
    cr_assert_eq(static_etag_matches(list, strlen(list), etag, 0), 1);
    cr_assert_eq(static_etag_matches(list, strlen(list), etag, 1), 0,
                 "a weak tag, compared strongly");
    const char *plain = "\"x\",\"a-1\"";
    cr_assert_eq(static_etag_matches(plain, strlen(plain), etag, 1), 1);
    cr_assert_eq(static_etag_matches("*", 1, etag, 1), 1);
    cr_assert_eq(static_etag_matches("\"a-2\"", 5, etag, 0), 0);
}
