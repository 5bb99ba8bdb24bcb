/* The built-in DNS server (see dnsserver.h): set-up, the dispatcher that
 * decides how each query is answered, and what the parts share (logging,
 * replies).  Forwarding lives in dnsforward.c, FakeIP answers in
 * dnsanswer.c, resolving for the proxy in dnsresolve.c, the store's
 * schedule in dnsstore.c. */
#include "dnsserver_int.h"

#include "fakeip.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>

#include <event2/dns.h>
#include <event2/event.h>

void dns_log(const struct dns_server *srv, int debug, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (debug && !srv->verbose && slog_level < SLOG_DEBUG)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (debug && slog_level < SLOG_DEBUG) /* cfg->verbose alone */
		fprintf(stderr, "sproxy-bpf: debug: dns: %s\n", buf);
	else
		slog(debug ? SLOG_DEBUG : SLOG_WARN, "dns: %s", buf);
}

/* Failures every query can hit (a dead resolver) would flood the log:
 * one line a second, with a count of the ones left out. */
void dns_warn_limited(struct dns_server *srv, const char *fmt, ...)
{
	struct timespec now;
	char buf[800];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (srv->warned_at && now.tv_sec == srv->warned_at) {
		srv->warn_suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (srv->warn_suppressed)
		dns_log(srv, 0, "%s (and %lu more like it)", buf,
		     srv->warn_suppressed);
	else
		dns_log(srv, 0, "%s", buf);
	srv->warned_at = now.tv_sec;
	srv->warn_suppressed = 0;
}

const char *dns_sa_str(const struct sockaddr_storage *ss, char *buf,
			  size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(buf, cap, "%s:%u", a, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(buf, cap, "[%s]:%u", a, ntohs(s->sin6_port));
	}
	return buf;
}

socklen_t dns_sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6);
}

void dns_set_mark(struct dns_server *srv, int fd)
{
	if (!srv->mark)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &srv->mark,
		       sizeof(srv->mark)) == 0)
		return;
	/* Once loudly, then only in verbose mode: it fails for every
	 * socket alike (missing CAP_NET_ADMIN). */
	dns_log(srv, srv->mark_warned++ > 0, "cannot set SO_MARK 0x%x on a "
	     "resolver socket: %s; its packets may be captured again",
	     srv->mark, strerror(errno));
}

/* ---- replies ---- */

/* Every reply goes through here: error (NULL for a good answer) is what
 * dns_server_reply_error returns during cb.  srv may be gone after cb. */
void dns_set_reply_error(struct dns_server *srv, const char *error)
{
	srv->reply_err = NULL;
	if (error) {
		snprintf(srv->errbuf, sizeof(srv->errbuf), "%s", error);
		srv->reply_err = srv->errbuf;
	}
}

void dns_deliver(struct dns_server *srv, dns_reply_cb cb, void *arg,
		    const uint8_t *msg, size_t len, const char *error)
{
	dns_set_reply_error(srv, error);
	cb(msg, len, arg);
}

void dns_reply_error(struct dns_server *srv, const struct dns_query *q,
			int rcode, dns_reply_cb cb, void *arg, const char *error)
{
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_WIRE_MAX + 4];
	ssize_t n = dns_build_error(q, rcode, buf, sizeof(buf));

	if (n < 0)
		dns_deliver(srv, cb, arg, NULL, 0, error ? error : "cannot answer");
	else
		dns_deliver(srv, cb, arg, buf, (size_t)n, error);
}

uint64_t dns_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

const char *dns_server_reply_error(const struct dns_server *srv)
{
	return srv->reply_err;
}

