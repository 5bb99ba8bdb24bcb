/* The TPROXY rules, built once as a list of steps (a command, its input,
 * the commands that undo it, and why it is there) that --print shows,
 * --apply runs and records, --remove undoes from the record.
 *
 * What a working TPROXY setup needs, and where each piece may go:
 *  - TPROXY is a PREROUTING-only target (mangle): it finds a transparent
 *    socket for a packet that arrives from outside, keeps its destination
 *    and marks it.  It does not exist in OUTPUT.
 *  - The mark must meet `ip rule fwmark M lookup T` and a `local` default
 *    route on lo in table T: that is what makes the kernel deliver a packet
 *    for a foreign address to this host instead of forwarding it.
 *  - This host's own traffic (--local) has to come back in: OUTPUT marks
 *    it (a `route` chain, so that the kernel routes it again), the policy
 *    route sends it through lo, and it arrives in PREROUTING like any
 *    other host's, where TPROXY takes it.
 *  - The proxy's own packets carry its SO_MARK and are left alone, or its
 *    connections out would come back to it; so must packets to this
 *    host's addresses, or the listener would take its own replies. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "nftrules.h"

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			fprintf(stderr, "sproxy-bpf: out of memory\n");
			exit(1);
		}
		b->p = p;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static struct step *add_step(struct plan *p, const char *why)
{
	struct step *s = &p->s[p->n++];

	memset(s, 0, sizeof(*s));
	snprintf(s->why, sizeof(s->why), "%s", why);
	return s;
}

int rules_add_cidr(struct rules_opts *r, const char *s, char *err, size_t errlen)
{
	char buf[64], *slash;
	unsigned char a[16];
	int v6 = strchr(s, ':') != NULL, max = v6 ? 128 : 32;
	long bits = max;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash) {
		*slash++ = 0;
		if (!*slash || strspn(slash, "0123456789") != strlen(slash) || strlen(slash) > 3 ||
		    (bits = strtol(slash, NULL, 10)) > max)
			goto bad;
	}
	if (strlen(s) >= sizeof(buf) || inet_pton(v6 ? AF_INET6 : AF_INET, buf, a) != 1)
		goto bad;
	if ((v6 ? r->n_cidr6 : r->n_cidr4) == 64) {
		snprintf(err, errlen, "at most 64 --cidr of a family");
		return -1;
	}
	if (v6)
		r->cidr6[r->n_cidr6++] = s;
	else
		r->cidr4[r->n_cidr4++] = s;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not an address or ADDRESS/PREFIX", s);
	return -1;
}

/* --- nft ------------------------------------------------------------------ */

static void nft_list(struct sb *b, const char *const *v, int n, int quote)
{
	sb_printf(b, n > 1 ? "{ " : "");
	for (int i = 0; i < n; i++)
		sb_printf(b, "%s%s%s%s", i ? ", " : "", quote ? "\"" : "", v[i], quote ? "\"" : "");
	sb_printf(b, n > 1 ? " }" : "");
}

/* One TPROXY rule for a family's sources (fam: "ip", "ip6", or NULL for
 * any source). */
static void nft_tproxy(struct sb *b, const struct rules_opts *r, const char *fam,
		       const char *const *cidrs, int n)
{
	sb_printf(b, "\t\t");
	if (r->n_ifaces) {
		sb_printf(b, "iifname ");
		nft_list(b, r->ifaces, r->n_ifaces, 1);
		sb_printf(b, " ");
	}
	if (fam) {
		sb_printf(b, "%s saddr ", fam);
		nft_list(b, cidrs, n, 0);
		sb_printf(b, " ");
	}
	sb_printf(b, "meta l4proto { tcp, udp } tproxy %s%sto :%u meta mark set 0x%x accept\n",
		  fam ? fam : "", fam ? " " : "", r->port, r->mark);
}

