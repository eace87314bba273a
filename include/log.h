/*
 * log.h - one line per notable event, to stderr.
 *
 * Lines look like "2026-11-27T18:53:17Z warn  accept: Too many open files". Each line is formatted
 * into a local buffer and written with one write(2), so lines from different threads never
 * interleave. Callers never log client data verbatim (a request line, a header value): at most a
 * length or a status. The level is set once at start-up, before threads exist.
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* log_set_level - sets the most verbose level written. Call before starting threads. */
void log_set_level(enum log_level level);

/* log_level_parse - "error", "warn", "info" or "debug" to a level; -1 when unknown. */
int log_level_parse(const char *name);

/* log_enabled - 1 when a message at `level` would be written. Any thread. */
int log_enabled(enum log_level level);

/* log_msg - writes one line at `level` (printf format). Any thread. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
