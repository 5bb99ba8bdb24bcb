/* Loads the BPF programs, fills their maps, attaches them through
 * bpf_links (which die with the process: a crash fails open), or, with a
 * pin directory, through pinned links that outlive it (fail-closed). */
#ifndef SPROXY_LOADER_H
#define SPROXY_LOADER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bypass.h"
#include "sproxy.h"

struct sproxy_bpf;
struct pin;
struct handoff;

struct loader_config {
	uint32_t tgid;                    /* getpid(): in the daemon's PID namespace */
	uint32_t mark;
	uint64_t netns;
	const struct sockaddr *listen4;   /* NULL: IPv4 TCP not captured */
	const struct sockaddr *listen6;
	uint32_t map_size;                /* live TCP records (captured connections) */
	uint32_t pool_size;               /* UDP flows per family */
	int capture_udp;
	int netns_all;                    /* capture other namespaces once served */
	const struct bypass_entry *bypass;
	size_t n_bypass;
	const struct pin *pin;            /* NULL: nothing pinned */
	const struct handoff *handoff;    /* --to; NULL: none */
};

#define LOADER_MAX_LINKS 24     /* the proxy's programs and the target's */

struct loader {
	struct sproxy_bpf *skel;
	struct bpf_link **links;
	size_t n_links;
	size_t n_proxy;         /* links[0 .. n_proxy): on the proxy's cgroup */
	const struct pin *pin;  /* the target's links are pinned there */
	/* After a takeover: the earlier daemon's UDP pool ports, to bind
	 * again (those of live flows first), by family and DNS reserve
	 * (IPv4, IPv4 reserve, IPv6, IPv6 reserve). */
	uint32_t *reclaim[4];
	size_t n_reclaim[4], next_reclaim[4];
};

int loader_load(struct loader *l, const struct loader_config *cfg,
		char *err, size_t errlen);
/* The program that marks the daemon's own sockets, on the cgroup it runs
 * in: first, so that sockets made from then on (evdns's) are marked. */
int loader_attach_self(struct loader *l, const char *proxy_cg, char *err, size_t errlen);
/* The getsockopt hook (and sockops, with_sockops) on the cgroup of another
 * proxy (--to): plain links, gone with the daemon; before loader_attach. */
int loader_attach_proxy(struct loader *l, const char *cg, int with_sockops,
			char *err, size_t errlen);
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
/* After a takeover: the next port of the earlier daemon's UDP pool (its
 * DNS reserve when reserve) to bind again, or 0 (any port). */
uint32_t loader_pool_reclaim(struct loader *l, int family, int reserve);
/* Whether port carries a live flow (handed out by the BPF side): then it
 * is not pushed as free. */
int loader_port_busy(struct loader *l, int family, uint32_t port);
/* A port of the earlier pool that could not be bound again: its flows end
 * (an unconnected socket's next datagram gets a new port). */
void loader_port_lost(struct loader *l, int family, uint32_t port);
int loader_stats(struct loader *l, uint64_t out[SPROXY_STAT__MAX]);
/* Live TCP records: application sockets, and connections (4-tuples). */
void loader_live(struct loader *l, uint64_t *conns, uint64_t *tuples);
void loader_free(struct loader *l);

#endif
