/* UDP behind TPROXY.  One transparent socket takes every datagram the
 * rules send to the port and learns each one's original destination from
 * IP_ORIGDSTADDR / IPV6_ORIGDSTADDR.  A flow is one (client, destination)
 * pair; it answers from a socket bound, transparently, to that destination
 * and connected to the client, so the client sees the real peer, and one
 * client socket talking to several peers gets each reply from the right
 * one.  Port 53 goes to the built-in DNS server, the rest through a
 * connector.  Flows end when idle (--udp-timeout). */
#ifndef SPROXY_TPROXYUDP_H
#define SPROXY_TPROXYUDP_H
#include <stddef.h>
#include <sys/socket.h>

struct daemon;
struct tproxy_udp;

/* A socket of family and type with IP_TRANSPARENT (IPV6_TRANSPARENT),
 * SO_REUSEADDR and the daemon's mark, bound to addr.  dual: an IPv6
 * wildcard that takes IPv4 too.  The fd, or -1 with err naming the
 * address and the cause. */
int tsock_open(const struct daemon *d, int type, const struct sockaddr_storage *addr,
	       int dual, char *err, size_t errlen);

/* Takes fd (from tsock_open, SOCK_DGRAM) and serves it. */
struct tproxy_udp *tproxy_udp_new(struct daemon *d, int fd,
				  const struct sockaddr_storage *addr,
				  char *err, size_t errlen);
/* Ends every flow (with its log line). */
void tproxy_udp_free(struct tproxy_udp *u);

#endif
