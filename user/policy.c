/* The one place a connection's route is decided.  What a rule set does
 * not look at is not looked up: most sets never read /proc. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cgroup.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "policy.h"
#include "policyset.h"
#include "procinfo.h"
#include "sproxy.h"
#include "upstream.h"

const char *policy_cgroup_below(const char *mount, const char *target, const char *name)
{
	size_t mlen = strlen(mount), tlen;
	const char *rel;

	if (!name || !*name || strcmp(name, "?") == 0)
		return NULL;
	if (strncmp(target, mount, mlen) != 0)
		return NULL;
	rel = target + mlen;               /* "/user.slice", or "" for the root */
	while (*rel == '/')
		rel++;
	while (*name == '/')
		name++;
	tlen = strlen(rel);
	while (tlen && rel[tlen - 1] == '/')
		tlen--;
	if (!tlen)
		return name;
	if (strncmp(name, rel, tlen) != 0 || (name[tlen] && name[tlen] != '/'))
		return NULL;
	name += tlen;
	while (*name == '/')
		name++;
	return name;
}

int policy_decide(const struct daemon *d, const struct rules *r,
		  const struct policy_conn *c, struct rule_result *out)
{
	unsigned needs = rules_needs(r);
	char comm[SPROXY_COMM_LEN + 1], exe[PATH_MAX];
	struct rule_input in = {
		.dst = c->dst,
		.network = c->network,
		.host = c->host,
		.fakeip = c->fakeip,
		.resolved = c->resolved,
		.n_resolved = c->n_resolved,
		.resolved_done = c->resolved_done,
		.uid = (uint32_t)-1,           /* unknown: no UID rule takes it */
	};

	if (c->proc) {
		memcpy(comm, c->proc->comm, SPROXY_COMM_LEN);
		comm[SPROXY_COMM_LEN] = 0;
		in.comm = comm;
		in.pid = c->proc->tgid;
		in.uid = c->proc->uid;
		/* A process gone by now leaves PROCESS-PATH unmatched and
		 * PROCESS-NAME to its comm. */
		if ((needs & RULES_NEED_EXE) && procinfo_exe(c->proc->tgid, exe, sizeof(exe)) == 0)
			in.exe = exe;
		if (needs & RULES_NEED_CGROUP)
			in.cgroup = policy_cgroup_below(d->cg_mount, d->target,
							daemon_cgroup_name(d, c->proc->cgroup_id));
	}
	return rules_match(r, &in, out);
}

struct policy_req {
	struct daemon *d;
	struct policyset *ps;              /* the set the decision started with */
	struct policy_conn c;
	struct sockaddr_storage addr;      /* the name's address, when found */
	struct dns_resolving *res;
	policy_cb cb;
	void *arg;
};

static void on_resolved(int err, const char *errmsg, const struct sockaddr *addr,
			socklen_t addrlen, void *arg)
{
	struct policy_req *q = arg;
	struct rule_result out;

	q->res = NULL;
	q->c.resolved_done = 1;
	if (!err && addr && addrlen <= sizeof(q->addr)) {
		memcpy(&q->addr, addr, addrlen);
		addr_unmap(&q->addr);
		q->c.resolved = &q->addr;
		q->c.n_resolved = 1;
	} else {
		/* IP rules then match nothing; the connection goes on to the
		 * rules after them, and its own lookup says what failed. */
		log_debug("rules: resolving %s for an IP rule: %s", q->c.host,
			  errmsg ? errmsg : "no address");
	}
	/* With the lookup done, the rules decide. */
	policy_decide(q->d, q->ps->rules, &q->c, &out);
	q->cb(&out, q->ps, q->arg);
	policyset_unref(q->ps);
	free(q);
}

int policy_route(struct daemon *d, const struct policy_conn *c, policy_cb cb, void *arg,
		 struct policy_req **req)
{
	struct rule_result out;
	struct policy_req *q;

	*req = NULL;
	if (policy_decide(d, d->policy->rules, c, &out) == RULES_DECIDED) {
		cb(&out, d->policy, arg);
		return 0;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return -1;
	q->d = d;
	q->c = *c;
	q->cb = cb;
	q->arg = arg;
	q->ps = policyset_ref(d->policy);
	q->res = dns_server_resolve(d->dns, c->host, AF_UNSPEC, on_resolved, q);
	if (!q->res) {
		policyset_unref(q->ps);
		free(q);
		return -1;
	}
	*req = q;
	return 0;
}

void policy_cancel(struct policy_req *q)
{
	if (!q)
		return;
	if (q->res)
		dns_resolving_cancel(q->res);
	policyset_unref(q->ps);
	free(q);
}

int policy_upstream(struct policyset *ps, const struct rule_result *out,
		    const struct upstream **u, struct policyset **held, char *err,
		    size_t errlen)
{
	*u = NULL;
	*held = NULL;
	if (out->rule == 0)
		*u = policyset_default(ps);
	else if (out->action == RULE_UPSTREAM && !(*u = policyset_find(ps, out->target))) {
		snprintf(err, errlen, "rule %d names upstream '%s', which its rule set does "
			 "not have", out->rule, out->target);
		return -1;
	}
	if (*u)
		*held = policyset_ref(ps);
	return 0;
}
