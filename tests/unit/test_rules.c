/* Rules as tables: a rule set and a connection in, the rule and target out;
 * bad lines in, their messages out.  Then the indexed matcher against the
 * rule-by-rule one on random rule sets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "check.h"
#include "procinfo.h"
#include "rules.h"

/* Rows name only the fields they need. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const char *const ups[] = { "proxyA", "tor" };

/* The connection a row describes. */
struct conn {
	const char *dst;              /* "ADDR:PORT" */
	const char *net;              /* "tcp" (default) or "udp" */
	const char *host;
	int fakeip;
	const char *resolved;         /* one address, "-" looked up with no answer */
	const char *comm, *exe, *cgroup;
	uint32_t uid;
};

struct row {
	const char *rules[6];
	struct conn c;
	int rule;                     /* expected; -1: RULES_RESOLVE at rule 'want' */
	const char *target;
	int want;
};

static const struct row rows[] = {
	/* Each type. */
	{ { "DOMAIN,example.com,DIRECT", "MATCH,REJECT" },
	  { "192.0.2.1:443", .host = "example.com" }, 1, "DIRECT", 0 },
	{ { "DOMAIN,example.com,DIRECT", "MATCH,REJECT" },
	  { "192.0.2.1:443", .host = "www.example.com" }, 2, "REJECT", 0 },
	{ { "DOMAIN,Example.COM.,tor" },
	  { "192.0.2.1:443", .host = "EXAMPLE.com." }, 1, "tor", 0 },
	{ { "DOMAIN-SUFFIX,example.com,proxyA" },
	  { "192.0.2.1:443", .host = "a.b.example.com" }, 1, "proxyA", 0 },
	{ { "DOMAIN-SUFFIX,example.com,proxyA" },
	  { "192.0.2.1:443", .host = "example.com" }, 1, "proxyA", 0 },
	{ { "DOMAIN-SUFFIX,example.com,proxyA" },
	  { "192.0.2.1:443", .host = "badexample.com" }, 0, "DIRECT", 0 },
	{ { "DOMAIN-SUFFIX,+.example.com,proxyA", "DOMAIN-SUFFIX,.org,tor" },
	  { "192.0.2.1:443", .host = "x.example.org" }, 2, "tor", 0 },
	{ { "DOMAIN-KEYWORD,goo,REJECT" },
	  { "192.0.2.1:443", .host = "www.GOOgle.com" }, 1, "REJECT", 0 },
	{ { "DOMAIN-KEYWORD,goo,REJECT" }, { "192.0.2.1:443" }, 0, "DIRECT", 0 },
	{ { "IP-CIDR,192.0.2.0/24,REJECT" }, { "192.0.2.77:80" }, 1, "REJECT", 0 },
	{ { "IP-CIDR,192.0.2.0/24,REJECT" }, { "198.51.100.1:80" }, 0, "DIRECT", 0 },
	{ { "IP-CIDR,192.0.2.9/24,REJECT" }, { "192.0.2.200:80" }, 1, "REJECT", 0 },
	{ { "IP-CIDR6,2001:db8::/32,tor" }, { "[2001:db8:1::5]:80" }, 1, "tor", 0 },
	{ { "IP-CIDR,2001:db8::/32,tor" }, { "[2001:db9::5]:80" }, 0, "DIRECT", 0 },
	{ { "IP-CIDR,0.0.0.0/0,tor" }, { "[::ffff:203.0.113.5]:80" }, 1, "tor", 0 },
	{ { "IP-CIDR,0.0.0.0/0,tor" }, { "[2001:db8::1]:80" }, 0, "DIRECT", 0 },
	{ { "DST-PORT,443,REJECT" }, { "192.0.2.1:443" }, 1, "REJECT", 0 },
	{ { "DST-PORT,80/8000-8080,REJECT" }, { "192.0.2.1:8001" }, 1, "REJECT", 0 },
	{ { "DST-PORT,80/8000-8080,REJECT" }, { "192.0.2.1:443" }, 0, "DIRECT", 0 },
	{ { "NETWORK,udp,REJECT" }, { "192.0.2.1:53", "udp" }, 1, "REJECT", 0 },
	{ { "NETWORK,UDP,REJECT" }, { "192.0.2.1:53" }, 0, "DIRECT", 0 },
	{ { "PROCESS-NAME,curl,REJECT" }, { "192.0.2.1:80", .comm = "curl" }, 1, "REJECT", 0 },
	/* comm is cut to 15 bytes: the executable's name matches too. */
	{ { "PROCESS-NAME,telegram-desktop,tor" },
	  { "192.0.2.1:80", .comm = "telegram-deskto", .exe = "/usr/bin/telegram-desktop" },
	  1, "tor", 0 },
	{ { "PROCESS-NAME,telegram-desktop,tor" },
	  { "192.0.2.1:80", .comm = "telegram-deskto" }, 0, "DIRECT", 0 },
	{ { "PROCESS-PATH,/usr/bin/curl,REJECT" },
	  { "192.0.2.1:80", .comm = "curl", .exe = "/usr/bin/curl" }, 1, "REJECT", 0 },
	{ { "PROCESS-PATH,/usr/bin/curl,REJECT" },
	  { "192.0.2.1:80", .comm = "curl", .exe = "/usr/local/bin/curl" }, 0, "DIRECT", 0 },
	{ { "UID,1000,tor" }, { "192.0.2.1:80", .uid = 1000 }, 1, "tor", 0 },
	{ { "UID,0-999,tor" }, { "192.0.2.1:80", .uid = 1000 }, 0, "DIRECT", 0 },
	{ { "CGROUP,app-flatpak-org.telegram.desktop@*.service,tor" },
	  { "192.0.2.1:80", .cgroup = "user.slice/user-1000.slice/user@1000.service/app.slice/"
	    "app-flatpak-org.telegram.desktop@123.service" }, 1, "tor", 0 },
	{ { "CGROUP,snap.firefox.*,tor" },
	  { "192.0.2.1:80", .cgroup = "/snap.firefox.firefox-1.scope/child" }, 1, "tor", 0 },
	{ { "CGROUP,user.slice/*,tor" },
	  { "192.0.2.1:80", .cgroup = "user.slice/user-1000.slice/x.scope" }, 1, "tor", 0 },
	{ { "CGROUP,*/x.scope,tor" },
	  { "192.0.2.1:80", .cgroup = "user.slice/user-1000.slice/x.scope" }, 0, "DIRECT", 0 },
	{ { "CGROUP,snap.*,tor" }, { "192.0.2.1:80" }, 0, "DIRECT", 0 },
	/* First match wins, whatever the types. */
	{ { "DST-PORT,443,REJECT", "DOMAIN,example.com,DIRECT" },
	  { "192.0.2.1:443", .host = "example.com" }, 1, "REJECT", 0 },
	{ { "DOMAIN-SUFFIX,com,tor", "DOMAIN,example.com,DIRECT" },
	  { "192.0.2.1:443", .host = "example.com" }, 1, "tor", 0 },
	{ { "DOMAIN,example.com,DIRECT", "DOMAIN-SUFFIX,com,tor" },
	  { "192.0.2.1:443", .host = "example.com" }, 1, "DIRECT", 0 },
	{ { "IP-CIDR,192.0.2.0/24,tor", "IP-CIDR,192.0.2.0/28,REJECT" },
	  { "192.0.2.1:1" }, 1, "tor", 0 },
	{ { "IP-CIDR,192.0.2.0/28,REJECT", "IP-CIDR,192.0.2.0/24,tor" },
	  { "192.0.2.1:1" }, 1, "REJECT", 0 },
	{ { "MATCH,tor", "DOMAIN,example.com,DIRECT" },
	  { "192.0.2.1:443", .host = "example.com" }, 1, "tor", 0 },
	/* AND / OR / NOT, nested. */
	{ { "AND,((NETWORK,UDP),(DST-PORT,443)),REJECT" }, { "192.0.2.1:443", "udp" },
	  1, "REJECT", 0 },
	{ { "AND,((NETWORK,UDP),(DST-PORT,443)),REJECT" }, { "192.0.2.1:443", "tcp" },
	  0, "DIRECT", 0 },
	{ { "OR,((DOMAIN,a.example),(DST-PORT,22)),tor" }, { "192.0.2.1:22" }, 1, "tor", 0 },
	{ { "NOT,((DOMAIN-SUFFIX,example.com)),REJECT", "MATCH,DIRECT" },
	  { "192.0.2.1:80", .host = "example.org" }, 1, "REJECT", 0 },
	{ { "NOT,((DOMAIN-SUFFIX,example.com)),REJECT", "MATCH,DIRECT" },
	  { "192.0.2.1:80", .host = "example.com" }, 2, "DIRECT", 0 },
	{ { "AND,((OR,((UID,1000),(UID,1001))),(NOT,((DST-PORT,53))),(NETWORK,tcp)),tor" },
	  { "192.0.2.1:80", .uid = 1001 }, 1, "tor", 0 },
	{ { "AND,((OR,((UID,1000),(UID,1001))),(NOT,((DST-PORT,53))),(NETWORK,tcp)),tor" },
	  { "192.0.2.1:53", .uid = 1001 }, 0, "DIRECT", 0 },
	/* A FakeIP connection: IP rules wait for the name's real addresses... */
	{ { "DOMAIN,a.example,DIRECT", "IP-CIDR,198.51.100.0/24,REJECT", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1 }, -1, NULL, 2 },
	{ { "DOMAIN,b.example,DIRECT", "IP-CIDR,198.51.100.0/24,REJECT", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1 }, 1, "DIRECT", 0 },
	{ { "DOMAIN,a.example,DIRECT", "IP-CIDR,198.51.100.0/24,REJECT", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1, .resolved = "198.51.100.7" },
	  2, "REJECT", 0 },
	{ { "DOMAIN,a.example,DIRECT", "IP-CIDR,198.51.100.0/24,REJECT", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1, .resolved = "-" }, 3, "tor", 0 },
	/* ...never match the FakeIP address itself... */
	{ { "IP-CIDR,198.18.0.0/15,REJECT", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1, .resolved = "192.0.2.1" },
	  2, "tor", 0 },
	/* ...and with no-resolve skip the connection without a lookup. */
	{ { "IP-CIDR,198.51.100.0/24,REJECT,no-resolve", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1 }, 2, "tor", 0 },
	{ { "IP-CIDR,198.51.100.0/24,REJECT,no-resolve", "MATCH,tor" },
	  { "198.51.100.9:80", .host = "b.example" }, 1, "REJECT", 0 },
	{ { "OR,((IP-CIDR,198.51.100.0/24),(DOMAIN,x.example)),REJECT", "MATCH,tor" },
	  { "198.18.0.5:80", .host = "b.example", .fakeip = 1 }, -1, NULL, 1 },
	/* No rule: DIRECT, rule 0. */
	{ { NULL }, { "192.0.2.1:80" }, 0, "DIRECT", 0 },
};