static char *nft_script(const struct rules_opts *r, const char *family)
{
	struct sb b = { 0 };
	int restricted = r->n_ifaces || r->n_cidr4 || r->n_cidr6;

	sb_printf(&b, "table %s %s {\n", family, RULES_NAME);
	sb_printf(&b, "\tchain prerouting {\n"
		  "\t\t# mangle priority: before routing decides, the only place\n"
		  "\t\t# TPROXY works.\n"
		  "\t\ttype filter hook prerouting priority mangle; policy accept;\n"
		  "\t\t# To this host itself (its services, the listener), broadcast\n"
		  "\t\t# and multicast: not proxied, and returned first.\n"
		  "\t\tfib daddr type { local, broadcast, multicast } return\n"
		  "\t\t# A packet of a connection the proxy already holds: to its\n"
		  "\t\t# socket, with the mark that picks the local route.\n"
		  "\t\tmeta l4proto { tcp, udp } socket transparent 1 meta mark set 0x%x accept\n",
		  r->mark);
	if (r->local && restricted)
		sb_printf(&b, "\t\t# This host's own traffic (marked in output) comes back on lo.\n"
			  "\t\tiifname \"lo\" meta mark 0x%x meta l4proto { tcp, udp } "
			  "tproxy to :%u meta mark set 0x%x accept\n", r->mark, r->port, r->mark);
	sb_printf(&b, "\t\t# TCP and UDP%s%s: to the listener on port %u, destination\n"
		  "\t\t# kept; the mark sends it up the policy route (table %u).\n",
		  r->n_ifaces ? " from the given interfaces" : "",
		  r->n_cidr4 || r->n_cidr6 ? " from the given sources" : "", r->port, r->table);
	if (!r->n_cidr4 && !r->n_cidr6) {
		nft_tproxy(&b, r, NULL, NULL, 0);
	} else {
		if (r->n_cidr4)
			nft_tproxy(&b, r, "ip", r->cidr4, r->n_cidr4);
		if (r->n_cidr6 && r->ipv6)
			nft_tproxy(&b, r, "ip6", r->cidr6, r->n_cidr6);
	}
	sb_printf(&b, "\t}\n");
	if (r->local)
		sb_printf(&b, "\tchain output {\n"
			  "\t\t# A route chain: a packet whose mark changes here is\n"
			  "\t\t# routed again, by the policy route.  No TPROXY here: it\n"
			  "\t\t# only works in prerouting.  The first route lookup comes\n"
			  "\t\t# before this chain: a destination needs a route in the\n"
			  "\t\t# main table (a default route) to get here at all.\n"
			  "\t\ttype route hook output priority mangle; policy accept;\n"
			  "\t\t# The proxy's own packets (its SO_MARK): out as they are,\n"
			  "\t\t# or its connections would come back to it.\n"
			  "\t\tmeta mark 0x%x return\n"
			  "\t\tfib daddr type { local, broadcast, multicast } return\n"
			  "\t\t# This host's TCP and UDP: marked, so that table %u sends\n"
			  "\t\t# it through lo back to prerouting, where TPROXY takes it.\n"
			  "\t\tmeta l4proto { tcp, udp } meta mark set 0x%x\n"
			  "\t}\n", r->daemon_mark, r->table, r->mark);
	sb_printf(&b, "}\n");
	return b.p;
}

/* --- iptables ------------------------------------------------------------- */

#define IPT_DIV "SPROXY_BPF_DIVERT"
#define IPT_OUT "SPROXY_BPF_OUT"

static void ipt_tproxy(struct sb *b, const struct rules_opts *r, const char *iface,
		       const char *cidr)
{
	for (int k = 0; k < 2; k++)
		sb_printf(b, "-A " IPT_PRE "%s%s%s%s -p %s -j TPROXY --on-port %u "
			  "--tproxy-mark 0x%x/0xffffffff\n", iface ? " -i " : "", iface ? iface : "",
			  cidr ? " -s " : "", cidr ? cidr : "", k ? "udp" : "tcp", r->port, r->mark);
}

