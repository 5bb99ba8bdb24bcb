/* The one place a connection's route is decided.  What a rule set does
 * not look at is not looked up: most sets never read /proc. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "cgroup.h"
#include "daemon.h"
#include "policy.h"
#include "procinfo.h"
#include "sproxy.h"

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