static void fill(const struct conn *c, struct rule_input *in, struct sockaddr_storage *dst,
		 struct sockaddr_storage *res)
{
	memset(in, 0, sizeof(*in));
	CHECK(addr_parse(c->dst, 0, dst, NULL, 0) == 0);
	in->dst = (struct sockaddr *)dst;
	in->network = c->net && strcmp(c->net, "udp") == 0 ? RULE_NET_UDP : RULE_NET_TCP;
	in->host = c->host;
	in->fakeip = c->fakeip;
	in->comm = c->comm;
	in->exe = c->exe;
	in->cgroup = c->cgroup;
	in->uid = c->uid;
	if (c->resolved) {
		in->resolved_done = 1;
		if (strcmp(c->resolved, "-") != 0) {
			CHECK(addr_parse(c->resolved, 1, res, NULL, 0) == 0);
			in->resolved = res;
			in->n_resolved = 1;
		}
	}
}

static struct rules *build(const char *const *lines, int n)
{
	struct rules *r = rules_new();
	char err[512];

	for (int i = 0; i < n && lines[i]; i++)
		if (rules_add(r, lines[i], "test", err, sizeof(err)) < 0) {
			printf("  rule '%s': %s\n", lines[i], err);
			check_failed_now = 1;
		}
	if (rules_compile(r, (const char *const *)ups, 2, err, sizeof(err)) < 0) {
		printf("  compile: %s\n", err);
		check_failed_now = 1;
	}
	return r;
}

