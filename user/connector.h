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
/* Through upstream u (NULL: direct), which must live until the request
 * ends (its caller holds the policy set u belongs to). */
struct connect_req *connector_start_via(struct daemon *d, const struct upstream *u,
					const struct target *t, int socktype,
					connect_cb cb, void *arg);
void connector_cancel(struct connect_req *r);

#endif