static char *ipt_script(const struct rules_opts *r, int v6)
{
	const char *const *cidrs = v6 ? r->cidr6 : r->cidr4;
	int n_cidr = v6 ? r->n_cidr6 : r->n_cidr4, any = !r->n_cidr4 && !r->n_cidr6;
	struct sb b = { 0 };

	sb_printf(&b, "*mangle\n:" IPT_PRE " - [0:0]\n:" IPT_DIV " - [0:0]\n");
	if (r->local)
		sb_printf(&b, ":" IPT_OUT " - [0:0]\n");
	sb_printf(&b, "# To this host itself, %smulticast: not proxied, returned first.\n"
		  "-A " IPT_PRE " -m addrtype --dst-type LOCAL -j RETURN\n"
		  "-A " IPT_PRE " -m addrtype --dst-type MULTICAST -j RETURN\n",
		  v6 ? "" : "broadcast and ");
	if (!v6)
		sb_printf(&b, "-A " IPT_PRE " -m addrtype --dst-type BROADCAST -j RETURN\n");
	sb_printf(&b, "# A packet of a connection the proxy already holds: to its socket,\n"
		  "# with the mark that picks the local route.\n"
		  "-A " IPT_PRE " -p tcp -m socket --transparent -j " IPT_DIV "\n"
		  "-A " IPT_PRE " -p udp -m socket --transparent -j " IPT_DIV "\n"
		  "-A " IPT_DIV " -j MARK --set-mark 0x%x\n-A " IPT_DIV " -j ACCEPT\n", r->mark);
	if (r->local && (r->n_ifaces || !any))
		sb_printf(&b, "# This host's own traffic (marked in OUTPUT) comes back on lo.\n"
			  "-A " IPT_PRE " -i lo -m mark --mark 0x%x -p tcp -j TPROXY --on-port %u "
			  "--tproxy-mark 0x%x/0xffffffff\n"
			  "-A " IPT_PRE " -i lo -m mark --mark 0x%x -p udp -j TPROXY --on-port %u "
			  "--tproxy-mark 0x%x/0xffffffff\n",
			  r->mark, r->port, r->mark, r->mark, r->port, r->mark);
	sb_printf(&b, "# TCP and UDP: to the listener on port %u, destination kept; the\n"
		  "# mark sends it up the policy route (table %u).  Only in PREROUTING.\n",
		  r->port, r->table);
	for (int i = 0; i < (r->n_ifaces ? r->n_ifaces : 1); i++) {
		const char *ifc = r->n_ifaces ? r->ifaces[i] : NULL;

		if (any)
			ipt_tproxy(&b, r, ifc, NULL);
		for (int j = 0; j < n_cidr; j++)
			ipt_tproxy(&b, r, ifc, cidrs[j]);
	}
	sb_printf(&b, "-A PREROUTING -j " IPT_PRE "\n");
	if (r->local)
		sb_printf(&b, "# This host's TCP and UDP: marked, so that the policy route sends it\n"
			  "# through lo back to PREROUTING; the proxy's own (mark 0x%x) and\n"
			  "# this host's addresses are left alone.  No TPROXY in OUTPUT.\n"
			  "-A " IPT_OUT " -m mark --mark 0x%x -j RETURN\n"
			  "-A " IPT_OUT " -m addrtype --dst-type LOCAL -j RETURN\n"
			  "-A " IPT_OUT " -m addrtype --dst-type MULTICAST -j RETURN\n"
			  "%s"
			  "-A " IPT_OUT " -p tcp -j MARK --set-mark 0x%x\n"
			  "-A " IPT_OUT " -p udp -j MARK --set-mark 0x%x\n"
			  "-A OUTPUT -j " IPT_OUT "\n", r->daemon_mark, r->daemon_mark,
			  v6 ? "" : "-A " IPT_OUT " -m addrtype --dst-type BROADCAST -j RETURN\n",
			  r->mark, r->mark);
	sb_printf(&b, "COMMIT\n");
	return b.p;
}

/* --- the plan --------------------------------------------------------------- */

