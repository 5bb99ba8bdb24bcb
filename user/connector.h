/* Outbound connections for captured traffic.  The proxy says where the
 * application wanted to go; a connector gets a connected socket there.
 * Direct is the only one so far; an upstream (SOCKS5, HTTP CONNECT) is
 * another implementation of the same two calls. */
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
struct connect_req *connector_start(struct daemon *d, const struct target *t,
				    int socktype, connect_cb cb, void *arg);
void connector_cancel(struct connect_req *r);

#endif