static struct dns_pending *answer_query(struct dns_server *srv, uint32_t tgid,
					const uint8_t *query, size_t len,
					int tcp, dns_reply_cb cb, void *arg)
{
	struct dns_query q;
	const char *why = "";
	char tb[16], err[128];
	int r;

	srv->query_tgid = tgid;
	r = dns_parse_query(query, len, &q, &why);
	if (r < 0) {
		snprintf(err, sizeof(err), "malformed query (%zu bytes): %s",
			 len, why);
		dns_log(srv, 1, "%s; dropped", err);
		dns_deliver(srv, cb, arg, NULL, 0, err);
		return NULL;
	}
	if (r != DNS_RCODE_NOERROR) {
		snprintf(err, sizeof(err), "%s query (%zu bytes): %s",
			 r == DNS_RCODE_NOTIMP ? "unsupported" : "malformed",
			 len, why);
		dns_log(srv, 1, "%s; answered %s", err,
		     r == DNS_RCODE_NOTIMP ? "NOTIMP" : "FORMERR");
		dns_reply_error(srv, &q, r, cb, arg, err);
		return NULL;
	}
	if (srv->pool && q.qclass == DNS_CLASS_IN) {
		if ((q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_AAAA) &&
		    dns_answer_fake(srv, &q, cb, arg))
			return NULL;
		if (q.qtype == DNS_TYPE_PTR && dns_answer_ptr(srv, &q, cb, arg))
			return NULL;
	}
	dns_log(srv, 1, "%s %s -> forwarded (%s)",
	     dns_type_name(q.qtype, tb, sizeof(tb)), q.qname, tcp ? "TCP" : "UDP");
	return dns_forward(srv, &q, query, len, tcp, cb, arg);
}

struct dns_pending *dns_server_query_from(struct dns_server *srv,
					  uint32_t tgid, const uint8_t *query,
					  size_t len, int tcp, dns_reply_cb cb,
					  void *arg)
{
	return answer_query(srv, tgid, query, len, tcp, cb, arg);
}

struct dns_pending *dns_server_query(struct dns_server *srv,
				     const uint8_t *query, size_t len,
				     int tcp, dns_reply_cb cb, void *arg)
{
	return answer_query(srv, 0, query, len, tcp, cb, arg);
}

/* ---- set-up ---- */

/* "lan", ".lan", "*.lan", "+.lan", "lan." -> "lan" (lowercase). */
static char *normalize_suffix(const char *s)
{
	while (*s == '*' || *s == '+' || *s == '.')
		s++;
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0)
		return NULL;
	char *out = strndup(s, n);
	for (char *c = out; c && *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	return out;
}

static int copy_config(struct dns_server *srv, const struct dns_config *cfg,
		       char *err, size_t errlen)
{
	srv->ttl = cfg->ttl ? cfg->ttl : DNS_DEFAULT_TTL;
	srv->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	srv->attempt_ms = cfg->attempt_timeout_ms ? cfg->attempt_timeout_ms
						  : DNS_DEFAULT_ATTEMPT_MS;
	if (srv->attempt_ms > srv->timeout_ms)
		srv->attempt_ms = srv->timeout_ms;
	srv->max_pending = cfg->max_pending ? cfg->max_pending
					    : DNS_DEFAULT_MAX_PENDING;
	srv->mark = cfg->mark;
	srv->verbose = cfg->verbose;
	srv->hold = srv->ttl + DNS_FAKEIP_GRACE;
	srv->names_per_process = cfg->max_names_per_process
		? (unsigned)cfg->max_names_per_process
		: DNS_DEFAULT_NAMES_PER_PROCESS;
	srv->procs = calloc(DNS_PROC_SLOTS, sizeof(*srv->procs));
	if (!srv->procs)
		goto nomem;
	if (cfg->n_resolvers) {
		srv->resolvers = calloc(cfg->n_resolvers, sizeof(*srv->resolvers));
		if (!srv->resolvers)
			goto nomem;
	}
	for (size_t i = 0; i < cfg->n_resolvers; i++) {
		struct sockaddr_storage *ss = &srv->resolvers[srv->n_resolvers];
		*ss = cfg->resolvers[i];
		if (ss->ss_family == AF_INET) {
			struct sockaddr_in *s = (void *)ss;
			if (!s->sin_port)
				s->sin_port = htons(53);
		} else if (ss->ss_family == AF_INET6) {
			struct sockaddr_in6 *s = (void *)ss;
			if (!s->sin6_port)
				s->sin6_port = htons(53);
		} else {
			snprintf(err, errlen, "resolver %zu: not an IPv4 or "
				 "IPv6 address", i + 1);
			return -1;
		}
		srv->n_resolvers++;
	}
	if (cfg->n_exclude) {
		srv->exclude = calloc(cfg->n_exclude, sizeof(*srv->exclude));
		if (!srv->exclude)
			goto nomem;
	}
	for (size_t i = 0; i < cfg->n_exclude; i++) {
		char *s = cfg->exclude[i] ? normalize_suffix(cfg->exclude[i]) : NULL;
		if (s)
			srv->exclude[srv->n_exclude++] = s;
	}
	if (cfg->store_path && !(srv->store_path = strdup(cfg->store_path)))
		goto nomem;
	srv->allow_private = cfg->allow_private_answers;
	if (cfg->n_bypass) {
		srv->bypass = calloc(cfg->n_bypass, sizeof(*srv->bypass));
		if (!srv->bypass)
			goto nomem;
		memcpy(srv->bypass, cfg->bypass, cfg->n_bypass * sizeof(*srv->bypass));
		srv->n_bypass = cfg->n_bypass;
	}
	return 0;
nomem:
	snprintf(err, errlen, "DNS server: out of memory");
	return -1;
}