static void route_steps(struct plan *p, const struct rules_opts *r, int v6)
{
	struct step *s;
	const char *f = v6 ? "-6" : "-4", *dflt = v6 ? "::/0" : "0.0.0.0/0";

	s = add_step(p, "Packets with the mark look up their own table...");
	snprintf(s->cmd, sizeof(s->cmd), "ip %s rule add fwmark 0x%x lookup %u", f, r->mark, r->table);
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "ip %s rule del fwmark 0x%x lookup %u",
		 f, r->mark, r->table);
	s = add_step(p, "...where every destination is a `local` route on lo: the packet is\n"
		     "delivered to this host (to the transparent socket) instead of being\n"
		     "forwarded.  Any other kind of route, or another device, would send\n"
		     "it on.");
	snprintf(s->cmd, sizeof(s->cmd), "ip %s route add local %s dev lo table %u", f, dflt, r->table);
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "ip %s route del local %s dev lo table %u",
		 f, dflt, r->table);
}

static void ipt_undo(struct step *s, const struct rules_opts *r, const char *bin)
{
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -D PREROUTING -j " IPT_PRE, bin);
	if (r->local)
		snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -D OUTPUT -j " IPT_OUT, bin);
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -F " IPT_PRE, bin);
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -X " IPT_PRE, bin);
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -F " IPT_DIV, bin);
	snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -X " IPT_DIV, bin);
	if (r->local) {
		snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -F " IPT_OUT, bin);
		snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "%s -w -t mangle -X " IPT_OUT, bin);
	}
}

void rules_build(struct plan *p, const struct rules_opts *r)
{
	struct step *s;
	const char *fam = r->ipv6 ? "inet" : "ip";

	memset(p, 0, sizeof(*p));
	if (r->backend == RULES_NFT) {
		s = add_step(p, "One table of our own: removing it removes every rule below.");
		snprintf(s->cmd, sizeof(s->cmd), "nft -f -");
		s->input = nft_script(r, fam);
		snprintf(s->undo[s->n_undo++], sizeof(s->undo[0]), "nft delete table %s " RULES_NAME, fam);
	} else {
		for (int v6 = 0; v6 <= r->ipv6; v6++) {
			s = add_step(p, v6 ? "The same for IPv6." : "Chains of our own in the mangle "
				     "table, each hooked by one jump rule.");
			snprintf(s->cmd, sizeof(s->cmd), "%s -w --noflush",
				 v6 ? "ip6tables-restore" : "iptables-restore");
			s->input = ipt_script(r, v6);
			ipt_undo(s, r, v6 ? "ip6tables" : "iptables");
		}
	}
	route_steps(p, r, 0);
	if (r->ipv6)
		route_steps(p, r, 1);
}

void rules_plan_free(struct plan *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->s[i].input);
}

static void print_comment(FILE *fp, const char *text)
{
	const char *line = text, *nl;

	while (*line) {
		nl = strchr(line, '\n');
		fprintf(fp, "# %.*s\n", (int)(nl ? nl - line : (long)strlen(line)), line);
		if (!nl)
			break;
		line = nl + 1;
	}
}

void rules_print(const struct plan *p, const struct rules_opts *r)
{
	printf("#!/bin/sh\n"
	       "# TPROXY rules for 'sproxy-bpf tproxy' on port %u: route mark 0x%x, table %u,\n"
	       "# the proxy's own packets carry mark 0x%x.  IPv4%s; backend %s;\n# %s.\n"
	       "# 'sproxy-bpf rules --apply' with the same options applies this, all or\n"
	       "# nothing, and --remove takes back exactly what it applied.\n"
	       "set -e\n", r->port, r->mark, r->table, r->daemon_mark, r->ipv6 ? " and IPv6" : " only",
	       r->backend == RULES_NFT ? "nft" : "iptables",
	       r->local ? "other hosts' traffic and this host's own (--local)"
			: "other hosts' traffic (routed through this host)");
	for (int i = 0; i < p->n; i++) {
		printf("\n");
		print_comment(stdout, p->s[i].why);
		if (p->s[i].input)
			printf("%s <<'EOF'\n%sEOF\n", p->s[i].cmd, p->s[i].input);
		else
			printf("%s\n", p->s[i].cmd);
	}
	printf("\n# To take it back by hand:\n");
	for (int i = p->n - 1; i >= 0; i--)
		for (int k = 0; k < p->s[i].n_undo; k++)
			printf("#   %s\n", p->s[i].undo[k]);
}
