/* The TPROXY rules as built, for a table of option sets and both
 * backends: TPROXY only in PREROUTING, every route in the table `local` on
 * lo, the daemon's mark left alone, a family without --cidr not captured
 * when sources are restricted, undo steps in the right order; --cidr
 * values; and the gateway log line (capture=tproxy proc=none client=). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "check.h"
#include "log.h"
#include "nftrules.h"

static struct rules_opts base(void)
{
	struct rules_opts r;

	memset(&r, 0, sizeof(r));
	r.port = 3333;
	r.mark = 0x5354;
	r.daemon_mark = 0x5350;
	r.table = 3333;
	r.action = RULES_PRINT;
	return r;
}

/* The lines of text (nft script or iptables-restore input) that are not
 * comments. */
static int output_chain_has_tproxy(const char *script, int nft)
{
	const char *p = script;
	int in_output = 0;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[512];

		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		if (nft && strstr(line, "chain output"))
			in_output = 1;
		else if (nft && strstr(line, "chain prerouting"))
			in_output = 0;
		if (!strchr(line, '#') && strcasestr(line, "tproxy") &&
		    (nft ? in_output : strstr(line, "-A SPROXY_BPF_OUT") || strstr(line, "-A OUTPUT")))
			return 1;
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

static void check_plan(const struct rules_opts *r)
{
	struct plan p;
	int routes = 0, tproxy = 0;

	rules_build(&p, r);
	for (int i = 0; i < p.n; i++) {
		const struct step *s = &p.s[i];

		if (strstr(s->cmd, " route add")) {
			routes++;
			CHECK(strstr(s->cmd, " route add local ") != NULL);
			CHECK(strstr(s->cmd, " dev lo table 3333") != NULL);
		}
		if (s->input) {
			CHECK(!output_chain_has_tproxy(s->input, r->backend == RULES_NFT));
			tproxy |= strcasestr(s->input, "tproxy") != NULL;
			if (r->local) {
				char want[64];

				snprintf(want, sizeof(want), "mark 0x%x", r->daemon_mark);
				CHECK(strstr(s->input, want) != NULL);
			}
		}
		CHECK(s->n_undo > 0);
	}
	CHECK(tproxy);
	CHECK(routes == (r->ipv6 ? 2 : 1));
	rules_plan_free(&p);
}

static void only_prerouting_and_local_routes(void)
{
	for (int b = 0; b < 2; b++) {
		for (int v = 0; v < 8; v++) {
			struct rules_opts r = base();

			r.backend = b ? RULES_IPTABLES : RULES_NFT;
			r.local = v & 1;
			r.ipv6 = (v >> 1) & 1;
			if (v & 4) {
				r.ifaces[r.n_ifaces++] = "lan0";
				r.cidr4[r.n_cidr4++] = "192.0.2.0/24";
			}
			check_plan(&r);
			if (check_failed_now) {
				printf("  backend %d, variant %d\n", b, v);
				return;
			}
		}
	}
}

/* Sources restricted to IPv4 ones: IPv6 is not captured at all. */
static void family_without_cidr_not_captured(void)
{
	struct rules_opts r = base();
	struct plan p;

	r.ipv6 = 1;
	r.backend = RULES_IPTABLES;
	r.cidr4[r.n_cidr4++] = "192.0.2.0/24";
	rules_build(&p, &r);
	CHECK(strstr(p.s[0].cmd, "iptables-restore") != NULL);
	CHECK(strstr(p.s[0].input, "-s 192.0.2.0/24 -p tcp -j TPROXY") != NULL);
	CHECK(strstr(p.s[1].cmd, "ip6tables-restore") != NULL);
	CHECK(strstr(p.s[1].input, "-j TPROXY") == NULL);
	rules_plan_free(&p);
	r.backend = RULES_NFT;
	rules_build(&p, &r);
	CHECK(strstr(p.s[0].input, "ip saddr 192.0.2.0/24 meta l4proto { tcp, udp } tproxy ip to :3333") != NULL);
	CHECK(strstr(p.s[0].input, "tproxy to") == NULL);
	rules_plan_free(&p);
}

static void undo_order(void)
{
	struct rules_opts r = base();
	struct plan p;

	r.local = 1;
	rules_build(&p, &r);
	CHECK_STREQ(p.s[0].undo[0], "nft delete table ip sproxy-bpf");
	CHECK_STREQ(p.s[1].undo[0], "ip -4 rule del fwmark 0x5354 lookup 3333");
	CHECK_STREQ(p.s[2].undo[0], "ip -4 route del local 0.0.0.0/0 dev lo table 3333");
	rules_plan_free(&p);
	r.backend = RULES_IPTABLES;
	rules_build(&p, &r);
	/* The jumps go before their chains can be flushed and deleted. */
	CHECK_STREQ(p.s[0].undo[0], "iptables -w -t mangle -D PREROUTING -j SPROXY_BPF_PRE");
	CHECK_STREQ(p.s[0].undo[1], "iptables -w -t mangle -D OUTPUT -j SPROXY_BPF_OUT");
	CHECK_STREQ(p.s[0].undo[2], "iptables -w -t mangle -F SPROXY_BPF_PRE");
	CHECK_STREQ(p.s[0].undo[3], "iptables -w -t mangle -X SPROXY_BPF_PRE");
	rules_plan_free(&p);
}

static void cidr_values(void)
{
	struct rules_opts r = base();
	char err[128];

	CHECK(rules_add_cidr(&r, "192.0.2.0/24", err, sizeof(err)) == 0);
	CHECK(rules_add_cidr(&r, "192.0.2.7", err, sizeof(err)) == 0);
	CHECK(rules_add_cidr(&r, "2001:db8::/32", err, sizeof(err)) == 0);
	CHECK(r.n_cidr4 == 2 && r.n_cidr6 == 1);
	CHECK(rules_add_cidr(&r, "192.0.2.0/33", err, sizeof(err)) < 0);
	CHECK(rules_add_cidr(&r, "192.0.2.0/", err, sizeof(err)) < 0);
	CHECK(rules_add_cidr(&r, "2001:db8::/129", err, sizeof(err)) < 0);
	CHECK(rules_add_cidr(&r, "lan0", err, sizeof(err)) < 0);
	CHECK(rules_add_cidr(&r, "10.0.0.0/8; reboot", err, sizeof(err)) < 0);
	CHECK(r.n_cidr4 == 2 && r.n_cidr6 == 1);
}

static void gateway_log_line(void)
{
	char path[] = "/tmp/sproxy-bpf-test_nftrules.XXXXXX", line[512] = "";
	struct sockaddr_in6 src = { .sin6_family = AF_INET6, .sin6_port = htons(4242) };
	struct conn_log c = { .proto = "tcp", .result = "ok", .capture = "tproxy",
			      .src = (struct sockaddr *)&src };
	FILE *fp;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	close(fd);
	inet_pton(AF_INET6, "2001:db8:1::2", &src.sin6_addr);
	CHECK(connlog_open(path, 0) == 0);
	connlog_write(&c);
	connlog_close();
	fp = fopen(path, "r");
	if (fp) {
		if (!fgets(line, sizeof(line), fp))
			line[0] = 0;
		fclose(fp);
	}
	unlink(path);
	CHECK(strstr(line, " tcp capture=tproxy proc=none client=2001:db8:1::2 src=[2001:db8:1::2]:4242 ") != NULL);
	CHECK(strstr(line, "pid=") == NULL);
	if (check_failed_now)
		printf("  got: %s", line);
}

int main(void)
{
	RUN("nftrules", only_prerouting_and_local_routes);
	RUN("nftrules", family_without_cidr_not_captured);
	RUN("nftrules", undo_order);
	RUN("nftrules", cidr_values);
	RUN("nftrules", gateway_log_line);
	return check_failed_total ? 1 : 0;
}
