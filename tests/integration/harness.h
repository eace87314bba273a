/*
 * harness.h - starting the real herald binary on an ephemeral port and talking to it over TCP,
 * for the integration tests.
 *
 * The binary is $HERALD_BIN (the Makefile sets it). Its stderr goes to a temporary file that
 * herald_stop checks for sanitizer reports, so a test fails on any ASan/UBSan/TSan finding in the
 * server, not only on a wrong answer.
 */
#ifndef HERALD_TEST_HARNESS_H
#define HERALD_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct herald_proc {
    pid_t pid;
    int port;
    char log_path[64];
};

/* Starts herald with --listen 127.0.0.1:0 and the NULL-terminated extra arguments; waits for its
 * startup line. Fails the test on error. */
void herald_start(struct herald_proc *p, const char *const *args);

/* SIGTERM, wait (at most 20 s), and assert exit status 0 and a clean stderr. Returns the stderr
 * text (caller frees). */
char *herald_stop(struct herald_proc *p);

/* herald_stop with another signal (SIGINT). */
char *herald_stop_signal(struct herald_proc *p, int sig);

/* A connected blocking socket to 127.0.0.1:port with 10 s send/receive timeouts. */
int tcp_connect(int port);

/* Writes all of s. */
void send_all(int fd, const void *s, size_t n);
void send_str(int fd, const char *s);

struct http_resp {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char *body;      /* malloc'ed, NUL-terminated */
    size_t body_len;
};

/* A client connection with a read buffer, so pipelined responses can be read one by one. */
struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
};

void client_open(struct client *c, int port);
void client_close(struct client *c);

/* Reads one response (head, then Content-Length bytes unless `head_only` or the status has no
 * body). Returns 0, or -1 if the connection closed or timed out first. */
int read_response(struct client *c, struct http_resp *r, int head_only);
void resp_free(struct http_resp *r);

/* The value of header `name` (case-insensitive) in r->head, copied to out; 0 if found, -1 else. */
int resp_header(const struct http_resp *r, const char *name, char *out, size_t cap);

/* Sends `req` on a fresh connection and reads one response. */
int http_once(int port, const char *req, struct http_resp *r);

/* The value of the metric line "name value" (name may carry {labels}) in a /metrics text, or -1. */
double metric_value(const char *text, const char *name);
/* GET /metrics on port and the value of one metric; fails the test if the scrape fails. */
double scrape_metric(int port, const char *name);

/* Reads until EOF or timeout; returns bytes read, or -1 if the timeout came first. */
ssize_t read_to_eof(int fd, char *buf, size_t cap, int timeout_ms);

/* 1 when this kernel lets a process create an io_uring (as the server asks for one), else 0. */
int kernel_has_io_uring(void);

/* 1 when HERALD_EXTRA_ARGS (the mode a suite runs in, see herald_start) holds `opt`, else 0. */
int extra_args_have(const char *opt);

/* 1 when the server under test batches its WebSocket sends through io_uring: the kernel offers one
 * and the suite does not run with --no-uring. */
int server_batches_sends(void);

/* 0 when the server under test is a sanitizer build: ASan keeps freed memory in quarantine and
 * TSan maps shadow memory, so RSS says nothing about what the server holds there. */
int server_rss_meaningful(void);

/* 1 when the server under test is a sanitizer build (several times slower): the heaviest tests
 * then use smaller sizes, keeping every code path. */
int under_sanitizer(void);

/* Milliseconds on a monotonic clock. */
long long now_ms(void);

/* A fresh temporary directory (mkdtemp) with the given name prefix; caller frees the string. */
char *make_temp_dir(void);
/* Writes a file of `n` bytes (a repeating pattern) or the string `text` when n == 0. */
void write_file(const char *dir, const char *name, const char *text, size_t n);

#endif
