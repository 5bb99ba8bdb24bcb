/* A TCP session's route: the name it goes by (its FakeIP name, or one
 * sniffed from its first bytes), the policy's decision, and the connection
 * out through the connector, direct or by an upstream.  Data flows one
 * way: proxy.c hands a session here once its original destination and
 * process are known; session_connected takes it back to relay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "daemon.h"
#include "dnsserver.h"
#include "policy.h"
#include "policyset.h"
#include "proxy_int.h"
#include "rules.h"
#include "sniffwait.h"
#include "upstream.h"

static void start_sniff(struct session *s);

/* Route names are few (rule targets, upstream names) and sessions many:
 * each name is kept once, for the daemon's life, where every session's
 * log line can point (a reload frees the rules' own copy). */
static const char *route_name(const char *name)
{
	static struct route_name {
		struct route_name *next;
		char name[];
	} *names;
	struct route_name *n;
	size_t len = strlen(name);

	for (n = names; n; n = n->next)
		if (!strcmp(n->name, name))
			return n->name;
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return NULL;
	memcpy(n->name, name, len + 1);
	n->next = names;
	names = n;
	return n->name;
}

void sa46_to_storage(const union sa46 *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, a, sizeof(*a));
}

/* Out on the decided route.  An upstream that takes names gets the
 * sniffed one in place of the address (--sniff-override). */
static void connect_out(struct session *s)
{
	const struct options *o = s->d->opt;
	struct target t;

	sa46_to_storage(&s->dst, &t.addr);
	t.host[0] = 0;
	if (s->host && (!s->sniffed || (s->up && o->sniff_override &&
					upstream_carries(o, s->up, SOCK_STREAM))))
		snprintf(t.host, sizeof(t.host), "%s", s->host);
	s->creq = connector_start_via(s->d, s->up, &t, SOCK_STREAM, session_connected, s);
	if (!s->creq)
		session_end(s, "error", "out of memory");
}

/* The policy's answer: rejected at once (the application sees its
 * connection reset), or out, through an upstream or not. */
static void on_decided(const struct rule_result *out, struct policyset *ps, void *arg)
{
	struct session *s = arg;
	const struct options *o = s->d->opt;
	char err[200];

	s->preq = NULL;
	s->decided = 1;
	s->rule = out->rule;
	if (!(s->route = route_name(out->target))) {
		session_end(s, "error", "out of memory");
		return;
	}
	if (out->action == RULE_REJECT) {
		session_close(s, "rejected", NULL, 1);
		return;
	}
	if (policy_upstream(ps, out, &s->up, &s->ps, err, sizeof(err)) < 0) {
		session_end(s, "error", err);
		return;
	}
	if (s->up && !(s->route = route_name(s->up->name))) {
		session_end(s, "error", "out of memory");
		return;
	}
	s->via = upstream_via(o, s->up, SOCK_STREAM);
	/* Rules that needed no name decided without one; the upstream may
	 * still want it. */
	if (!s->sniff_tried && s->up && o->sniff && o->sniff_override && !s->host &&
	    upstream_carries(o, s->up, SOCK_STREAM)) {
		start_sniff(s);
		return;
	}
	connect_out(s);
}

/* Original destination and process known, and the name if there is one:
 * the one place a TCP connection's route is decided. */
static void decide(struct session *s)
{
	struct policy_conn c = {
		.dst = &s->dst.sa,
		.network = RULE_NET_TCP,
		.host = s->host,
		.fakeip = s->host && !s->sniffed,
		.proc = s->have_proc ? &s->proc : NULL,
	};

	if (policy_route(s->d, &c, on_decided, s, &s->preq) < 0)
		session_end(s, "error", "out of memory");
}

static void on_sniffed(const char *host, enum sniff_kind kind, void *arg)
{
	struct session *s = arg;

	s->sw = NULL;
	if (host) {
		if (!(s->host = strndup(host, 255))) {
			session_end(s, "error", "out of memory");
			return;
		}
		s->sniffed = kind;
		s->live.host = s->host;
	}
	if (s->decided)
		connect_out(s);
	else
		decide(s);
}

static void start_sniff(struct session *s)
{
	s->sniff_tried = 1;
	s->sw = sniff_wait_start(s->d->base, s->cfd, s->d->opt->sniff_timeout, on_sniffed, s);
	if (!s->sw)
		session_end(s, "error", "out of memory");
}

void session_route(struct session *s)
{
	struct daemon *d = s->d;
	char err[200], a[ADDR_STRLEN];
	const char *name;
	int in_range = 0;

	name = dns_server_fake_name(d->dns, &s->dst.sa, &in_range);
	if (in_range && !name) {
		snprintf(err, sizeof(err), "%s is a FakeIP address that is not mapped to "
			 "any name (handed out before a restart without --fakeip-store?)",
			 addr_str(&s->dst.sa, a, sizeof(a)));
		session_end(s, "refused", err);
		return;
	}
	if (name && !(s->host = strndup(name, 255))) {
		session_end(s, "error", "out of memory");
		return;
	}
	s->live = (struct live){ .proto = "tcp", .proc = s->have_proc ? &s->proc : NULL,
		.src = &s->src.sa, .dst = &s->dst.sa, .host = s->host ? s->host : "", .up = &s->relay.up.bytes,
		.down = &s->relay.down.bytes, .start = &s->start, .via = &s->via };
	live_add(&d->live, &s->live);
	/* A name is worth waiting for when the destination is a real
	 * address and some rule looks at names; otherwise not a moment. */
	if (d->opt->sniff && !s->host && (rules_needs(d->policy->rules) & RULES_NEED_HOST))
		start_sniff(s);
	else
		decide(s);
}

void session_route_cancel(struct session *s)
{
	sniff_wait_cancel(s->sw);
	s->sw = NULL;
	policy_cancel(s->preq);
	s->preq = NULL;
}
