/* sproxy-bpf's options: the long option table and each option's checks,
 * the same from the command line and a config file.  Every bad value ends
 * here with a message, before anything is loaded. */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cli.h"
#include "cli_int.h"
#include "daemon.h"
#include "fakeip.h"
#include "preflight.h"
#include "privs.h"
#include "rules.h"
#include "tag.h"
#include "upstream.h"

static int tls_ports(struct options *o, const char *s);

enum { O_LOG = 256, O_JSON, O_ALL, O_MAPSIZE, O_UDPFLOWS, O_UDPTIMEOUT,
       O_CONNTIMEOUT, O_RELAY, O_MARK, O_RESOLVER, O_NOFAKE, O_FRANGE,
       O_FSTORE, O_FEXCL, O_FTTL,
       O_REATTACH, O_TAG, O_HDRTIMEOUT, O_HDRBUDGET, O_IDLETIMEOUT,
       O_CONFIG, O_RULE, O_PRIVATE, O_FPERPROC, O_UPSTREAM, O_UDPHTTP,
       O_UDPPERPROC, O_USER, O_CGPARENT, O_NETNS, O_PIN, O_CTLDIR, O_SNIFF,
       O_SNIFFOVERRIDE, O_SNIFFTIMEOUT, O_FASTPATH, O_TLSPORTS, O_TO,
       O_PROXYCG, O_NODROP, O_THREADS };

const struct option cli_long_opts[] = {
	{ "listen", required_argument, 0, 'l' },
	{ "bypass", required_argument, 0, 'b' },
	{ "log", required_argument, 0, O_LOG },
	{ "json", no_argument, 0, O_JSON },
	{ "verbose", no_argument, 0, 'v' },
	{ "all", no_argument, 0, O_ALL },
	{ "map-size", required_argument, 0, O_MAPSIZE },
	{ "udp-flows", required_argument, 0, O_UDPFLOWS },
	{ "udp-timeout", required_argument, 0, O_UDPTIMEOUT },
	{ "udp-flows-per-process", required_argument, 0, O_UDPPERPROC },
	{ "connect-timeout", required_argument, 0, O_CONNTIMEOUT },
	{ "relay", required_argument, 0, O_RELAY },
	{ "threads", required_argument, 0, O_THREADS },
	{ "mark", required_argument, 0, O_MARK },
	{ "netns", required_argument, 0, O_NETNS },
	{ "resolver", required_argument, 0, O_RESOLVER },
	{ "disable-fakeip", no_argument, 0, O_NOFAKE },
	{ "fakeip-range", required_argument, 0, O_FRANGE },
	{ "fakeip-store", required_argument, 0, O_FSTORE },
	{ "fakeip-exclude", required_argument, 0, O_FEXCL },
	{ "fakeip-ttl", required_argument, 0, O_FTTL },
	{ "reattach", no_argument, 0, O_REATTACH },
	{ "pin", required_argument, 0, O_PIN },
	{ "tag", required_argument, 0, O_TAG },
	{ "header-timeout", required_argument, 0, O_HDRTIMEOUT },
	{ "header-budget", required_argument, 0, O_HDRBUDGET },
	{ "idle-timeout", required_argument, 0, O_IDLETIMEOUT },
	{ "config", required_argument, 0, O_CONFIG },
	{ "rule", required_argument, 0, O_RULE },
	{ "allow-private-answers", no_argument, 0, O_PRIVATE },
	{ "fakeip-per-process", required_argument, 0, O_FPERPROC },
	{ "control-dir", required_argument, 0, O_CTLDIR },
	{ "upstream", required_argument, 0, O_UPSTREAM },
	{ "udp-over-http", required_argument, 0, O_UDPHTTP },
	{ "user", required_argument, 0, O_USER },
	{ "cgroup-parent", required_argument, 0, O_CGPARENT },
	{ "sniff", required_argument, 0, O_SNIFF },
	{ "sniff-override", required_argument, 0, O_SNIFFOVERRIDE },
	{ "sniff-timeout", required_argument, 0, O_SNIFFTIMEOUT },
	{ "fast-path", required_argument, 0, O_FASTPATH },
	{ "tls-ports", required_argument, 0, O_TLSPORTS },
	{ "to", required_argument, 0, O_TO },
	{ "proxy-cgroup", required_argument, 0, O_PROXYCG },
	{ "no-drop", no_argument, 0, O_NODROP },
	{ "help", no_argument, 0, 'h' },
	{ "version", no_argument, 0, 'V' },
	{ 0, 0, 0, 0 },
};


