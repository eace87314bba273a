/*
 * uring_refuse.c - an LD_PRELOAD shim for the integration tests: every io_uring the process makes
 * is restricted to IORING_OP_NOP, as on a kernel without IORING_OP_SENDMSG (before 5.3) or in a
 * sandbox that restricts rings. io_uring_setup succeeds; every send in the ring then completes with
 * -EACCES. Herald makes its rings with syscall(2), which this wraps.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/io_uring.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>

long syscall(long nr, ...);

long syscall(long nr, ...)
{
    static long (*real)(long, ...);
    if (!real)
        real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr != __NR_io_uring_setup)
        return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    struct io_uring_params *p = (struct io_uring_params *)a[1];
    p->flags |= IORING_SETUP_R_DISABLED; /* restrictions can only be set on a disabled ring */
    long fd = real(nr, a[0], a[1]);
    if (fd < 0)
        return fd;
    struct io_uring_restriction r;
    memset(&r, 0, sizeof(r));
    r.opcode = IORING_RESTRICTION_SQE_OP;
    r.sqe_op = IORING_OP_NOP;
    real(__NR_io_uring_register, fd, IORING_REGISTER_RESTRICTIONS, &r, 1);
    real(__NR_io_uring_register, fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return fd;
}
