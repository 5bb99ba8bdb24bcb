/* The rules as the BPF hooks can evaluate them (the kernel fast path):
 * IP-CIDR, DST-PORT, UID, PROCESS-NAME (by comm), NETWORK and MATCH, each
 * match a hit (the rule's index and what it decides).  A rule they cannot
 * evaluate (PROCESS-PATH, CGROUP, AND/OR/NOT, a PROCESS-NAME longer than
 * a comm) becomes a barrier: the first one sends every connection that
 * reaches it to the proxy.  Domain rules cannot match a real destination
 * (no name is known for it) and are answered per FakeIP name instead
 * (rules_kernel_name). */
#ifndef SPROXY_RULES_KERNEL_H
#define SPROXY_RULES_KERNEL_H
#include <stddef.h>
#include <stdint.h>

#include "sproxy.h"

struct rules;

struct rules_kernel_cidr {
	struct sproxy_bypass_key key;
	struct sproxy_fp_hit hit;
	int resolvable;                   /* not no-resolve: may see a FakeIP's real address */
};

struct rules_kernel_uid {
	uint32_t uid;
	struct sproxy_fp_hit hit;
};

struct rules_kernel_comm {
	char comm[SPROXY_COMM_LEN];       /* NUL-padded */
	struct sproxy_fp_hit hit;
};

struct rules_kernel {
	struct sproxy_fp_hit barrier;     /* any connection */
	struct sproxy_fp_hit barrier_fake;
	struct sproxy_fp_hit net[2];      /* tcp, udp */
	struct sproxy_fp_hit match;
	struct sproxy_fp_hit *ports;      /* [65536], by port */
	/* Each prefix's hit is the first rule among itself and the prefixes
	 * containing it (of its kind: all, or resolvable only). */
	struct rules_kernel_cidr *cidr_all, *cidr_res;
	size_t n_cidr_all, n_cidr_res;
	struct rules_kernel_uid *uid;
	size_t n_uid;
	struct rules_kernel_comm *comm;
	size_t n_comm;
};

/* Room the maps have (bpf/fastpath.bpf.h); rules beyond become barriers. */
#define RULES_KERNEL_MAX_CIDR 16384
#define RULES_KERNEL_MAX_UID  65536
#define RULES_KERNEL_MAX_COMM 4096

/* r NULL: no rules.  0, or -1 when out of memory. */
int rules_kernel_build(const struct rules *r, struct rules_kernel *k);
void rules_kernel_free(struct rules_kernel *k);
/* The first DOMAIN, DOMAIN-SUFFIX or DOMAIN-KEYWORD rule that matches
 * name (idx SPROXY_FP_NONE when none). */
struct sproxy_fp_hit rules_kernel_name(const struct rules *r, const char *name);

#endif
