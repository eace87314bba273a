/* topic.c - topic name and pattern rules (see topic.h). */
#include "topic.h"

#include <string.h>

static bool segment_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == ':' || c == '@' || c == '=' || c == '+' || c == '~';
}

/* Checks one segment s[0..n); `allow_wild` and `last` say whether "*" and ">" may appear. */
static const char *check_segment(const char *s, size_t n, bool allow_wild, bool last, bool *wild)
{
    if (n == 0)
        return "empty segment (two dots, or a dot at an end)";
    if (n > TOPIC_MAX_SEGMENT)
        return "segment longer than 64 characters";
    if (n == 1 && (s[0] == '*' || s[0] == '>')) {
        if (!allow_wild)
            return "wildcards are only allowed in subscriptions";
        if (s[0] == '>' && !last)
            return "'>' must be the last segment";
        if (wild)
            *wild = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!segment_char(s[i]))
            return "characters allowed: letters, digits and _ - : @ = + ~, segments separated by .";
    return NULL;
}

static const char *check(const char *s, size_t len, bool allow_wild, bool *wild)
{
    if (wild)
        *wild = false;
    if (len == 0)
        return "empty topic";
    if (len > TOPIC_MAX_LEN)
        return "topic longer than 255 characters";
    size_t start = 0, segments = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (++segments > TOPIC_MAX_SEGMENTS)
            return "more than 16 segments";
        const char *why = check_segment(s + start, i - start, allow_wild, i == len, wild);
        if (why)
            return why;
        start = i + 1;
    }
    return NULL;
}

const char *topic_check(const char *s, size_t len)
{
    return check(s, len, false, NULL);
}

const char *pattern_check(const char *s, size_t len, bool *wild)
{
    return check(s, len, true, wild);
}

/* Length of the segment starting at s[0..len). */
static size_t seg_len(const char *s, size_t len)
{
    const char *dot = memchr(s, '.', len);
    return dot ? (size_t)(dot - s) : len;
}

int pattern_match(const char *p, size_t plen, const char *t, size_t tlen)
{
    for (;;) {
        size_t pn = seg_len(p, plen), tn = seg_len(t, tlen);
        if (pn == 1 && p[0] == '>')
            return tlen > 0; /* one or more remaining segments */
        if (tlen == 0)
            return 0;
        if (!(pn == 1 && p[0] == '*') && (pn != tn || memcmp(p, t, pn) != 0))
            return 0;
        bool p_end = pn == plen, t_end = tn == tlen;
        if (p_end || t_end)
            return p_end && t_end;
        p += pn + 1;
        plen -= pn + 1;
        t += tn + 1;
        tlen -= tn + 1;
    }
}
