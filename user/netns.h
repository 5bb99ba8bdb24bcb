/* Other network namespaces (containers): processes of the captured cgroup
 * that live in a namespace other than the daemon's are served by a TCP
 * listener and a UDP pool the daemon opens inside that namespace (setns,
 * make the sockets, setns back: a socket keeps the namespace it was made
 * in).  The BPF side finds them by the namespace's cookie; the daemon's
 * connections out are made from its own namespace. */
#ifndef SPROXY_NETNS_H
#define SPROXY_NETNS_H
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct netns_ctl;

/* Serves the namespaces of the processes below the captured cgroup now,
 * then looks again every second: new namespaces are served, namespaces
 * with no process of the cgroup left are released. */
struct netns_ctl *netns_start(struct daemon *d, char *err, size_t errlen);
/* Clears what an earlier daemon's pinned maps hold of the namespaces it
 * served, before the daemon's own pool is made. */
void netns_forget(struct daemon *d);
/* Releases every namespace served. */
void netns_stop(struct netns_ctl *c);
/* The BPF side saw a socket of a namespace it does not serve (cookie),
 * made by process tgid of cgroup cg: serve it now. */
void netns_unserved(struct netns_ctl *c, uint64_t cookie, uint32_t tgid, const char *cg);
/* An application socket closed: end its flows in the namespaces' pools. */
void netns_udp_release(struct netns_ctl *c, uint64_t cookie);

#endif
