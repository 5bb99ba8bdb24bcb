/* Loads the BPF programs, fills their maps, attaches them through
 * bpf_links (which die with the process: a crash fails open). */
#ifndef SPROXY_LOADER_H
#define SPROXY_LOADER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bypass.h"
#include "sproxy.h"

struct sproxy_bpf;

struct loader_config {
	uint32_t tgid;                    /* getpid(): in the daemon's PID namespace */
	uint32_t mark;
	uint64_t netns;
	const struct sockaddr *listen4;   /* NULL: IPv4 TCP not captured */
	const struct sockaddr *listen6;
	uint32_t map_size;                /* live TCP records (captured connections) */
	uint32_t pool_size;               /* UDP flows per family */
	int capture_udp;
	const struct bypass_entry *bypass;
	size_t n_bypass;
};

#define LOADER_MAX_LINKS 16     /* the proxy's programs and the target's */

struct loader {
	struct sproxy_bpf *skel;
	struct bpf_link **links;
	size_t n_links;
	size_t n_proxy;         /* links[0 .. n_proxy): on the proxy's cgroup */
};

int loader_load(struct loader *l, const struct loader_config *cfg,
		char *err, size_t errlen);
/* The program that marks the daemon's own sockets, on the cgroup it runs
 * in: first, so that sockets made from then on (evdns's) are marked. */
int loader_attach_self(struct loader *l, const char *proxy_cg, char *err, size_t errlen);
/* Programs that serve the application go to target; the getsockopt hook,
 * and sockops for the proxy's accepted sockets, to the cgroup the proxy
 * itself runs in. */
int loader_attach(struct loader *l, const char *target, const char *proxy_cg,
		  char *err, size_t errlen);
/* The target's programs only: off a removed cgroup, onto its successor
 * (the proxy's programs stay). */
void loader_detach_target(struct loader *l);
int loader_attach_target(struct loader *l, const char *target, char *err, size_t errlen);
int loader_push_port(struct loader *l, int family, uint32_t port);
int loader_stats(struct loader *l, uint64_t out[SPROXY_STAT__MAX]);
/* Live TCP records: application sockets, and connections (4-tuples). */
void loader_live(struct loader *l, uint64_t *conns, uint64_t *tuples);
void loader_free(struct loader *l);

#endif
