/* sproxy-bpf's command line: the usage text, options and their checks.
 * Every bad value ends here with exit status 2, before anything is loaded. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "cli.h"
#include "daemon.h"
#include "preflight.h"

static const char usage_text[] =
"Usage: sproxy-bpf attach CGROUP [OPTION]...\n"
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
"--log file.  Captures the cgroup's processes in the daemon's own network\n"
"namespace.  Needs Linux 5.18 or later.\n"
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
"      --map-size N           entries of each BPF record map (default 65536)\n"
"      --udp-flows N          concurrent UDP flows per address family (default 1024)\n"
"      --udp-timeout SEC      idle UDP flows end after SEC seconds (default 60)\n"
"      --connect-timeout SEC  outbound connect timeout (default 10)\n"
"      --relay MODE           splice (default: bulk bytes that need no rewriting\n"
"                             stay in the kernel) or copy (always through a buffer)\n"
"      --mark N               SO_MARK of the daemon's own sockets, which are never\n"
"                             captured; decimal or 0x hex (default 0x5350)\n"
"      --reattach             when CGROUP is removed, wait for its path to come\n"
"                             back and capture it again (default: exit, status 3)\n"
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
"  -h, --help                 this text\n"
"  -V, --version              the version\n"
"\n"
"N and SEC are decimal numbers; --mark also takes 0x hex.\n"
"\n"
"Exit status: 0 stopped by SIGINT/SIGTERM (everything detached); 1 a runtime\n"
"failure (kernel too old, BPF load or attach, listening); 2 a usage error or a\n"
"bad value (named in the message; nothing was loaded); 3 CGROUP was removed\n"
"while captured (without --reattach).\n";

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "sproxy-bpf: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'sproxy-bpf --help'.\n");
	exit(EXIT_USAGE);
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

static unsigned long number_base(const char *s, const char *opt, int hex_ok,
				 unsigned long min, unsigned long max)
{
	unsigned long v;

	if (cli_number(s, hex_ok, min, max, &v) < 0) {
		fprintf(stderr, "sproxy-bpf: %s wants a %snumber from %lu to %lu, not '%s'\n",
			opt, hex_ok ? "" : "decimal ", min, max, s);
		exit(EXIT_USAGE);
	}
	return v;
}

static unsigned long number(const char *s, const char *opt, unsigned long min,
			    unsigned long max)
{
	return number_base(s, opt, 0, min, max);
}

static void parse(int argc, char **argv, struct options *o)
{
	enum { O_LOG = 256, O_JSON, O_ALL, O_MAPSIZE, O_UDPFLOWS, O_UDPTIMEOUT,
	       O_CONNTIMEOUT, O_RELAY, O_MARK, O_RESOLVER, O_NOFAKE, O_FRANGE,
	       O_FSTORE, O_FEXCL, O_FTTL,
	       O_REATTACH };
	static const struct option lo[] = {
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
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	char err[256];
	int c;

	o->udp_timeout = 60;
	o->connect_timeout = 10;
	o->map_size = 65536;
	o->udp_flows = 1024;
	o->mark = SPROXY_MARK_DEFAULT;
	o->fakeip_ttl = 1;
	while ((c = getopt_long(argc, argv, "l:b:vhV", lo, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (o->n_listen == 8)
				usage_error("at most 8 --listen%s", "");
			if (addr_parse(optarg, 0, &o->listen[o->n_listen], err, sizeof(err)) < 0)
				usage_error("--listen: %s", err);
			o->n_listen++;
			break;
		case 'b': {
			struct bypass_entry *e = &o->bypass[o->n_bypass];

			if (o->n_bypass == 256)
				usage_error("at most 256 --bypass%s", "");
			if (cidr_parse(optarg, &e->key, &e->port, err, sizeof(err)) < 0)
				usage_error("--bypass: %s", err);
			o->n_bypass++;
			break;
		}
		case O_LOG: o->log_path = optarg; break;
		case O_JSON: o->json = 1; break;
		case 'v': o->verbose = 1; break;
		case O_ALL: o->allow_root = 1; break;
		case O_MAPSIZE:
			o->map_size = (uint32_t)number(optarg, "--map-size", 64, 1u << 24);
			break;
		case O_UDPFLOWS:
			o->udp_flows = (uint32_t)number(optarg, "--udp-flows", 1, 16384);
			break;
		case O_UDPTIMEOUT:
			o->udp_timeout = (unsigned)number(optarg, "--udp-timeout", 1, 86400);
			break;
		case O_CONNTIMEOUT:
			o->connect_timeout = (unsigned)number(optarg, "--connect-timeout", 1, 600);
			break;
		case O_RELAY:
			if (strcmp(optarg, "copy") == 0)
				o->relay_copy = 1;
			else if (strcmp(optarg, "splice") != 0)
				usage_error("--relay is 'splice' or 'copy', not '%s'", optarg);
			break;
		case O_MARK:
			o->mark = (uint32_t)number_base(optarg, "--mark", 1, 1, 0xffffffffu);
			break;
		case O_RESOLVER:
			if (o->n_resolvers == 8)
				usage_error("at most 8 --resolver%s", "");
			if (addr_parse(optarg, 53, &o->resolvers[o->n_resolvers], err,
				       sizeof(err)) < 0)
				usage_error("--resolver: %s", err);
			o->n_resolvers++;
			break;
		case O_NOFAKE: o->disable_fakeip = 1; break;
		case O_FRANGE:
			if (fakeip_range_check(optarg, err, sizeof(err)) < 0)
				usage_error("--fakeip-range %s", err);
			o->fakeip_range[strchr(optarg, ':') ? 1 : 0] = optarg;
			break;
		case O_FSTORE: o->fakeip_store = optarg; break;
		case O_FEXCL:
			if (o->n_fakeip_exclude == 64)
				usage_error("at most 64 --fakeip-exclude%s", "");
			o->fakeip_exclude[o->n_fakeip_exclude++] = optarg;
			break;
		case O_FTTL:
			o->fakeip_ttl = (unsigned)number(optarg, "--fakeip-ttl", 0, 86400);
			break;
		case O_REATTACH: o->reattach = 1; break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("sproxy-bpf %s (libbpf %s)\n", SPROXY_VERSION, libbpf_version_string());
			exit(0);
		default:
			fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
			exit(EXIT_USAGE);
		}
	}
}

/* The whole command line: the command, its options, its argument. */
void cli_parse(int argc, char **argv, struct options *o)
{
	if (argc > 1 && argv[1][0] == '-') {
		parse(argc, argv, o);
		fputs(usage_text, stderr);
		exit(EXIT_USAGE);
	}
	if (argc < 2) {
		fputs(usage_text, stderr);
		exit(EXIT_USAGE);
	}
	if (strcmp(argv[1], "attach") != 0)
		usage_error("unknown command '%s'", argv[1]);
	optind = 2;
	parse(argc, argv, o);
	if (optind != argc - 1) {
		if (optind >= argc)
			usage_error("attach needs a CGROUP%s", "");
		usage_error("unexpected argument '%s'", argv[optind + 1]);
	}
	o->cgroup = argv[optind];
}
