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

/* A decision that waits for a name's addresses. */
struct policy_req;
struct policyset;
/* ps is the set that decided (d->policy, or the set in force when the
 * decision began if a reload came meanwhile); out lives only during the
 * call (its target belongs to ps's rules): copy what is kept, and take a
 * reference to ps (policy_upstream does) to keep an upstream of it. */
typedef void (*policy_cb)(const struct rule_result *out, struct policyset *ps, void *arg);

/* policy_decide with the set in force (d->policy), taken through to the
 * end: cb gets the answer now (by d->policy) when the rules need no
 * lookup, else from the event loop once host is looked up (*req set
 * meanwhile, the set held; policy_cancel stops it).  0, or -1 out of
 * memory (cb not called).  cb may free what req points into: nothing is
 * touched after it.  c is copied, what it points to must live until cb
 * (resolved is filled in by the request). */
int policy_route(struct daemon *d, const struct policy_conn *c, policy_cb cb, void *arg,
		 struct policy_req **req);
void policy_cancel(struct policy_req *req);

/* The route a decision of ps (not REJECT) goes through: *u NULL for
 * direct, else one of ps's upstreams, and *held a new reference to ps
 * that keeps *u alive (policyset_unref when the connection ends).  No rule
 * matched: ps's default route.  -1 with err when the named upstream is
 * not in ps (rules_compile makes sure it is). */
struct upstream;
int policy_upstream(struct policyset *ps, const struct rule_result *out,
		    const struct upstream **u, struct policyset **held, char *err,
		    size_t errlen);

/* The path of cgroup name (as cg_name gives it, "/a/b") below target (an
 * absolute path under mount): "" for target itself, NULL when name is not
 * below it or unknown ("?"). */
const char *policy_cgroup_below(const char *mount, const char *target, const char *name);

#endif
