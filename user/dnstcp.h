/* DNS over TCP from the captured cgroup (port 53): length-framed queries
 * answered by the built-in server, one after another. */
#ifndef SPROXY_DNSTCP_H
#define SPROXY_DNSTCP_H
#include <sys/socket.h>

struct daemon;
struct sproxy_proc;

/* Takes ownership of fd.  0 or -1 (out of memory; fd not taken). */
int dnstcp_start(struct daemon *d, int fd, const struct sproxy_proc *proc, int have_proc,
		 const struct sockaddr_storage *src, const struct sockaddr_storage *dst);

#endif
