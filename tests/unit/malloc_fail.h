/*
 * malloc_fail.h - for unit tests linked with -Wl,--wrap=malloc (see the Makefile): every malloc of
 * exactly `fail_size` bytes fails while it is non-zero. Include it in one file of the test program.
 */
#ifndef HERALD_TEST_MALLOC_FAIL_H
#define HERALD_TEST_MALLOC_FAIL_H

#include <stddef.h>

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static size_t fail_size; /* 0: nothing fails */

void *__wrap_malloc(size_t size)
{
    if (fail_size && size == fail_size)
        return NULL;
    return __real_malloc(size);
}

#endif
