/* harness.c - see harness.h. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/io_uring.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int under_sanitizer(void)
{
    const char *san = getenv("HERALD_SANITIZER");
    return san && san[0];
}

int server_rss_meaningful(void)
{
    return !under_sanitizer();
}

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            s = realloc(s, cap *= 2);
    }
    s[len] = '\0';
    fclose(f);
    return s;
}

void herald_start(struct herald_proc *p, const char *const *args)
{
    const char *bin = getenv("HERALD_BIN");
    if (!bin)
        bin = "build/herald";
    strcpy(p->log_path, "/tmp/herald-test-XXXXXX");
    int logfd = mkstemp(p->log_path);
    cr_assert_geq(logfd, 0);
    const char *argv[64] = {bin, "--listen", "127.0.0.1:0"};
    int argc = 3;
    for (int i = 0; args && args[i] && argc < 62; i++)
        argv[argc++] = args[i];
    /* HERALD_EXTRA_ARGS (space-separated) runs a whole suite in another mode (the Makefile runs
     * some suites again with --ws-oneshot). */
    static char extra[256];
    snprintf(extra, sizeof(extra), "%s",
             getenv("HERALD_EXTRA_ARGS") ? getenv("HERALD_EXTRA_ARGS") : "");
    for (char *save = NULL, *tok = strtok_r(extra, " ", &save); tok && argc < 62;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        /* A test that fails before herald_stop must not leave its server running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(logfd, 2);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    /* Wait for "listening on http://127.0.0.1:PORT/". Sanitizer builds start slowly. */
    for (long long end = now_ms() + 20000; now_ms() < end; usleep(20000)) {
        char *log = slurp(p->log_path);
        char *at = strstr(log, "listening on http://127.0.0.1:");
        if (at) {
            p->port = atoi(at + strlen("listening on http://127.0.0.1:"));
            free(log);
            return;
        }
        free(log);
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid)
            cr_assert_fail("herald exited during start-up: %s", slurp(p->log_path));
    }
    kill(p->pid, SIGKILL);
    cr_assert_fail("herald did not start within 20 s");
}

char *herald_stop(struct herald_proc *p)
{
    return herald_stop_signal(p, SIGTERM);
}

char *herald_stop_signal(struct herald_proc *p, int sig)
{
    kill(p->pid, sig);
    int st = 0;
    pid_t r = 0;
    for (long long end = now_ms() + 20000; now_ms() < end; usleep(10000))
        if ((r = waitpid(p->pid, &st, WNOHANG)) == p->pid)
            break;
    if (r != p->pid) {
        /* Keep the evidence: every thread's stack, appended to the log. */
        char cmd[256];
        snprintf(cmd, sizeof(cmd),
                 "gdb -p %d -batch -ex 'thread apply all bt' >>%s 2>&1 </dev/null", p->pid,
                 p->log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(gdb could not attach)\n");
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
    }
    char *log = slurp(p->log_path);
    unlink(p->log_path);
    /* Failures abort rather than cr_assert: herald_stop also runs in suite teardowns, where a
     * failed assertion would not fail the test, and a sanitizer report must never pass. */
    const char *why = NULL;
    if (r != p->pid)
        why = "did not stop within 20 s of the signal";
    else if (!WIFEXITED(st))
        why = "died by a signal";
    else if (WEXITSTATUS(st) != 0)
        why = "exited with a non-zero status";
    else if (strstr(log, "Sanitizer") || strstr(log, "runtime error"))
        why = "reported a sanitizer finding";
    if (why) {
        fprintf(stderr, "herald %s (status 0x%x); its stderr:\n%s\n", why, st, log);
        abort();
    }
    return log;
}

int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %m");
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

void send_all(int fd, const void *s, size_t n)
{
    const char *p = s;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        cr_assert_gt(w, 0, "send: %m");
        p += w;
        n -= (size_t)w;
    }
}

void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

void client_open(struct client *c, int port)
{
    c->fd = tcp_connect(port);
    c->len = 0;
}

void client_close(struct client *c)
{
    close(c->fd);
}

/* Reads more bytes into c->buf; returns bytes read, 0 at EOF, -1 on error/timeout. */
static ssize_t fill(struct client *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t r;
    do /* a signal to the test process (seen under ASan) is not the end of the response */
        r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0)
        c->len += (size_t)r;
    return r;
}

static void take(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

int resp_header(const struct http_resp *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 0;
        }
    }
    return -1;
}

int read_response(struct client *c, struct http_resp *r, int head_only)
{
    memset(r, 0, sizeof(*r));
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (fill(c) <= 0)
            return -1;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    cr_assert_lt(head_len, sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    take(c, head_len);
    r->status = atoi(r->head + 9);
    char v[64];
    size_t want = 0;
    int no_body = head_only || r->status == 304 || r->status == 204 || r->status < 200;
    if (!no_body && resp_header(r, "Content-Length", v, sizeof(v)) == 0)
        want = strtoull(v, NULL, 10);
    r->body = malloc(want + 1);
    while (r->body_len < want) {
        if (c->len == 0 && fill(c) <= 0) {
            r->body[r->body_len] = '\0';
            return -1;
        }
        size_t n = want - r->body_len < c->len ? want - r->body_len : c->len;
        memcpy(r->body + r->body_len, c->buf, n);
        r->body_len += n;
        take(c, n);
    }
    r->body[r->body_len] = '\0';
    return 0;
}

void resp_free(struct http_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int http_once(int port, const char *req, struct http_resp *r)
{
    struct client *c = malloc(sizeof(*c));
    client_open(c, port);
    send_str(c->fd, req);
    int rc = read_response(c, r, strncmp(req, "HEAD ", 5) == 0);
    client_close(c);
    free(c);
    return rc;
}

ssize_t read_to_eof(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t len = 0;
    long long end = now_ms() + timeout_ms;
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        char tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 || len > 0 ? (ssize_t)len : -1;
        size_t n = (size_t)r < cap - len ? (size_t)r : cap - len;
        memcpy(buf + len, tmp, n);
        len += n;
    }
}

char *make_temp_dir(void)
{
    char *d = strdup("/tmp/herald-root-XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

void write_file(const char *dir, const char *name, const char *text, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %m", path);
    if (n == 0) {
        fputs(text, f);
    } else {
        for (size_t i = 0; i < n; i++)
            fputc('a' + (int)(i % 26), f);
    }
    fclose(f);
}

double metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

double scrape_metric(int port, const char *name)
{
    struct http_resp r;
    cr_assert_eq(http_once(port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    double v = metric_value(r.body, name);
    resp_free(&r);
    return v;
}

int kernel_has_io_uring(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int fd = (int)syscall(__NR_io_uring_setup, 2, &p);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

int extra_args_have(const char *opt)
{
    const char *extra = getenv("HERALD_EXTRA_ARGS");
    return extra && strstr(extra, opt) != NULL;
}

int server_batches_sends(void)
{
    return !extra_args_have("--no-uring") && kernel_has_io_uring();
}
