/* Unit tests for topic names and wildcard patterns. */
#include <criterion/criterion.h>
#include <string.h>

#include "topic.h"

static bool name_ok(const char *s)
{
    return topic_check(s, strlen(s)) == NULL;
}

static bool pattern_ok(const char *s)
{
    return pattern_check(s, strlen(s), NULL) == NULL;
}

static int match(const char *p, const char *t)
{
    return pattern_match(p, strlen(p), t, strlen(t));
}

Test(topic, names)
{
    const char *good[] = {"chat",  "chat.room1", "a.b.c",  "user:42.inbox",
                          "x-y_z", "A.B",        "e=mc+2~"};
    const char *bad[] = {"",       ".",      "chat.",       ".chat", "a..b", "chat room",
                         "chat.*", "chat.>", "caf\xc3\xa9", "a/b",   "a\tb", "tab\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        cr_assert(name_ok(good[i]), "%s should be valid", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert(!name_ok(bad[i]), "'%s' should be invalid", bad[i]);
}

Test(topic, limits)
{
    char s[400];
    memset(s, 'a', 255);
    s[255] = '\0';
    cr_assert(!name_ok(s), "a 255-character single segment is over the segment limit");
    /* 255 characters in segments of 63: valid; 256: too long. */
    for (int i = 0; i < 255; i++)
        s[i] = (i % 64 == 63) ? '.' : 'a';
    s[255] = '\0';
    cr_assert(name_ok(s), "%s", topic_check(s, 255));
    s[255] = 'a';
    s[256] = '\0';
    cr_assert(!name_ok(s));
    strcpy(s, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p");
    cr_assert(name_ok(s), "16 segments");
    strcat(s, ".q");
    cr_assert(!name_ok(s), "17 segments");
}

Test(topic, patterns)
{
    const char *good[] = {"chat.*", "chat.>", "*", ">", "*.room", "a.*.c", "a.*.>"};
    const char *bad[] = {"chat.>.x", "a.**", "a.>>", "a*", "a.b*", "", "a..*"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        cr_assert(pattern_ok(good[i]), "%s should be valid", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert(!pattern_ok(bad[i]), "'%s' should be invalid", bad[i]);
    bool wild = true;
    cr_assert_null(pattern_check("chat.room", 9, &wild));
    cr_assert(!wild);
    cr_assert_null(pattern_check("chat.*", 6, &wild));
    cr_assert(wild);
}

Test(topic, matching_like_nats)
{
    cr_assert(match("chat.*", "chat.room1"));
    cr_assert(!match("chat.*", "chat"));
    cr_assert(!match("chat.*", "chat.a.b"));
    cr_assert(match("chat.>", "chat.a"));
    cr_assert(match("chat.>", "chat.a.b.c"));
    cr_assert(!match("chat.>", "chat"));
    cr_assert(!match("chat.>", "chatter.a"));
    cr_assert(match(">", "anything.at.all"));
    cr_assert(match("*", "one"));
    cr_assert(!match("*", "one.two"));
    cr_assert(match("*.b.*", "a.b.c"));
    cr_assert(!match("*.b.*", "a.c.c"));
    cr_assert(match("a.*.>", "a.x.y"));
    cr_assert(!match("a.*.>", "a.x"));
    cr_assert(match("chat.room", "chat.room"));
    cr_assert(!match("chat.room", "chat.room2"));
    cr_assert(!match("chat.room2", "chat.room"));
    cr_assert(!match("chat", "chat.room"));
}
