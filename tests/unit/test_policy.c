/* The policy's decision: the process's executable and cgroup gathered for
 * the rules that look at them, the cgroup path taken below the captured
 * one. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "check.h"
#include "daemon.h"
#include "policy.h"
#include "rules.h"
#include "sproxy.h"
#include "upstream.h"

static void cgroup_below(void)
{
	const char *m = "/sys/fs/cgroup";

	CHECK_STREQ(policy_cgroup_below(m, "/sys/fs/cgroup/user.slice",
					"/user.slice/user-1000.slice/app.scope"),
		    "user-1000.slice/app.scope");
	CHECK_STREQ(policy_cgroup_below(m, "/sys/fs/cgroup/user.slice/", "/user.slice"), "");
	CHECK_STREQ(policy_cgroup_below(m, "/sys/fs/cgroup", "/system.slice/a.service"),
		    "system.slice/a.service");
	CHECK(policy_cgroup_below(m, "/sys/fs/cgroup/user.slice", "/user.slice2/x") == NULL);
	CHECK(policy_cgroup_below(m, "/sys/fs/cgroup/user.slice", "/system.slice") == NULL);
	CHECK(policy_cgroup_below(m, "/sys/fs/cgroup/user.slice", "?") == NULL);
	CHECK(policy_cgroup_below(m, "/sys/fs/cgroup/user.slice", NULL) == NULL);
}

static struct rules *build(const char *const *lines)
{
	struct rules *r = rules_new();
	char err[256];

	for (; *lines; lines++)
		CHECK(rules_add(r, *lines, "t", err, sizeof(err)) == 0);
	CHECK(rules_compile(r, NULL, 0, err, sizeof(err)) == 0);
	return r;
}

/* This test's own process: its comm is cut, its executable is not. */
static void process(void)
{
	static struct daemon d;
	struct sproxy_proc p = { .pid = (uint32_t)getpid(), .tgid = (uint32_t)getpid(),
				 .uid = 1234 };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(80) };
	struct policy_conn c = { .dst = (struct sockaddr *)&dst, .network = RULE_NET_TCP,
				 .proc = &p };
	struct rule_result out;
	struct rules *r;

	strcpy(d.cg_mount, "/nonexistent");
	strcpy(d.target, "/nonexistent/t");
	memcpy(p.comm, "test_polic", 11);
	r = build((const char *const[]){ "PROCESS-NAME,test_policy,REJECT", "UID,1234,DIRECT",
					 "MATCH,REJECT", NULL });
	CHECK(policy_decide(&d, r, &c, &out) == RULES_DECIDED);
	CHECK(out.rule == 1 && out.action == RULE_REJECT);
	rules_unref(r);
	r = build((const char *const[]){ "PROCESS-NAME,nope,REJECT", "UID,1234,DIRECT", NULL });
	CHECK(policy_decide(&d, r, &c, &out) == RULES_DECIDED);
	CHECK(out.rule == 2 && out.action == RULE_DIRECT);
	/* No process known: no UID rule matches, not even UID 0. */
	rules_unref(r);
	r = build((const char *const[]){ "UID,0,REJECT", NULL });
	c.proc = NULL;
	CHECK(policy_decide(&d, r, &c, &out) == RULES_DECIDED);
	CHECK(out.rule == 0);
	/* A cgroup the daemon cannot name matches no CGROUP rule. */
	rules_unref(r);
	r = build((const char *const[]){ "CGROUP,*,REJECT", NULL });
	c.proc = &p;
	p.cgroup_id = 12345;
	CHECK(policy_decide(&d, r, &c, &out) == RULES_DECIDED);
	CHECK(out.rule == 0);
	rules_unref(r);
}

/* The upstream a decision goes through: a rule's by name, the default
 * route when no rule matched, none for DIRECT even with a default. */
static void upstreams(void)
{
	static struct daemon d;
	static struct options o;
	const struct upstream *u = (void *)1;
	struct rule_result out = { .rule = 0, .action = RULE_DIRECT, .target = "DIRECT" };
	char err[256];

	d.opt = &o;
	strcpy(o.upstream[0].name, "up");
	o.upstream[0].kind = UPSTREAM_SOCKS5;
	o.n_upstream = 1;
	CHECK(policy_upstream(&d, &out, &u, err, sizeof(err)) == 0 && u == NULL);
	strcpy(o.upstream[1].name, UPSTREAM_DEFAULT);
	o.upstream[1].kind = UPSTREAM_HTTP;
	o.n_upstream = 2;
	CHECK(policy_upstream(&d, &out, &u, err, sizeof(err)) == 0 && u == &o.upstream[1]);
	out.rule = 3;
	CHECK(policy_upstream(&d, &out, &u, err, sizeof(err)) == 0 && u == NULL);
	out.action = RULE_UPSTREAM;
	out.target = "up";
	CHECK(policy_upstream(&d, &out, &u, err, sizeof(err)) == 0 && u == &o.upstream[0]);
	/* Named by rules read again on SIGHUP, unknown to the running daemon. */
	out.target = "gone";
	CHECK(policy_upstream(&d, &out, &u, err, sizeof(err)) < 0 && u == NULL);
	CHECK(strstr(err, "rule 3") && strstr(err, "'gone'") && strstr(err, "restart"));
}

int main(void)
{
	RUN("policy", cgroup_below);
	RUN("policy", process);
	RUN("policy", upstreams);
	CHECK_EXIT();
}
