/* A TCP session's route: the name it goes by (its FakeIP name, or one
 * sniffed from its first bytes), the policy's decision, and the connection
 * out through the connector, direct or by an upstream.  Data flows one
 * way: proxy.c hands a session here once its original destination and
 * process are known; session_connected takes it back to relay. */
#include <stdio.h>
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

/* Out on the decided route.  An upstream that takes names gets the
 * sniffed one in place of the address (--sniff-override). */
static void connect_out(struct session *s)
{
	const struct options *o = s->d->opt;
	struct target t = s->t;

	if (s->up && o->sniff_override && s->sniffed && !t.host[0] &&
	    upstream_carries(o, s->up, SOCK_STREAM))
		snprintf(t.host, sizeof(t.host), "%s", s->sniffed_host);
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
	s->action = out->action;
	snprintf(s->route, sizeof(s->route), "%s", out->target);
	if (s->action == RULE_REJECT) {
		session_close(s, "rejected", NULL, 1);
		return;
	}
	if (policy_upstream(ps, out, &s->up, &s->ps, err, sizeof(err)) < 0) {
		session_end(s, "error", err);
		return;
	}
	if (s->up)
		snprintf(s->route, sizeof(s->route), "%s", s->up->name);
	s->via = upstream_via(o, s->up, SOCK_STREAM);
	/* Rules that needed no name decided without one; the upstream may
	 * still want it. */
	if (!s->sniff_tried && s->up && o->sniff && o->sniff_override && !s->t.host[0] &&
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
		.dst = (struct sockaddr *)&s->t.addr,
		.network = RULE_NET_TCP,
		.host = s->t.host[0] ? s->t.host : s->sniffed ? s->sniffed_host : NULL,
		.fakeip = s->t.host[0] != 0,
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
		snprintf(s->sniffed_host, sizeof(s->sniffed_host), "%s", host);
		s->sniffed = kind;
		s->live.host = s->sniffed_host;
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

	name = dns_server_fake_name(d->dns, (struct sockaddr *)&s->t.addr, &in_range);
	if (in_range && !name) {
		snprintf(err, sizeof(err), "%s is a FakeIP address that is not mapped to "
			 "any name (handed out before a restart without --fakeip-store?)",
			 addr_str((struct sockaddr *)&s->t.addr, a, sizeof(a)));
		session_end(s, "refused", err);
		return;
	}
	if (name)
		snprintf(s->t.host, sizeof(s->t.host), "%s", name);
	s->live = (struct live){ .proto = "tcp", .proc = s->have_proc ? &s->proc : NULL,
		.src = &s->src, .dst = &s->t.addr, .host = s->t.host, .up = &s->relay.up.bytes,
		.down = &s->relay.down.bytes, .start = &s->start, .via = &s->via };
	live_add(&d->live, &s->live);
	/* A name is worth waiting for when the destination is a real
	 * address and some rule looks at names; otherwise not a moment. */
	if (d->opt->sniff && !s->t.host[0] && (rules_needs(d->policy->rules) & RULES_NEED_HOST))
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
