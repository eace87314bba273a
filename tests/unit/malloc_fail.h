/*
 * malloc_fail.h - for unit tests linked with -Wl,--wrap=malloc,--wrap=calloc (see the Makefile):
 * every malloc (and calloc) of
 * exactly `fail_size` bytes fails while it is non-zero. Include it in one file of the test program.
 */
#ifndef HERALD_TEST_MALLOC_FAIL_H
#define HERALD_TEST_MALLOC_FAIL_H

#include <stddef.h>

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

static size_t fail_size; /* 0: nothing fails */

void *__wrap_malloc(size_t size)
{
    if (fail_size && size == fail_size)
        return NULL;
    return __real_malloc(size);
}

/* calloc(n, size) fails when n * size is fail_size. */
void *__wrap_calloc(size_t n, size_t size)
{
    if (fail_size && n * size == fail_size)
        return NULL;
    return __real_calloc(n, size);
}

#endif
