/* DNS over TCP from the captured cgroup (port 53): length-framed queries
 * answered by the built-in server, one after another.  Bounded: no query
 * is read while 64 KiB of answers wait, at most 16 sessions per process
 * (512 in all), and a session that takes in no query for 10 s ends. */
#ifndef SPROXY_DNSTCP_H
#define SPROXY_DNSTCP_H
#include <sys/socket.h>

struct daemon;
struct sproxy_proc;

/* Takes ownership of fd (over a cap: logged, closed, 0).  0 or -1 (out
 * of memory; fd not taken). */
int dnstcp_start(struct daemon *d, int fd, const struct sproxy_proc *proc, int have_proc,
		 const struct sockaddr_storage *src, const struct sockaddr_storage *dst);

#endif
