/* sproxy-bpf's command line: the usage text, options and their checks.
 * Every bad value ends here with exit status 2, before anything is loaded. */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "fakeip.h"
#include "preflight.h"
#include "rules.h"
#include "tag.h"

static const char usage_text[] =
"Usage: sproxy-bpf attach CGROUP [OPTION]...\n"
"       sproxy-bpf check [CGROUP] [OPTION]...\n"
"       sproxy-bpf --help | --version\n"
"\n"
"Sends every TCP connection and UDP datagram of the processes in CGROUP (a\n"
"cgroup v2 directory: an absolute path, or one relative to the cgroup v2\n"
"mount) through this proxy, which relays it to its original destination,\n"
"appends the process to HTTP User-Agents, answers DNS with FakeIP addresses,\n"
"and logs one line per connection with the process that made it.\n"
"Runs in the foreground until SIGINT or SIGTERM.  Once traffic is captured it\n"
"prints one line that starts with 'sproxy-bpf: ready: ' to stderr, and\n"
"READY=1 to $NOTIFY_SOCKET when set (systemd Type=notify).  SIGHUP reopens the\n"
"--log file and reads the rules again.  Captures the cgroup's processes in the\n"
"daemon's own network namespace.  Needs Linux 5.18 or later.\n"
"'check' reads the options, the --config file and the rules, prints 'ok' or\n"
"what is wrong, and exits; it loads nothing and needs no privileges.\n"
"\n"
"Options:\n"
"  -l, --listen ADDR:PORT     TCP listener; repeatable (default 127.0.0.1:3333\n"
"                             and [::1]:3333).  A family with no listener\n"
"                             gets one on its loopback address, same port\n"
"  -b, --bypass CIDR[:PORT]   send this destination direct; repeatable\n"
"                             (e.g. 10.0.0.0/8, 10.1.2.3:443, [2001:db8::/32]:80).\n"
"                             Loopback, link-local, multicast and broadcast always\n"
"                             go direct, except DNS (port 53)\n"
"      --log FILE             connection log, appended (default: stderr); a new\n"
"                             file is made mode 0600; SIGHUP reopens it\n"
"      --json                 connection log as JSON lines\n"
"  -v, --verbose              debug messages (libbpf, dropped datagrams, DNS)\n"
"      --all                  allow CGROUP to be the cgroup v2 root: captures\n"
"                             every process of the machine\n"
"      --map-size N           captured TCP connections open at once; more are\n"
"                             refused (default 65536)\n"
"      --udp-flows N          concurrent UDP flows per address family (default 1024)\n"
"      --udp-timeout SEC      idle UDP flows end after SEC seconds (default 60)\n"
"      --connect-timeout SEC  outbound connect timeout (default 10)\n"
"      --relay MODE           splice (default: bulk bytes that need no rewriting\n"
"                             stay in the kernel) or copy (always through a buffer)\n"
"      --mark N               SO_MARK of the daemon's own sockets, which are never\n"
"                             captured; decimal or 0x hex (default 0x5350)\n"
"      --reattach             when CGROUP is removed, wait for its path to come\n"
"                             back and capture it again (default: exit, status 3)\n"
"      --tag off|on|TEMPLATE  what HTTP User-Agents get appended: on (default) is\n"
"                             'sproxy-bpf (comm=%c; pid=%p)'; a TEMPLATE may use\n"
"                             %c comm, %p pid, %u uid, %g gid, %% a percent sign\n"
"      --header-timeout SEC   a request header not complete after SEC seconds\n"
"                             ends its connection (default 30; 0: never)\n"
"      --header-budget KIB    memory for unfinished request headers, all\n"
"                             connections together (default 16384); past it a\n"
"                             connection is relayed untagged\n"
"      --idle-timeout SEC     end a TCP connection after SEC seconds without a\n"
"                             byte either way (default 0: never)\n"
"      --config FILE          read options from FILE: 'option = value' lines, one\n"
"                             long option each (flags take true or false), as\n"
"                             if written here; '#' starts a comment line\n"
"Rules:\n"
"      --rule TYPE,VALUE,TARGET  route a connection; repeatable, the first match\n"
"                             wins (e.g. DOMAIN-SUFFIX,example.com,REJECT;\n"
"                             default DIRECT).  Types and targets: see README\n"
"DNS:\n"
"      --resolver ADDR[:PORT] real resolver; repeatable (default: the nameservers\n"
"                             of /etc/resolv.conf)\n"
"      --disable-fakeip       answer every query with the real answer\n"
"      --fakeip-range CIDR    FakeIP pool; once for IPv4, once for IPv6 (default\n"
"                             198.18.0.0/15 and fd73:7072:6f78:7900::/64); must\n"
"                             not overlap loopback, link-local, multicast or\n"
"                             this machine's own subnets\n"
"      --fakeip-store FILE    keep the name <-> address mapping across restarts\n"
"      --fakeip-exclude SUFFIX  names that always get real answers; repeatable\n"
"      --fakeip-ttl SEC       TTL of FakeIP answers (default 1)\n"
"      --fakeip-per-process N  new FakeIP names one process gets within the\n"
"                             reuse hold (TTL + 60 s); past it, real answers\n"
"                             (default 2048)\n"
"      --allow-private-answers  connect to names that resolve to loopback,\n"
"                             link-local or --bypass addresses (refused by\n"
"                             default: the daemon connects as root, with its\n"
"                             mark)\n"
"  -h, --help                 this text\n"
"  -V, --version              the version\n"
"\n"
"N and SEC are decimal numbers; --mark also takes 0x hex.\n"
"\n"
"Exit status: 0 stopped by SIGINT/SIGTERM (everything detached); 1 a runtime\n"
"failure (kernel too old, BPF load or attach, listening); 2 a usage error or a\n"
"bad value (named in the message; nothing was loaded); 3 CGROUP was removed\n"
"while captured (without --reattach).  check: 0 all is well, 2 it is not.\n";