static void match_table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		struct rules *r = build(w->rules, 6);
		struct sockaddr_storage dst, res;
		struct rule_input in;
		struct rule_result a, b;
		int ra, rb;

		fill(&w->c, &in, &dst, &res);
		ra = rules_match(r, &in, &a);
		rb = rules_match_linear(r, &in, &b);
		if (w->rule < 0 ? ra != RULES_RESOLVE || a.rule != w->want
				: ra != RULES_DECIDED || a.rule != w->rule ||
				  strcmp(a.target, w->target) != 0) {
			printf("  row %zu (%s): got %d rule %d %s\n", i,
			       w->rules[0] ? w->rules[0] : "-", ra, a.rule, a.target);
			check_failed_now = 1;
		}
		if (ra != rb || a.rule != b.rule)
			printf("  row %zu: linear says %d rule %d\n", i, rb, b.rule),
				check_failed_now = 1;
		rules_unref(r);
	}
}

static void targets(void)
{
	struct rules *r = build((const char *[]){ "DOMAIN,a.example,tor",
						  "MATCH,proxyA", NULL }, 3);
	struct sockaddr_storage dst, res;
	struct rule_input in;
	struct rule_result out;
	char err[512];

	fill(&(struct conn){ "192.0.2.1:80", .host = "a.example" }, &in, &dst, &res);
	CHECK(rules_match(r, &in, &out) == RULES_DECIDED);
	CHECK(out.action == RULE_UPSTREAM && out.upstream == 1 && out.rule == 1);
	in.host = "b.example";
	CHECK(rules_match(r, &in, &out) == RULES_DECIDED);
	CHECK(out.action == RULE_UPSTREAM && out.upstream == 0 && out.rule == 2);
	CHECK_STREQ(rules_line(r, 2), "MATCH,proxyA");
	CHECK(rules_count(r) == 2);
	/* A name rule: a connection to a real address is worth sniffing. */
	CHECK(rules_needs(r) == RULES_NEED_HOST);
	rules_unref(r);

	/* An unknown target is an error naming where the line came from. */
	r = rules_new();
	CHECK(rules_add(r, "DOMAIN,a.example,Proxy", "cfg:3", err, sizeof(err)) == 0);
	CHECK(rules_compile(r, (const char *const *)ups, 2, err, sizeof(err)) < 0);
	CHECK(strstr(err, "cfg:3") && strstr(err, "unknown target 'Proxy'") &&
	      strstr(err, "proxyA"));
	rules_unref(r);
	/* References: the set lives until the last one goes. */
	r = build((const char *[]){ "PROCESS-NAME,x,REJECT", "CGROUP,a*,DIRECT", NULL }, 3);
	CHECK(rules_needs(r) == (RULES_NEED_EXE | RULES_NEED_CGROUP));
	rules_unref(r);
	r = build((const char *[]){ "NOT,((DOMAIN-KEYWORD,ads)),DIRECT", NULL }, 3);
	CHECK(rules_needs(r) == RULES_NEED_HOST);
	rules_unref(r);
	r = build((const char *[]){ "IP-CIDR,192.0.2.0/24,REJECT", "MATCH,DIRECT", NULL }, 3);
	CHECK(rules_needs(r) == 0);
	CHECK(rules_ref(r) == r);
	rules_unref(r);
	CHECK(rules_count(r) == 2);
	rules_unref(r);
}

