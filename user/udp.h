/* The UDP side.  The proxy holds a pool of sockets on 127.0.0.1 and [::1];
 * the sendmsg hooks give each (application socket, destination) flow one
 * of their ports, so a reply sent from that port is known, by recvmsg, to
 * come from that destination.  Each flow is relayed through its own
 * connected socket (or answered by the DNS server) and expires when idle
 * or when its application socket closes. */
#ifndef SPROXY_UDP_H
#define SPROXY_UDP_H
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct udp_pool;

/* Binds the pool sockets and hands their ports to the BPF side. */
struct udp_pool *udp_pool_new(struct daemon *d, uint32_t per_family,
			      char *err, size_t errlen);
/* The pool of another network namespace (netns_fd), made while the
 * thread is inside it: owner as udp_ports.h, its free ports go to that
 * namespace's queues. */
struct udp_pool *udp_pool_new_ns(struct daemon *d, uint32_t per_family, int owner,
				 int netns_fd, uint64_t netns_ino, char *err, size_t errlen);
/* Ends every flow (with its log line). */
void udp_pool_free(struct udp_pool *p);
/* An application socket closed: end its flows now. */
void udp_pool_release(struct udp_pool *p, uint64_t cookie);
/* The BPF side found the pool dry. */
void udp_pool_dry(struct udp_pool *p, int family, const char *comm, uint32_t pid);
/* The BPF side refused a flow: the process holds --udp-flows-per-process. */
void udp_pool_limited(struct udp_pool *p, const char *comm, uint32_t pid);

#endif
