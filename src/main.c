/* main.c - flags, signals, and the server's lifetime. */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "server.h"

/* SIGINT and SIGTERM stop the server through its signalfd (server.h). They are blocked first
 * thing, so one that comes during start-up waits for the signalfd instead of killing a half-made
 * server (SIGTERM) or being lost (SIGINT, which a shell starting us in the background leaves
 * ignored), and given their default disposition: Linux queues a blocked signal even when it is
 * ignored, POSIX leaves that open. */
static void hold_stop_signals(sigset_t *stop)
{
    sigemptyset(stop);
    sigaddset(stop, SIGINT);
    sigaddset(stop, SIGTERM);
    sigprocmask(SIG_BLOCK, stop, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The stop signals go to the server's signalfd; SIGPIPE is ignored: writes use MSG_NOSIGNAL, but
 * sendfile cannot, and a vanished client must not kill us. */
static int install_signals(struct server *srv, const sigset_t *stop)
{
    int rc = server_stop_on_signals(srv, stop);
    if (rc < 0)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGPIPE, &sa, NULL) < 0 ? -errno : 0;
}

/* Every connection is a descriptor: use all the process may have (the soft limit is often 1024
 * while the hard one is far higher), as nginx's worker_rlimit_nofile would. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_msg(LOG_WARN, "cannot raise the descriptor limit: %s", herald_strerror(-errno));
    }
}

static void print_startup(const struct herald_config *cfg, struct server *srv)
{
    const char *host = cfg->listen_host;
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "herald %s listening on http://%s%s%s:%d/ (%d worker threads, root %s)\n",
            HERALD_VERSION, v6 ? "[" : "", host, v6 ? "]" : "", server_port(srv),
            server_threads(srv), cfg->root);
    fflush(stderr);
}

int main(int argc, char **argv)
{
    sigset_t stop;
    hold_stop_signals(&stop);
    struct herald_config cfg;
    config_defaults(&cfg);
    int rc = config_parse_args(&cfg, argc, argv, stdout, stderr);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_set_level((enum log_level)cfg.log_level);
    raise_fd_limit();

    struct server *srv;
    rc = server_new(&srv, &cfg);
    if (rc < 0)
        return 1;
    rc = install_signals(srv, &stop);
    if (rc < 0) {
        log_msg(LOG_ERROR, "signals: %s", herald_strerror(rc));
        server_free(srv);
        return 1;
    }
    print_startup(&cfg, srv);
    rc = server_run(srv);
    log_msg(LOG_INFO, "stopped");
    server_free(srv);
    return rc < 0 ? 1 : 0;
}
