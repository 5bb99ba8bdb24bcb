/* Outbound connections for captured traffic.  The proxy says where the
 * application wanted to go; a connector gets a connected socket there.
 * Direct, or through an upstream proxy (SOCKS5, HTTP CONNECT: upstream.h),
 * behind the same calls. */
#ifndef SPROXY_CONNECTOR_H
#define SPROXY_CONNECTOR_H
#include <stdint.h>
#include <sys/socket.h>

struct daemon;

struct target {
	struct sockaddr_storage addr;  /* the original destination */
	char host[256];                /* its name, when it was a fake address */
};

/* fd >= 0: connected, owned by the callee.  fd < 0: errmsg says why. */
typedef void (*connect_cb)(int fd, const char *errmsg, void *arg);

struct connect_req;
struct upstream;
/* The default route: the upstream named "default" when configured, else
 * direct. */
struct connect_req *connector_start(struct daemon *d, const struct target *t,
				    int socktype, connect_cb cb, void *arg);
/* Through upstream u (NULL: direct). */
struct connect_req *connector_start_via(struct daemon *d, const struct upstream *u,
					const struct target *t, int socktype,
					connect_cb cb, void *arg);
/* The connection log's via= for the default route (NULL: none). */
const char *connector_via(const struct daemon *d, int socktype);
void connector_cancel(struct connect_req *r);

#endif