enum { O_LOG = 256, O_JSON, O_ALL, O_MAPSIZE, O_UDPFLOWS, O_UDPTIMEOUT,
       O_CONNTIMEOUT, O_RELAY, O_MARK, O_RESOLVER, O_NOFAKE, O_FRANGE,
       O_FSTORE, O_FEXCL, O_FTTL,
       O_REATTACH, O_TAG, O_HDRTIMEOUT, O_HDRBUDGET, O_IDLETIMEOUT,
       O_CONFIG, O_RULE, O_PRIVATE, O_FPERPROC };

static const struct option long_opts[] = {
	{ "listen", required_argument, 0, 'l' },
	{ "bypass", required_argument, 0, 'b' },
	{ "log", required_argument, 0, O_LOG },
	{ "json", no_argument, 0, O_JSON },
	{ "verbose", no_argument, 0, 'v' },
	{ "all", no_argument, 0, O_ALL },
	{ "map-size", required_argument, 0, O_MAPSIZE },
	{ "udp-flows", required_argument, 0, O_UDPFLOWS },
	{ "udp-timeout", required_argument, 0, O_UDPTIMEOUT },
	{ "connect-timeout", required_argument, 0, O_CONNTIMEOUT },
	{ "relay", required_argument, 0, O_RELAY },
	{ "mark", required_argument, 0, O_MARK },
	{ "resolver", required_argument, 0, O_RESOLVER },
	{ "disable-fakeip", no_argument, 0, O_NOFAKE },
	{ "fakeip-range", required_argument, 0, O_FRANGE },
	{ "fakeip-store", required_argument, 0, O_FSTORE },
	{ "fakeip-exclude", required_argument, 0, O_FEXCL },
	{ "fakeip-ttl", required_argument, 0, O_FTTL },
	{ "reattach", no_argument, 0, O_REATTACH },
	{ "tag", required_argument, 0, O_TAG },
	{ "header-timeout", required_argument, 0, O_HDRTIMEOUT },
	{ "header-budget", required_argument, 0, O_HDRBUDGET },
	{ "idle-timeout", required_argument, 0, O_IDLETIMEOUT },
	{ "config", required_argument, 0, O_CONFIG },
	{ "rule", required_argument, 0, O_RULE },
	{ "allow-private-answers", no_argument, 0, O_PRIVATE },
	{ "fakeip-per-process", required_argument, 0, O_FPERPROC },
	{ "help", no_argument, 0, 'h' },
	{ "version", no_argument, 0, 'V' },
	{ 0, 0, 0, 0 },
};

