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
#include "policyset.h"
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
 * route when no rule matched, none for DIRECT even with a default; a
 * route through an upstream holds the set. */
static void upstreams(void)
{
	static struct options o;
	struct policyset *ps, *held = (void *)1;
	const struct upstream *u = (void *)1;
	struct rule_result out = { .rule = 0, .action = RULE_DIRECT, .target = "DIRECT" };
	char err[256];

	strcpy(o.upstream[0].name, "up");
	o.upstream[0].kind = UPSTREAM_SOCKS5;
	o.n_upstream = 1;
	ps = policyset_new(&o);
	CHECK(ps && ps->refs == 1);
	CHECK(policy_upstream(ps, &out, &u, &held, err, sizeof(err)) == 0 && u == NULL &&
	      held == NULL && ps->refs == 1);
	policyset_unref(ps);
	strcpy(o.upstream[1].name, UPSTREAM_DEFAULT);
	o.upstream[1].kind = UPSTREAM_HTTP;
	o.n_upstream = 2;
	ps = policyset_new(&o);
	CHECK(policy_upstream(ps, &out, &u, &held, err, sizeof(err)) == 0 &&
	      u == &ps->upstream[1] && held == ps && ps->refs == 2);
	policyset_unref(held);
	out.rule = 3;
	CHECK(policy_upstream(ps, &out, &u, &held, err, sizeof(err)) == 0 && u == NULL &&
	      held == NULL);
	out.action = RULE_UPSTREAM;
	out.target = "up";
	CHECK(policy_upstream(ps, &out, &u, &held, err, sizeof(err)) == 0 &&
	      u == &ps->upstream[0] && held == ps);
	policyset_unref(held);
	out.target = "gone";
	CHECK(policy_upstream(ps, &out, &u, &held, err, sizeof(err)) < 0 && u == NULL &&
	      held == NULL && ps->refs == 1);
	CHECK(strstr(err, "rule 3") && strstr(err, "'gone'"));
	policyset_unref(ps);
}

/* A set is a copy: the options it was made from may change or go, and
 * what a connection holds stays as it was. */
static void set_is_a_copy(void)
{
	static struct options o;
	struct policyset *a, *b;
	char err[256], buf[512];

	strcpy(o.upstream[0].name, "corp");
	o.upstream[0].kind = UPSTREAM_SOCKS5;
	strcpy(o.upstream[0].label, "corp (192.0.2.1:1080)");
	o.n_upstream = 1;
	o.rules = rules_new();
	CHECK(rules_add(o.rules, "MATCH,corp", "t", err, sizeof(err)) == 0);
	CHECK(rules_compile(o.rules, (const char *const[]){ "corp" }, 1, err, sizeof(err)) == 0);
	a = policyset_new(&o);
	b = policyset_ref(a);
	strcpy(o.upstream[0].name, "other");
	o.n_upstream = 0;
	rules_unref(o.rules);
	o.rules = NULL;
	CHECK(policyset_find(a, "corp") == &a->upstream[0] && policyset_find(a, "other") == NULL);
	CHECK(policyset_default(a) == NULL);
	CHECK(rules_count(a->rules) == 1);
	policyset_describe(a, buf, sizeof(buf));
	CHECK_STREQ(buf, "upstreams corp (192.0.2.1:1080)");
	policyset_unref(a);
	CHECK(strcmp(b->upstream[0].name, "corp") == 0);
	policyset_unref(b);
	a = policyset_new(&o);
	policyset_describe(a, buf, sizeof(buf));
	CHECK_STREQ(buf, "no upstream");
	policyset_unref(a);
}

int main(void)
{
	RUN("policy", cgroup_below);
	RUN("policy", process);
	RUN("policy", upstreams);
	RUN("policy", set_is_a_copy);
	CHECK_EXIT();
}
