/* When the daemon stops, an application's connected UDP socket still
 * points at a pool port on loopback that is about to close.  Before the
 * pool goes, each such socket is pointed at its original peer instead, so
 * that stopping the daemon leaves it working, as it leaves every other
 * socket. */
#ifndef SPROXY_UDP_FAILOPEN_H
#define SPROXY_UDP_FAILOPEN_H

struct daemon;

/* Call once the hooks are detached, before the pool sockets close. */
void udp_failopen(struct daemon *d);

#endif
