/*
 * err.h - error codes shared by every Herald module.
 *
 * Functions return 0 (or a count) on success and a negative code on failure: either -errno from a
 * system call or allocation (e.g. -ENOMEM), or one of the HERALD_E* codes below, which are chosen
 * far outside the errno range so the two never collide.
 */
#ifndef HERALD_ERR_H
#define HERALD_ERR_H

#include <errno.h>

#define HERALD_ENEED  (-10001) /* a parser needs more input before it can decide */
#define HERALD_EBAD   (-10002) /* the input is malformed */
#define HERALD_ELIMIT (-10003) /* a configured limit would be exceeded */

/* herald_strerror - a static, human-readable description of any code above or any -errno. */
const char *herald_strerror(int code);

#endif
