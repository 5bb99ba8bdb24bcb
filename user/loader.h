/* Loads the BPF programs, fills their maps, attaches them through
 * bpf_links (which die with the process: a crash fails open). */
#ifndef SPROXY_LOADER_H
#define SPROXY_LOADER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sproxy.h"

struct sproxy_bpf;

struct bypass_entry {
	struct sproxy_bypass_key key;
	uint16_t port;                 /* network order, 0 = any */
};

struct loader_config {
	uint32_t tgid;
	uint32_t mark;
	uint64_t netns;
	const struct sockaddr *listen4;   /* NULL: IPv4 TCP not captured */
	const struct sockaddr *listen6;
	uint32_t map_size;                /* entries of each LRU map */
	uint32_t pool_size;               /* UDP flows per family */
	int capture_udp;
	const struct bypass_entry *bypass;
	size_t n_bypass;
};

#define LOADER_MAX_LINKS 16     /* the proxy's hook and the target's programs */

struct loader {
	struct sproxy_bpf *skel;
	struct bpf_link **links;
	size_t n_links;
};

int loader_load(struct loader *l, const struct loader_config *cfg,
		char *err, size_t errlen);
/* Programs that serve the application go to target; the getsockopt hook
 * goes to the cgroup the proxy itself runs in. */
int loader_attach(struct loader *l, const char *target, const char *proxy_cg,
		  char *err, size_t errlen);
/* The target's programs only: off a removed cgroup, onto its successor
 * (the proxy's hook stays). */
void loader_detach_target(struct loader *l);
int loader_attach_target(struct loader *l, const char *target, char *err, size_t errlen);
int loader_push_port(struct loader *l, int family, uint32_t port);
int loader_stats(struct loader *l, uint64_t out[SPROXY_STAT__MAX]);
void loader_free(struct loader *l);

#endif
