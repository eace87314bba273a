/* err.c - text for Herald's error codes (see err.h). */
#include "err.h"

#include <string.h>

const char *herald_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case HERALD_ENEED:
        return "need more input";
    case HERALD_EBAD:
        return "malformed input";
    case HERALD_ELIMIT:
        return "limit exceeded";
    default:
        /* strerror is not required to be thread-safe; strerrordesc_np returns a static string. */
        return code < 0 ? strerrordesc_np(-code) : "unknown error";
    }
}
