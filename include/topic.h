/*
 * topic.h - topic names and subscription patterns: validation and matching.
 *
 * Pure string code. A topic name is 1..TOPIC_MAX_LEN bytes of dot-separated segments; each
 * segment is 1..64 of [A-Za-z0-9_-] plus ':' '@' '=' '+' '~' (no dots, no spaces, no wildcards),
 * and there are at most TOPIC_MAX_SEGMENTS of them. A pattern is a name whose segments may also be
 * "*" (exactly one segment) or, as the last segment only, ">" (one or more segments), as in NATS:
 * "chat.*" matches "chat.room1" but not "chat" or "chat.a.b"; "chat.>" matches "chat.a" and
 * "chat.a.b" but not "chat".
 */
#ifndef HERALD_TOPIC_H
#define HERALD_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_MAX_LEN      255
#define TOPIC_MAX_SEGMENTS 16
#define TOPIC_MAX_SEGMENT  64

/* topic_valid - 0 if s[0..len) is a valid topic name (no wildcards), else a static reason. */
const char *topic_check(const char *s, size_t len);

/* pattern_check - 0 if s[0..len) is a valid subscription pattern (wildcards allowed), else a
 * static reason. Sets *wild (may be NULL) when it contains a wildcard. */
const char *pattern_check(const char *s, size_t len, bool *wild);

/* pattern_match - 1 if the valid topic name matches the valid pattern, else 0. */
int pattern_match(const char *pattern, size_t plen, const char *topic, size_t tlen);

#endif
