/* The policy's decision for one connection: the rules asked with what is
 * known of it, the process looked up only as far as the rules look at it.
 * Sits between "original destination known" and "connect out". */
#ifndef SPROXY_POLICY_H
#define SPROXY_POLICY_H
#include <stddef.h>
#include <sys/socket.h>

#include "rules.h"

struct daemon;
struct sproxy_proc;

struct policy_conn {
	const struct sockaddr *dst;        /* original destination */
	int network;                       /* RULE_NET_TCP or RULE_NET_UDP */
	const char *host;                  /* the FakeIP name, or NULL */
	int fakeip;                        /* dst is host's FakeIP address */
	const struct sproxy_proc *proc;    /* from the BPF record */
	/* After RULES_RESOLVE: host's real addresses (resolved_done set even
	 * when the lookup found none). */
	const struct sockaddr_storage *resolved;
	int n_resolved;
	int resolved_done;
};

/* rules_match for c, with the process's executable (PROCESS-NAME,
 * PROCESS-PATH) and cgroup (CGROUP) found only when a rule needs them.
 * RULES_DECIDED, or RULES_RESOLVE: look host up, hold a reference to r
 * (rules_ref) meanwhile, and ask again with the addresses. */
int policy_decide(const struct daemon *d, const struct rules *r,
		  const struct policy_conn *c, struct rule_result *out);

/* The path of cgroup name (as cg_name gives it, "/a/b") below target (an
 * absolute path under mount): "" for target itself, NULL when name is not
 * below it or unknown ("?"). */
const char *policy_cgroup_below(const char *mount, const char *target, const char *name);

#endif