struct dns_server *dns_server_new(struct event_base *base,
				  const struct dns_config *cfg, char *err,
				  size_t errlen)
{
	struct dns_server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "DNS server: out of memory");
		return NULL;
	}
	srv->base = base;
	if (copy_config(srv, cfg, err, errlen) < 0)
		goto fail;
	if (cfg->fakeip_enabled) {
		srv->pool = fakeip_new(cfg->v4_range, cfg->v6_range,
				       cfg->pool_size, err, errlen);
		if (!srv->pool)
			goto fail;
		fakeip_set_hold(srv->pool, srv->hold);
	}
	if (dns_resolve_setup(srv) < 0) {
		snprintf(err, errlen, "cannot create the evdns resolver");
		goto fail;
	}
	if (dns_store_open(srv, err, errlen) < 0)
		goto fail;
	if (srv->n_resolvers == 0)
		dns_log(srv, 0, "no resolvers configured: queries that need a "
		     "real answer get SERVFAIL");
	return srv;
fail:
	dns_server_free(srv);
	return NULL;
}

void dns_server_free(struct dns_server *srv)
{
	if (!srv)
		return;
	while (srv->pending)
		dns_pending_cancel(srv->pending);
	while (srv->resolving)
		dns_resolving_cancel(srv->resolving);
	dns_store_close(srv);
	if (srv->evdns)
		evdns_base_free(srv->evdns, 1);
	fakeip_free(srv->pool);
	for (size_t i = 0; i < srv->n_exclude; i++)
		free(srv->exclude[i]);
	free(srv->exclude);
	free(srv->resolvers);
	free(srv->store_path);
	free(srv->bypass);
	free(srv->procs);
	free(srv);
}

size_t dns_resolv_conf(const char *path, struct sockaddr_storage *out,
		       size_t max)
{
	char line[512];
	size_t n = 0;
	FILE *f = fopen(path ? path : "/etc/resolv.conf", "re");

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char *save, *kw = strtok_r(line, " \t\r\n", &save);
		char *addr = kw ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		struct addrinfo hints = { .ai_flags = AI_NUMERICHOST,
					  .ai_socktype = SOCK_DGRAM }, *res;
		if (!addr || strcmp(kw, "nameserver") != 0)
			continue;
		/* numeric only: never a lookup; handles fe80::1%eth0 */
		if (getaddrinfo(addr, "53", &hints, &res) != 0)
			continue;
		if (res->ai_addrlen <= sizeof(out[n])) {
			memset(&out[n], 0, sizeof(out[n]));
			memcpy(&out[n], res->ai_addr, res->ai_addrlen);
			n++;
		}
		freeaddrinfo(res);
	}
	fclose(f);
	return n;
}

