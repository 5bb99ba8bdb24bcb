/* This daemon's own sockets, recognised from the outside. */
#ifndef SPROXY_OWNSOCK_H
#define SPROXY_OWNSOCK_H
#include <sys/socket.h>

/* client (an address and port that sent a datagram) is a UDP socket of
 * this process: an address of this host, and a socket of ours bound to
 * that port (/proc/self/net/udp{,6} and our fd table).  Only worth asking
 * for local senders; a remote one costs one bind(2). */
int ownsock_udp(const struct sockaddr *client);

#endif
