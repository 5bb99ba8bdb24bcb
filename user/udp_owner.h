/* Who may make a UDP flow: the application socket its pool port was
 * handed to.  Any process of the namespace can write to 127.0.0.1:<port>,
 * and a datagram of a socket that just closed may still wait in a pool
 * socket when its port has gone to another flow. */
#ifndef SPROXY_UDP_OWNER_H
#define SPROXY_UDP_OWNER_H
#include <sys/socket.h>

struct sproxy_flow;

/* 1: the datagram from `from` to the pool endpoint `pool` comes from the
 * flow's socket; 0: not, with *diag_err set (negative errno) when the
 * kernel could not be asked. */
int udp_owner_is(const struct sockaddr *from, const struct sockaddr *pool,
		 const struct sproxy_flow *rec, int *diag_err);

/* 0 when sock_diag names a socket's owner right: asked about `fd`, bound
 * to `local`, it must answer with fd's cookie.  A negative errno if not. */
int udp_owner_probe(int fd, const struct sockaddr *local);

#endif