static const struct {
	const char *line;
	const char *msg;
} bad[] = {
	{ "", "is not a rule type" },
	{ "DOMAINS,a.example,DIRECT", "'DOMAINS' is not a rule type" },
	{ "DOMAIN,a.example", "no target" },
	{ "DOMAIN,a..example,DIRECT", "not a domain name" },
	{ "DOMAIN,a example,DIRECT", "not a domain name" },
	{ "DOMAIN,,DIRECT", "not a domain name" },
	{ "DOMAIN,a.example,DIRECT,no-resolve", "only IP-CIDR" },
	{ "IP-CIDR,192.0.2.0/33,DIRECT", "not an address/prefix" },
	{ "IP-CIDR,192.0.2.0,DIRECT", "not an address/prefix" },
	{ "IP-CIDR,192.0.2.0/+8,DIRECT", "not an address/prefix" },
	{ "IP-CIDR6,2001:db8::/129,DIRECT", "not an address/prefix" },
	{ "IP-CIDR,192.0.2.0/24,DIRECT,resolve", "not a flag" },
	{ "DST-PORT,65536,DIRECT", "not a port" },
	{ "DST-PORT,90-80,DIRECT", "not a port" },
	{ "DST-PORT,80/,DIRECT", "not a port" },
	{ "DST-PORT,-1,DIRECT", "not a port" },
	{ "NETWORK,icmp,DIRECT", "tcp or udp" },
	{ "PROCESS-NAME,bin/curl,DIRECT", "not a process name" },
	{ "PROCESS-PATH,curl,DIRECT", "not an absolute path" },
	{ "UID,root,DIRECT", "not a uid" },
	{ "CGROUP,,DIRECT", "not a cgroup pattern" },
	{ "MATCH", "MATCH needs a target" },
	{ "MATCH,DIRECT,REJECT", "not a target" },
	{ "DOMAIN,a.example,DI RECT", "not a target" },
	{ "AND,(NETWORK,UDP),REJECT", "a condition is written (TYPE,VALUE)" },
	{ "AND,((NETWORK,UDP),(DST-PORT,443),REJECT", "AND, OR and NOT are written" },
	{ "AND,((NETWORK,UDP)(DST-PORT,443)),REJECT", "',' expected" },
	{ "AND,(),REJECT", "need a condition" },
	{ "NOT,((NETWORK,UDP),(DST-PORT,443)),REJECT", "NOT takes one condition" },
	{ "AND,((MATCH,x)),REJECT", "MATCH is not a condition" },
	{ "AND,((DOMAIN,a.example,DIRECT)),REJECT", "only IP-CIDR" },
};

