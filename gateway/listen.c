/* The client port of a worker (role.share_port): the node's own listening
 * socket with SO_REUSEPORT, so that every worker of a node binds the same
 * port and the kernel spreads new connections over them. lws 4.1 sets
 * SO_REUSEPORT (LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE) only when it runs
 * several service threads, so the vhost is created without a listener
 * (CONTEXT_PORT_NO_LISTEN_SERVER) and each accepted socket is handed to it
 * with lws_adopt_socket_vhost(), TLS included, as its listener would.
 * SPDX-License-Identifier: MIT */
/* SO_REUSEPORT (Linux) is not in strict POSIX. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>

#include "common/log.h"
#include "gateway/node_internal.h"

/* Accepts per wakeup: bounded work per callback (STYLE rule 6). */
#define ACCEPTS_PER_WAKEUP 64
#define BACKLOG 4096

static void on_listen_readable(uv_poll_t *p, int status, int events)
{
    rc_node_t *n = p->data;
    (void)events;

    if (status < 0 || n->stopping)
        return;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept(n->listen_fd, (struct sockaddr *)&ss, &sl);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                rc_log(RC_LOG_WARN, "accept_failed", "err=\"%s\"",
                       strerror(errno));
            return;
        }
        if (!rc_srclimit_admit(&n->srclimit, fd, (struct sockaddr *)&ss,
                               uv_now(n->loop))) {
            close(fd);
            rc__ws_refused_at_accept(n);
            continue;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        /* On failure lws has closed fd (and WSI_DESTROY, if a wsi was
         * made, released it from srclimit; a stale entry goes when fd is
         * reused or after hold_ms). */
        if (!lws_adopt_socket_vhost(n->vhost, fd))
            n->metrics.upgrades_refused++;
    }
}

rc_err_t rc__listen_start(rc_node_t *n, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1, fd;
    const char *host = n->cfg->listen_host;
    int port = n->cfg->listen_port;

    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0)
        sl = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0)
        sl = sizeof(struct sockaddr_in6);
    else {
        snprintf(err, errlen, "listen: bad address %s", host);
        return RC_EINVAL;
    }
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        goto fail;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, BACKLOG) != 0)
        goto fail;
    n->listen_fd = fd;
    if (uv_poll_init(n->loop, &n->listen_poll, fd) != 0)
        goto fail;
    n->listen_poll.data = n;
    n->listen_open = 1;
    uv_poll_start(&n->listen_poll, UV_READABLE, on_listen_readable);
    return RC_OK;
fail:
    snprintf(err, errlen, "listen: cannot serve on %s:%d (%s)", host, port,
             strerror(errno));
    if (fd >= 0)
        close(fd);
    n->listen_fd = -1;
    return RC_EIO;
}

static void on_poll_closed(uv_handle_t *h)
{
    rc_node_t *n = h->data;

    close(n->listen_fd);
    n->listen_fd = -1;
    n->listen_open = 0;
}

void rc__listen_stop(rc_node_t *n)
{
    if (n->listen_open && !uv_is_closing((uv_handle_t *)&n->listen_poll))
        uv_close((uv_handle_t *)&n->listen_poll, on_poll_closed);
}
