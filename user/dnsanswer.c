/* FakeIP answers (see dnsserver.h): A/AAAA from the pool, PTR for fake
 * addresses, and the names that must get real answers instead. */
#include "dnsserver_int.h"

#include "fakeip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

static int under(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl = strlen(suffix);

	if (nl < sl || strcasecmp(name + nl - sl, suffix) != 0)
		return 0;
	return nl == sl || name[nl - sl - 1] == '.';
}

/* Names that get real answers: see dnsserver.h. */
static int wants_real(const struct dns_server *srv, const char *name)
{
	if (!name[0] || strchr(name, '\\') || dns_name_is_ip_literal(name) ||
	    under(name, "arpa") || under(name, "localhost"))
		return 1;
	for (size_t i = 0; i < srv->n_exclude; i++)
		if (under(name, srv->exclude[i]))
			return 1;
	return 0;
}

/* New names per process, counted in windows of one hold: a process
 * cycling through names would otherwise take every address of the pool
 * (a /15 in seconds) and block everyone else's new names.  A small table:
 * a process that loses its slot to another starts counting again. */
static struct proc_names *proc_slot(struct dns_server *srv, uint32_t tgid)
{
	struct proc_names *t = srv->procs, *oldest = NULL;
	uint64_t now = dns_now_seconds();

	if (!tgid)
		return NULL;
	for (unsigned k = 0; k < 8; k++) {
		struct proc_names *p = &t[(tgid + k) % DNS_PROC_SLOTS];
		if (p->tgid == tgid || !p->tgid) {
			if (p->tgid != tgid || now - p->since >= srv->hold) {
				p->tgid = tgid;
				p->since = now;
				p->count = 0;
			}
			return p;
		}
		if (!oldest || p->since < oldest->since)
			oldest = p;
	}
	oldest->tgid = tgid;
	oldest->since = now;
	oldest->count = 0;
	return oldest;
}

void dns_server_on_fake(struct dns_server *srv, dns_fake_cb cb, void *arg)
{
	srv->on_fake = cb;
	srv->on_fake_arg = arg;
}

static void fake_told(struct dns_server *srv, const char *name, int v4,
		      const struct in_addr *a4, const struct in6_addr *a6)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr = *a4 };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = *a6 };

	srv->on_fake(srv->on_fake_arg, name, v4 ? (struct sockaddr *)&s4
					      : (struct sockaddr *)&s6);
}

/* Answers A/AAAA from the pool: 1 when answered. */
int dns_answer_fake(struct dns_server *srv, const struct dns_query *q,
		       dns_reply_cb cb, void *arg)
{
	struct in_addr a4;
	struct in6_addr a6;
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_WIRE_MAX + 4 + 12 + 16];
	char as[INET6_ADDRSTRLEN];

	if (wants_real(srv, q->qname))
		return 0;
	int is_new = !fakeip_mapped(srv->pool, q->qname);
	struct proc_names *pn = is_new ? proc_slot(srv, srv->query_tgid) : NULL;
	if (pn && pn->count >= srv->names_per_process) {
		dns_warn_limited(srv, "pid %u got %u new FakeIP names within %u s "
				 "(--fakeip-per-process); answering %s with its "
				 "real address", pn->tgid, pn->count, srv->hold,
				 q->qname);
		return 0;
	}
	if (fakeip_assign(srv->pool, q->qname, &a4, &a6) < 0) {
		if (errno == EBUSY)
			dns_warn_limited(srv, "FakeIP pool full: all %zu addresses "
					 "were used less than %u s ago and may still "
					 "be held by clients; answering %s with its "
					 "real address (a larger --fakeip-range helps)",
					 fakeip_capacity(srv->pool), srv->hold,
					 q->qname);
		return 0;
	}
	if (pn)
		pn->count++;
	dns_store_schedule(srv);
	if (srv->on_fake)
		fake_told(srv, q->qname, q->qtype == DNS_TYPE_A, &a4, &a6);
	ssize_t n = q->qtype == DNS_TYPE_A
		? dns_build_addr_answer(q, &a4, 4, srv->ttl, buf, sizeof(buf))
		: dns_build_addr_answer(q, &a6, 16, srv->ttl, buf, sizeof(buf));
	if (n < 0)
		return 0;
	if (srv->verbose)
		dns_log(srv, 1, "%s %s -> %s (fake)", q->qtype == DNS_TYPE_A ?
		     "A" : "AAAA", q->qname, q->qtype == DNS_TYPE_A ?
		     inet_ntop(AF_INET, &a4, as, sizeof(as)) :
		     inet_ntop(AF_INET6, &a6, as, sizeof(as)));
	dns_deliver(srv, cb, arg, buf, (size_t)n, NULL);
	return 1;
}

/* PTR for an address in a fake range: 1 when answered. */
int dns_answer_ptr(struct dns_server *srv, const struct dns_query *q,
		      dns_reply_cb cb, void *arg)
{
	union { struct in_addr a4; struct in6_addr a6; } addr;
	uint8_t buf[DNS_HDR_LEN + 2 * DNS_NAME_WIRE_MAX + 4 + 12];
	const char *name;
	int af = dns_parse_ptr_name(q->qname, &addr);

	if (af == AF_INET && fakeip_contains4(srv->pool, &addr.a4))
		name = fakeip_lookup4(srv->pool, &addr.a4);
	else if (af == AF_INET6 && fakeip_contains6(srv->pool, &addr.a6))
		name = fakeip_lookup6(srv->pool, &addr.a6);
	else
		return 0;
	ssize_t n = name ? dns_build_ptr_answer(q, name, srv->ttl, buf,
						  sizeof(buf)) : -1;
	dns_log(srv, 1, "PTR %s -> %s (fake)", q->qname, name ? name : "NXDOMAIN");
	if (n < 0) {
		dns_reply_error(srv, q, DNS_RCODE_NXDOMAIN, cb, arg, NULL);
		return 1;
	}
	dns_deliver(srv, cb, arg, buf, (size_t)n, NULL);
	return 1;
}


const char *dns_server_fake_name(struct dns_server *srv,
				 const struct sockaddr *addr,
				 int *in_fake_range)
{
	struct in_addr a4;
	const struct in6_addr *a6 = NULL;
	int in = 0;
	const char *name = NULL;

	if (srv->pool && addr->sa_family == AF_INET) {
		a4 = ((const struct sockaddr_in *)(const void *)addr)->sin_addr;
	} else if (srv->pool && addr->sa_family == AF_INET6) {
		a6 = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(&a4, &a6->s6_addr[12], 4);
			a6 = NULL;
		}
	} else {
		goto out;
	}
	if (a6) {
		in = fakeip_contains6(srv->pool, a6);
		name = in ? fakeip_lookup6(srv->pool, a6) : NULL;
	} else {
		in = fakeip_contains4(srv->pool, &a4);
		name = in ? fakeip_lookup4(srv->pool, &a4) : NULL;
	}
out:
	if (in_fake_range)
		*in_fake_range = in;
	return name;
}

int dns_server_fakeip_fill(const struct dns_server *srv, size_t *used, size_t *capacity)
{
	if (!srv->pool)
		return -1;
	*used = fakeip_count(srv->pool);
	*capacity = fakeip_capacity(srv->pool);
	return 0;
}