static void bad_lines(void)
{
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rules *r = rules_new();

		err[0] = 0;
		if (rules_add(r, bad[i].line, "x", err, sizeof(err)) == 0 ||
		    !strstr(err, bad[i].msg)) {
			printf("  '%s': want '%s', got '%s'\n", bad[i].line, bad[i].msg, err);
			check_failed_now = 1;
		}
		CHECK(rules_count(r) == 0);
		rules_unref(r);
	}
	/* (NOT,((NOT,(...)))) nine deep. */
	{
		char line[512] = "AND,(", tail[256] = "";
		struct rules *r = rules_new();

		for (int i = 0; i < 9; i++) {
			strcat(line, "(NOT,(");
			strcat(tail, "))");
		}
		strcat(line, "(UID,1)");
		strcat(line, tail);
		strcat(line, "),REJECT");
		CHECK(rules_add(r, line, "x", err, sizeof(err)) < 0);
		CHECK(strstr(err, "nested deeper"));
		rules_unref(r);
	}
}

/* Random sets from a small pool of values, so that lookups hit: the
 * indexed matcher must say what the rule-by-rule one says. */
static void indexed_equals_linear(void)
{
	static const char *const pool[] = {
		"DOMAIN,a.example,%s", "DOMAIN,b.a.example,%s", "DOMAIN-SUFFIX,example,%s",
		"DOMAIN-SUFFIX,a.example,%s", "DOMAIN-KEYWORD,b,%s", "IP-CIDR,192.0.2.0/24,%s",
		"IP-CIDR,192.0.2.0/25,%s", "IP-CIDR,192.0.0.0/8,%s,no-resolve",
		"IP-CIDR6,2001:db8::/32,%s", "IP-CIDR,198.51.100.0/24,%s", "DST-PORT,80,%s",
		"DST-PORT,1-100,%s", "NETWORK,udp,%s", "PROCESS-NAME,curl,%s",
		"PROCESS-NAME,wget,%s", "PROCESS-PATH,/bin/curl,%s", "UID,0,%s", "CGROUP,x*,%s",
		"AND,((NETWORK,tcp),(DST-PORT,80)),%s", "OR,((IP-CIDR,192.0.2.0/24),(UID,5)),%s",
		"NOT,((DOMAIN-SUFFIX,example)),%s",
	};
	static const char *const hosts[] = { NULL, "a.example", "b.a.example", "c.example",
					     "example", "b.other" };
	static const char *const dsts[] = { "192.0.2.1:80", "192.0.2.200:443", "192.1.1.1:53",
					    "[2001:db8::1]:80", "198.51.100.1:80" };
	static const char *const comms[] = { NULL, "curl", "wget" };
	static const char *const exes[] = { NULL, "/bin/curl", "/usr/bin/wget" };
	unsigned seed = 12345;
	int mismatches = 0;

	for (int set = 0; set < 200; set++) {
		const char *lines[40];
		char buf[40][128];
		int n = 1 + rand_r(&seed) % 40;
		struct rules *r;

		for (int i = 0; i < n; i++) {
			const char *fmt = pool[rand_r(&seed) % 21];

			snprintf(buf[i], sizeof(buf[i]), fmt, rand_r(&seed) % 2 ? "DIRECT" : "REJECT");
			if (rand_r(&seed) % 30 == 0)
				snprintf(buf[i], sizeof(buf[i]), "MATCH,tor");
			lines[i] = buf[i];
		}
		r = build(lines, n);
		for (int k = 0; k < 100; k++) {
			struct conn c = { dsts[rand_r(&seed) % 5],
					  rand_r(&seed) % 2 ? "udp" : "tcp",
					  hosts[rand_r(&seed) % 6], rand_r(&seed) % 2,
					  (const char *[]){ NULL, "-", "192.0.2.9",
							    "198.51.100.2" }[rand_r(&seed) % 4],
					  comms[rand_r(&seed) % 3], exes[rand_r(&seed) % 3],
					  rand_r(&seed) % 2 ? "x1/y" : "z", (uint32_t)(rand_r(&seed) % 6) };
			struct sockaddr_storage dst, res;
			struct rule_input in;
			struct rule_result a, b;
			int ra, rb;

			fill(&c, &in, &dst, &res);
			ra = rules_match(r, &in, &a);
			rb = rules_match_linear(r, &in, &b);
			if (ra != rb || a.rule != b.rule)
				mismatches++;
		}
		rules_unref(r);
	}
	CHECK(mismatches == 0);
}

/* PROCESS-NAME and PROCESS-PATH take the executable from /proc. */
static void exe_lookup(void)
{
	char exe[4096], want[4096];
	ssize_t n = readlink("/proc/self/exe", want, sizeof(want) - 1);

	CHECK(n > 0);
	want[n > 0 ? n : 0] = 0;
	CHECK(procinfo_exe((uint32_t)getpid(), exe, sizeof(exe)) == 0);
	CHECK_STREQ(exe, want);
	CHECK(strstr(exe, "test_rules") != NULL);
	CHECK(procinfo_exe((uint32_t)getpid(), exe, 4) < 0);
	CHECK(procinfo_exe(0x7ffffff0u, exe, sizeof(exe)) < 0);
}

int main(void)
{
	RUN("rules", match_table);
	RUN("rules", targets);
	RUN("rules", bad_lines);
	RUN("rules", indexed_equals_linear);
	RUN("rules", exe_lookup);
	CHECK_EXIT();
}