/* How apply() failed: a usage error gets a pointer to --help; a bad number
 * names its option and range, which says enough. */
enum { BAD_USAGE = -1, BAD_NUMBER = -2 };

static int usage_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int usage_error(char *err, size_t errlen, const char *fmt, ...)
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

static int apply_config(struct options *o, const char *path, char *err, size_t errlen);

/* One option, from the command line or a config file: the same checks and
 * the same messages.  0, or BAD_USAGE / BAD_NUMBER with err. */
static int apply(struct options *o, int c, const char *arg, char *err, size_t errlen)
{
	char msg[256];

	switch (c) {
	case 'l':
		if (o->n_listen == 8)
			return usage_error(err, errlen, "at most 8 --listen");
		if (addr_parse(arg, 0, &o->listen[o->n_listen], msg, sizeof(msg)) < 0)
			return usage_error(err, errlen, "--listen: %s", msg);
		o->n_listen++;
		break;
	case 'b': {
		struct bypass_entry *e = &o->bypass[o->n_bypass];

		if (o->n_bypass == 256)
			return usage_error(err, errlen, "at most 256 --bypass");
		if (cidr_parse(arg, &e->key, &e->port, msg, sizeof(msg)) < 0)
			return usage_error(err, errlen, "--bypass: %s", msg);
		o->n_bypass++;
		break;
	}
	case O_LOG:
		if (!(o->log_path = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
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
	case O_CONNTIMEOUT:
		NUMBER(o->connect_timeout, arg, "--connect-timeout", 0, 1, 600);
		break;
	case O_RELAY:
		if (strcmp(arg, "copy") == 0)
			o->relay_copy = 1;
		else if (strcmp(arg, "splice") == 0)
			o->relay_copy = 0;
		else
			return usage_error(err, errlen, "--relay is 'splice' or 'copy', not '%s'",
					   arg);
		break;
	case O_MARK:
		NUMBER(o->mark, arg, "--mark", 1, 1, 0xffffffffu);
		break;
	case O_RESOLVER:
		if (o->n_resolvers == 8)
			return usage_error(err, errlen, "at most 8 --resolver");
		if (addr_parse(arg, 53, &o->resolvers[o->n_resolvers], msg, sizeof(msg)) < 0)
			return usage_error(err, errlen, "--resolver: %s", msg);
		o->n_resolvers++;
		break;
	case O_NOFAKE: o->disable_fakeip = flag(arg); break;
	case O_FRANGE:
		if (fakeip_range_check(arg, msg, sizeof(msg)) < 0)
			return usage_error(err, errlen, "--fakeip-range %s", msg);
		if (!(o->fakeip_range[strchr(arg, ':') ? 1 : 0] = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		break;
	case O_FSTORE:
		if (!(o->fakeip_store = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		break;
	case O_FEXCL:
		if (o->n_fakeip_exclude == 64)
			return usage_error(err, errlen, "at most 64 --fakeip-exclude");
		if (!(o->fakeip_exclude[o->n_fakeip_exclude] = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		o->n_fakeip_exclude++;
		break;
	case O_FTTL:
		NUMBER(o->fakeip_ttl, arg, "--fakeip-ttl", 0, 0, 86400);
		break;
	case O_REATTACH: o->reattach = flag(arg); break;
	case O_TAG:
		if (strcmp(arg, "off") == 0)
			o->tag = NULL;
		else if (strcmp(arg, "on") == 0)
			o->tag = TAG_DEFAULT;
		else if (tag_template_check(arg, msg, sizeof(msg)) < 0)
			return usage_error(err, errlen, "--tag: %s", msg);
		else if (!(o->tag = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		break;
	case O_HDRTIMEOUT:
		NUMBER(o->header_timeout, arg, "--header-timeout", 0, 0, 3600);
		break;
	case O_HDRBUDGET:
		NUMBER(o->header_budget, arg, "--header-budget", 0, 64, 1u << 22);
		o->header_budget *= 1024;
		break;
	case O_IDLETIMEOUT:
		NUMBER(o->idle_timeout, arg, "--idle-timeout", 0, 0, 7 * 86400);
		break;
	case O_PRIVATE: o->allow_private_answers = flag(arg); break;
	case O_FPERPROC:
		NUMBER(o->fakeip_per_process, arg, "--fakeip-per-process", 0, 1,
		       FAKEIP_MAX_ENTRIES);
		break;
	case O_CONFIG:
		return apply_config(o, arg, err, errlen);
	case O_RULE: {
		char rmsg[512];

		if (!o->rules && !(o->rules = rules_new()))
			return usage_error(err, errlen, "out of memory");
		if (rules_add(o->rules, arg, o->origin ? o->origin : "--rule", rmsg,
			      sizeof(rmsg)) < 0)
			return usage_error(err, errlen, "--rule '%.200s': %s", arg, rmsg);
		break;
	}
	default:
		return usage_error(err, errlen, "internal: option %d", c);
	}
	return 0;
}

int cli_apply(struct options *o, const char *name, const char *value, char *err,
	      size_t errlen)
{
	const struct option *opt = long_opts;

	while (opt->name && strcmp(opt->name, name) != 0)
		opt++;
	if (!opt->name || opt->val == 'h' || opt->val == 'V')
		return usage_error(err, errlen, "unknown option '%s'", name);
	if (opt->has_arg == no_argument && value) {
		if (!flag(value) && strcmp(value, "false") != 0 && strcmp(value, "no") != 0 &&
		    strcmp(value, "off") != 0 && strcmp(value, "0") != 0)
			return usage_error(err, errlen, "%s is true or false, not '%s'", name,
					   value);
		if (!flag(value))
			value = "false";
	}
	if (opt->has_arg == required_argument && (!value || !*value))
		return usage_error(err, errlen, "%s needs a value", name);
	return apply(o, opt->val, value, err, errlen) < 0 ? -1 : 0;
}

struct config_ctx {
	struct options *o;
};

static int config_line(void *ctx, const char *name, const char *value, const char *origin,
		       char *err, size_t errlen)
{
	struct options *o = ((struct config_ctx *)ctx)->o;
	int rc;

	if (strcmp(name, "config") == 0)
		return usage_error(err, errlen, "a config file cannot name another");
	o->origin = origin;
	rc = cli_apply(o, name, value, err, errlen);
	o->origin = NULL;
	return rc;
}

static int apply_config(struct options *o, const char *path, char *err, size_t errlen)
{
	struct config_ctx ctx = { o };

	return config_load(path, config_line, &ctx, err, errlen) < 0 ? BAD_NUMBER : 0;
}

int cli_apply_config_mem(struct options *o, const char *name, const char *text,
			 size_t len, char *err, size_t errlen)
{
	struct config_ctx ctx = { o };

	return config_load_mem(name, text, len, config_line, &ctx, err, errlen);
}

/* The names a rule's target may take besides DIRECT and REJECT: the
 * upstreams the options define.  None yet. */
static int upstream_names(const struct options *o, const char **names, int max)
{
	(void)o;
	(void)names;
	(void)max;
	return 0;
}

int cli_finish(struct options *o, char *err, size_t errlen)
{
	const char *names[64];
	int n = upstream_names(o, names, 64);

	if (!o->rules && !(o->rules = rules_new()))
		return usage_error(err, errlen, "out of memory");
	return rules_compile(o->rules, names, n, err, errlen) < 0 ? -1 : 0;
}

/* err's lines, each as one message. */
static void print_err(const char *err, int hint)
{
	for (const char *p = err, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		fprintf(stderr, "sproxy-bpf: %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		if (!nl)
			break;
	}
	if (hint)
		fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
}

static void defaults(struct options *o)
{
	o->udp_timeout = 60;
	o->connect_timeout = 10;
	o->map_size = 65536;
	o->udp_flows = 1024;
	o->mark = SPROXY_MARK_DEFAULT;
	o->fakeip_ttl = 1;
	o->tag = TAG_DEFAULT;
	o->header_timeout = 30;
	o->header_budget = 16384 * 1024;
}

static void parse(int argc, char **argv, struct options *o)
{
	char err[4096];
	int c, rc;

	defaults(o);
	while ((c = getopt_long(argc, argv, "l:b:vhV", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("sproxy-bpf %s (libbpf %s)\n", SPROXY_VERSION, libbpf_version_string());
			exit(0);
		case '?':
		case ':':
			fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
			exit(EXIT_USAGE);
		}
		rc = apply(o, c, optarg, err, sizeof(err));
		if (rc < 0) {
			print_err(err, rc == BAD_USAGE);
			exit(EXIT_USAGE);
		}
	}
}

/* The whole command line: the command, its options, its argument. */
void cli_parse(int argc, char **argv, struct options *o)
{
	char err[4096];
	int check;

	if (argc > 1 && argv[1][0] == '-') {
		parse(argc, argv, o);
		fputs(usage_text, stderr);
		exit(EXIT_USAGE);
	}
	if (argc < 2) {
		fputs(usage_text, stderr);
		exit(EXIT_USAGE);
	}
	check = strcmp(argv[1], "check") == 0;
	if (!check && strcmp(argv[1], "attach") != 0) {
		fprintf(stderr, "sproxy-bpf: unknown command '%s'\nTry 'sproxy-bpf --help'.\n",
			argv[1]);
		exit(EXIT_USAGE);
	}
	optind = 2;
	parse(argc, argv, o);
	if (optind < argc - 1 || (!check && optind != argc - 1)) {
		if (optind >= argc)
			fprintf(stderr, "sproxy-bpf: attach needs a CGROUP\n");
		else
			fprintf(stderr, "sproxy-bpf: unexpected argument '%s'\n",
				argv[optind + 1]);
		fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	o->cgroup = optind < argc ? argv[optind] : NULL;
	if (cli_finish(o, err, sizeof(err)) < 0) {
		print_err(err, 0);
		exit(EXIT_USAGE);
	}
	if (check) {
		puts("ok");
		exit(0);
	}
}

int cli_reparse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	int c, saved_opterr = opterr;

	memset(o, 0, sizeof(*o));
	defaults(o);
	if (argc < 2)
		return usage_error(err, errlen, "no command line to read again");
	/* argv[1] (the command) stands for the program's name; optind 0 starts
	 * getopt afresh. */
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "l:b:vhV", long_opts, NULL)) != -1) {
		if (c == 'h' || c == 'V' || c == '?' || c == ':' ||
		    apply(o, c, optarg, err, errlen) < 0) {
			if (c == 'h' || c == 'V' || c == '?' || c == ':')
				usage_error(err, errlen, "the command line no longer parses");
			opterr = saved_opterr;
			cli_options_free(o);
			return -1;
		}
	}
	opterr = saved_opterr;
	o->cgroup = optind < argc - 1 ? argv[1 + optind] : NULL;
	if (cli_finish(o, err, errlen) < 0) {
		cli_options_free(o);
		return -1;
	}
	return 0;
}

char **cli_copy_args(int argc, char **argv)
{
	char **copy = calloc((size_t)argc + 1, sizeof(*copy));

	for (int i = 0; copy && i < argc; i++)
		if (!(copy[i] = strdup(argv[i]))) {
			cli_free_args(copy);
			return NULL;
		}
	return copy;
}

void cli_free_args(char **args)
{
	for (int i = 0; args && args[i]; i++)
		free(args[i]);
	free(args);
}

void cli_options_free(struct options *o)
{
	for (int i = 0; i < o->n_owned; i++)
		free(o->owned[i]);
	free(o->owned);
	o->owned = NULL;
	o->n_owned = 0;
	rules_unref(o->rules);
	o->rules = NULL;
}
