/* --to: captured TCP handed to an existing REDIRECT-style proxy (redsocks,
 * mitmproxy --mode transparent, a redir-port) instead of the daemon's own
 * relay.  That proxy asks getsockopt(SO_ORIGINAL_DST), so the hook goes on
 * the cgroup it runs in, found from the process listening on --to (or
 * given with --proxy-cgroup), never the cgroup v2 root. */
#ifndef SPROXY_HANDOFF_H
#define SPROXY_HANDOFF_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct options;
struct loader;
struct daemon;
struct sproxy_bpf;

struct handoff {
	int on;                  /* --to given */
	char cg[PATH_MAX];       /* the other proxy's cgroup, absolute */
	uint64_t cgid;           /* its id, as bpf_get_current_cgroup_id says */
	pid_t pid;               /* the process found listening; 0: not looked up */
	uint32_t ip4, ip6[4];    /* the --to address, network order */
	uint16_t port4, port6;   /* network order; 0: that family not handed off */
};

/* Before anything is loaded: the other proxy's cgroup, checked (not the
 * root, not CGROUP itself); FakeIP off; a --to address that is not
 * loopback added to the bypass.  0, or an exit status (logged). */
int handoff_prepare(struct handoff *h, struct options *o, const char *cg_mount,
		    const char *target);

/* The BPF side's settings, between open and load. */
void handoff_rodata(struct sproxy_bpf *s, const struct handoff *h);

/* The getsockopt hook on the other proxy's cgroup, and sockops there (its
 * accepted sockets end the records) unless a cgroup above has it already.
 * Plain links: they go with the daemon.  Before the target's programs. */
int handoff_attach(const struct handoff *h, struct loader *l, const char *target,
		   const char *proxy_cg, char *err, size_t errlen);

/* A handed-off connection ended (SPROXY_EV_HANDOFF): its log line. */
void handoff_log(struct daemon *d, const void *data, size_t size);

/* The TCP listener on addr (or on a wildcard address that covers it, a
 * dual-stack [::] one included) in this network namespace: the socket
 * inode, or 0 when there is none.  tcp and tcp6 are /proc/net/tcp and
 * /proc/net/tcp6 (parameters, for the unit test). */
struct sockaddr;
unsigned long handoff_listener_inode(const struct sockaddr *addr, const char *tcp,
				     const char *tcp6);

#endif