int cli_usage_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return BAD_USAGE;
}

/* Decimal digits only: no sign, no blanks, no octal for a leading zero;
 * "0x" hex only where hex_ok (options documented as taking it). */
int cli_number(const char *s, int hex_ok, unsigned long min, unsigned long max,
	       unsigned long *out)
{
	int base = 10;
	const char *p = s;
	char *end;
	unsigned long v;

	if (hex_ok && (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0)) {
		base = 16;
		p = s + 2;
	}
	if (!*p || strspn(p, base == 16 ? "0123456789abcdefABCDEF" : "0123456789") != strlen(p))
		return -1;
	errno = 0;
	v = strtoul(p, &end, base);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Stores s as a number of the option's range in *out; BAD_NUMBER when not. */
#define NUMBER(out, s, opt, hex_ok, min, max)                                      \
	do {                                                                       \
		unsigned long v_;                                                  \
		if (cli_number(s, hex_ok, min, max, &v_) < 0) {                    \
			snprintf(err, errlen, "%s wants a %snumber from %lu to %lu, not '%s'", \
				 opt, hex_ok ? "" : "decimal ", (unsigned long)(min),  \
				 (unsigned long)(max), s);                         \
			return BAD_NUMBER;                                         \
		}                                                                  \
		out = v_;                                                          \
	} while (0)

/* A copy of s that lives as long as o: values from a config file are gone
 * once their line is read. */
static const char *keep(struct options *o, const char *s)
{
	char **v = realloc(o->owned, ((size_t)o->n_owned + 1) * sizeof(*v));

	if (!v)
		return NULL;
	o->owned = v;
	v[o->n_owned] = strdup(s);
	return v[o->n_owned] ? v[o->n_owned++] : NULL;
}

/* A flag's value: 1 when given bare on the command line (arg NULL). */
static int flag(const char *arg)
{
	return !arg || strcmp(arg, "true") == 0 || strcmp(arg, "yes") == 0 ||
	       strcmp(arg, "on") == 0 || strcmp(arg, "1") == 0;
}

int cli_is_run;

/* Parsed, resolved (unless o->resolve_later: a reload resolves off the
 * loop), and its password blanked where it was read (argv), so that ps
 * shows less of it from now on (NAME=@FILE shows none at all). */
static int upstream_option(struct options *o, const char *arg, char *err, size_t errlen)
{
	struct upstream *u = &o->upstream[o->n_upstream];
	char msg[400], *at, *colon, *w = (char *)arg;

	if (o->n_upstream == UPSTREAM_MAX)
		return cli_usage_error(err, errlen, "at most %d --upstream", UPSTREAM_MAX);
	if (upstream_parse_arg(arg, u, msg, sizeof(msg)) < 0)
		return cli_usage_error(err, errlen, "--upstream %s", msg);
	if (upstream_find(o, u->name))
		return cli_usage_error(err, errlen, "--upstream: the name '%s' is given twice",
				       u->name);
	if (!o->resolve_later && upstream_resolve(u, msg, sizeof(msg)) < 0)
		return cli_usage_error(err, errlen, "--%s", msg);
	o->n_upstream++;
	colon = strstr(w, "://") ? strchr(strstr(w, "://") + 3, ':') : NULL;
	at = strrchr(w, '@');
	if (colon && at && colon < at)
		memset(colon + 1, '*', (size_t)(at - colon - 1));
	return 0;
}

/* One option, from the command line or a config file: the same checks and
 * the same messages.  0, or BAD_USAGE / BAD_NUMBER with err. */
int cli_apply_opt(struct options *o, int c, const char *arg, char *err, size_t errlen)
{
	char msg[256];

	switch (c) {
	case 'l':
		if (o->n_listen == 8)
			return cli_usage_error(err, errlen, "at most 8 --listen");
		if (addr_parse(arg, 0, &o->listen[o->n_listen], msg, sizeof(msg)) < 0)
			return cli_usage_error(err, errlen, "--listen: %s", msg);
		o->n_listen++;
		break;
	case 'b': {
		struct bypass_entry *e = &o->bypass[o->n_bypass];

		if (o->n_bypass == 256)
			return cli_usage_error(err, errlen, "at most 256 --bypass");
		if (cidr_parse(arg, &e->key, &e->port, msg, sizeof(msg)) < 0)
			return cli_usage_error(err, errlen, "--bypass: %s", msg);
		o->n_bypass++;
		break;
	}
	case O_LOG:
		if (!(o->log_path = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_JSON: o->json = flag(arg); break;
	case 'v': o->verbose = flag(arg); break;
	case O_ALL: o->allow_root = flag(arg); break;
	case O_MAPSIZE:
		NUMBER(o->map_size, arg, "--map-size", 0, 64, 1u << 24);
		break;
	case O_UDPFLOWS:
		NUMBER(o->udp_flows, arg, "--udp-flows", 0, 1, 16384);
		break;
	case O_UDPTIMEOUT:
		NUMBER(o->udp_timeout, arg, "--udp-timeout", 0, 1, 86400);
		break;
	case O_UDPPERPROC:
		NUMBER(o->udp_per_proc, arg, "--udp-flows-per-process", 0, 0, 1u << 20);
		break;
	case O_CONNTIMEOUT:
		NUMBER(o->connect_timeout, arg, "--connect-timeout", 0, 1, 600);
		break;
	case O_RELAY:
		if (strcmp(arg, "copy") == 0)
			o->relay_copy = 1;
		else if (strcmp(arg, "splice") == 0)
			o->relay_copy = 0;
		else
			return cli_usage_error(err, errlen, "--relay is 'splice' or 'copy', not '%s'",
					       arg);
		break;
	case O_MARK:
		NUMBER(o->mark, arg, "--mark", 1, 1, 0xffffffffu);
		break;
	case O_NETNS:
		if (strcmp(arg, "current") == 0)
			o->netns_current = 1;
		else if (strcmp(arg, "all") == 0)
			o->netns_current = 0;
		else
			return cli_usage_error(err, errlen, "--netns is 'all' or 'current', not '%s'",
					       arg);
		break;
	case O_RESOLVER:
		if (o->n_resolvers == 8)
			return cli_usage_error(err, errlen, "at most 8 --resolver");
		if (addr_parse(arg, 53, &o->resolvers[o->n_resolvers], msg, sizeof(msg)) < 0)
			return cli_usage_error(err, errlen, "--resolver: %s", msg);
		o->n_resolvers++;
		break;
	case O_NOFAKE: o->disable_fakeip = flag(arg); break;
	case O_FRANGE:
		if (fakeip_range_check(arg, msg, sizeof(msg)) < 0)
			return cli_usage_error(err, errlen, "--fakeip-range %s", msg);
		if (!(o->fakeip_range[strchr(arg, ':') ? 1 : 0] = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_FSTORE:
		if (!(o->fakeip_store = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_FEXCL:
		if (o->n_fakeip_exclude == 64)
			return cli_usage_error(err, errlen, "at most 64 --fakeip-exclude");
		if (!(o->fakeip_exclude[o->n_fakeip_exclude] = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		o->n_fakeip_exclude++;
		break;
	case O_FTTL:
		NUMBER(o->fakeip_ttl, arg, "--fakeip-ttl", 0, 0, 86400);
		break;
	case O_REATTACH: o->reattach = flag(arg); break;
	case O_PIN:
		/* run's cgroup goes with it: nothing to keep closed */
		if (cli_is_run)
			return cli_usage_error(err, errlen, "--pin is an option of attach");
		if (!(o->pin_dir = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_TAG:
		if (strcmp(arg, "off") == 0)
			o->tag = NULL;
		else if (strcmp(arg, "on") == 0)
			o->tag = TAG_DEFAULT;
		else if (tag_template_check(arg, msg, sizeof(msg)) < 0)
			return cli_usage_error(err, errlen, "--tag: %s", msg);
		else if (!(o->tag = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_HDRTIMEOUT:
		NUMBER(o->header_timeout, arg, "--header-timeout", 0, 0, 3600);
		break;
	case O_HDRBUDGET:
		NUMBER(o->header_budget, arg, "--header-budget", 0, 64, 1u << 22);
		o->header_budget *= 1024;
		break;
	case O_THREADS:
		NUMBER(o->threads, arg, "--threads", 0, 1, 64);
		break;
	case O_IDLETIMEOUT:
		NUMBER(o->idle_timeout, arg, "--idle-timeout", 0, 0, 7 * 86400);
		break;
	case O_PRIVATE: o->allow_private_answers = flag(arg); break;
	case O_FPERPROC:
		NUMBER(o->fakeip_per_process, arg, "--fakeip-per-process", 0, 1,
		       FAKEIP_MAX_ENTRIES);
		break;
	case O_SNIFF:
		if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
			return cli_usage_error(err, errlen, "--sniff is 'on' or 'off', not '%s'", arg);
		o->sniff = strcmp(arg, "on") == 0;
		break;
	case O_SNIFFOVERRIDE:
		if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
			return cli_usage_error(err, errlen, "--sniff-override is 'on' or 'off', not '%s'",
					       arg);
		o->sniff_override = strcmp(arg, "on") == 0;
		break;
	case O_SNIFFTIMEOUT:
		NUMBER(o->sniff_timeout, arg, "--sniff-timeout", 0, 1, 10000);
		break;
	case O_UPSTREAM:
		return upstream_option(o, arg, err, errlen);
	case O_CTLDIR:
		if (strlen(arg) > 90)
			return cli_usage_error(err, errlen, "--control-dir %s: too long for a unix "
					       "socket's path (90 bytes at most)", arg);
		if (!(o->control_dir = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_UDPHTTP:
		if (strcmp(arg, "direct") == 0)
			o->udp_over_http = UDP_OVER_HTTP_DIRECT;
		else if (strcmp(arg, "reject") == 0)
			o->udp_over_http = UDP_OVER_HTTP_REJECT;
		else
			return cli_usage_error(err, errlen,
					       "--udp-over-http is 'reject' or 'direct', not '%s'", arg);
		break;
	case O_TO:
		if (addr_parse(arg, 0, &o->handoff_to, msg, sizeof(msg)) < 0)
			return cli_usage_error(err, errlen, "--to: %s", msg);
		break;
	case O_PROXYCG:
		if (!(o->proxy_cgroup = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	case O_NODROP: o->no_drop = flag(arg); break;
	case O_CONFIG:
		return cli_apply_config(o, arg, err, errlen);
	case O_FASTPATH:
		if (strcmp(arg, "on") == 0)
			o->fast_path_off = 0;
		else if (strcmp(arg, "off") == 0)
			o->fast_path_off = 1;
		else
			return cli_usage_error(err, errlen, "--fast-path is 'on' or 'off', not '%s'",
					       arg);
		break;
	case O_TLSPORTS:
		if (tls_ports(o, arg) < 0)
			return cli_usage_error(err, errlen, "--tls-ports: '%s' is not 'none' or a "
					       "list of ports and ranges A-B (1 to 65535) joined by "
					       "',', at most 32", arg);
		break;
	case O_RULE: {
		char rmsg[512];

		if (!o->rules && !(o->rules = rules_new()))
			return cli_usage_error(err, errlen, "out of memory");
		if (rules_add(o->rules, arg, o->origin ? o->origin : "--rule", rmsg,
			      sizeof(rmsg)) < 0)
			return cli_usage_error(err, errlen, "--rule '%.200s': %s", arg, rmsg);
		break;
	}
	case O_USER:
		/* Whom the command runs as: run's command, attach's daemon. */
		if (!cli_is_run) {
			if (privs_check_user(arg, err, errlen) < 0)
				return BAD_USAGE;
			if (!(o->user = keep(o, arg)))
				return cli_usage_error(err, errlen, "out of memory");
			break;
		}
		/* fall through */
	case O_CGPARENT: {
		const char **to = c == O_USER ? &o->run_user : &o->run_parent;

		if (!cli_is_run)
			return cli_usage_error(err, errlen, "--%s is an option of run",
					       c == O_USER ? "user" : "cgroup-parent");
		if (!(*to = keep(o, arg)))
			return cli_usage_error(err, errlen, "out of memory");
		break;
	}
	default:
		return cli_usage_error(err, errlen, "internal: option %d", c);
	}
	return 0;
}

int cli_apply(struct options *o, const char *name, const char *value, char *err,
	      size_t errlen)
{
	const struct option *opt = cli_long_opts;

	while (opt->name && strcmp(opt->name, name) != 0)
		opt++;
	if (!opt->name || opt->val == 'h' || opt->val == 'V')
		return cli_usage_error(err, errlen, "unknown option '%s'", name);
	if (opt->has_arg == no_argument && value) {
		if (!flag(value) && strcmp(value, "false") != 0 && strcmp(value, "no") != 0 &&
		    strcmp(value, "off") != 0 && strcmp(value, "0") != 0)
			return cli_usage_error(err, errlen, "%s is true or false, not '%s'", name,
					       value);
		if (!flag(value))
			value = "false";
	}
	if (opt->has_arg == required_argument && (!value || !*value))
		return cli_usage_error(err, errlen, "%s needs a value", name);
	return cli_apply_opt(o, opt->val, value, err, errlen) < 0 ? -1 : 0;
}

/* "none", or "N,A-B,...": 0, or -1 (o unchanged) when it does not read. */
static int tls_ports(struct options *o, const char *s)
{
	char buf[512], *save = NULL, *tok;
	unsigned long lo, hi;
	int n = 0;

	if (strcmp(s, "none") == 0) {
		o->n_tls_ports = 0;
		return 0;
	}
	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');

		if (dash)
			*dash = 0;
		if (n == 32 || cli_number(tok, 0, 1, 65535, &lo) < 0 ||
		    cli_number(dash ? dash + 1 : tok, 0, 1, 65535, &hi) < 0 || hi < lo)
			return -1;
		n++;
	}
	if (!n)
		return -1;
	strcpy(buf, s);
	o->n_tls_ports = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');

		if (dash)
			*dash = 0;
		cli_number(tok, 0, 1, 65535, &lo);
		cli_number(dash ? dash + 1 : tok, 0, 1, 65535, &hi);
		o->tls_ports[o->n_tls_ports].lo = (uint16_t)lo;
		o->tls_ports[o->n_tls_ports++].hi = (uint16_t)hi;
	}
	return 0;
}

void cli_defaults(struct options *o)
{
	tls_ports(o, TLS_PORTS_DEFAULT);
	o->udp_timeout = 60;
	o->connect_timeout = 10;
	o->map_size = 65536;
	o->udp_flows = 1024;
	o->udp_per_proc = UDP_PER_PROC_AUTO;
	o->mark = SPROXY_MARK_DEFAULT;
	o->fakeip_ttl = 1;
	o->tag = TAG_DEFAULT;
	o->header_timeout = 30;
	o->header_budget = 16384 * 1024;
	o->sniff = 1;
	o->sniff_override = 1;
	o->sniff_timeout = 100;
}

