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
#include "doctor.h"
#include "nftrules.h"
#include "fakeip.h"
#include "preflight.h"
#include "tag.h"

static const char usage_text[] =
"Usage: sproxy-bpf attach CGROUP [OPTION]...\n"
"       sproxy-bpf tproxy [OPTION]...\n"
"       sproxy-bpf rules [RULES OPTION]... --print | --apply | --remove\n"
"       sproxy-bpf doctor [CGROUP] [--pid PID]... [--port P] [--mark M] [--table T]\n"
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
"tproxy: gateway mode, for traffic of other hosts (and, with the rules'\n"
"--local, of this one) that netfilter TPROXY rules send to the listeners:\n"
"TCP and UDP on each --listen (default [::]:3333, IPv4 and IPv6) with\n"
"IP_TRANSPARENT; no cgroup, no BPF.  The same relay, FakeIP DNS (UDP and TCP\n"
"port 53) and log; the log names the client (via=tproxy proc=none client=).\n"
"Its own sockets carry --mark, which the rules leave alone.  Needs root or\n"
"CAP_NET_ADMIN.  'sproxy-bpf rules --help' tells about the rules.\n"
"\n"
"doctor: checks what capture needs and what is in its way, each finding\n"
"with its fix; exit status 0 healthy, 1 problems found.  'sproxy-bpf doctor\n"
"--help' tells more.\n"
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
	       O_REATTACH, O_TAG, O_HDRTIMEOUT, O_HDRBUDGET, O_IDLETIMEOUT,
	       O_PRIVATE, O_FPERPROC };
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
		{ "tag", required_argument, 0, O_TAG },
		{ "header-timeout", required_argument, 0, O_HDRTIMEOUT },
		{ "header-budget", required_argument, 0, O_HDRBUDGET },
		{ "idle-timeout", required_argument, 0, O_IDLETIMEOUT },
		{ "allow-private-answers", no_argument, 0, O_PRIVATE },
		{ "fakeip-per-process", required_argument, 0, O_FPERPROC },
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
	o->tag = TAG_DEFAULT;
	o->header_timeout = 30;
	o->header_budget = 16384 * 1024;
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
		case O_TAG:
			if (strcmp(optarg, "off") == 0)
				o->tag = NULL;
			else if (strcmp(optarg, "on") == 0)
				o->tag = TAG_DEFAULT;
			else if (tag_template_check(optarg, err, sizeof(err)) < 0)
				usage_error("--tag: %s", err);
			else
				o->tag = optarg;
			break;
		case O_HDRTIMEOUT:
			o->header_timeout = (unsigned)number(optarg, "--header-timeout", 0, 3600);
			break;
		case O_HDRBUDGET:
			o->header_budget = number(optarg, "--header-budget", 64, 1u << 22) * 1024;
			break;
		case O_IDLETIMEOUT:
			o->idle_timeout = (unsigned)number(optarg, "--idle-timeout", 0, 7 * 86400);
			break;
		case O_PRIVATE: o->allow_private_answers = 1; break;
		case O_FPERPROC:
			o->fakeip_per_process = (unsigned)number(optarg, "--fakeip-per-process",
								 1, FAKEIP_MAX_ENTRIES);
			break;
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

static const char rules_usage[] =
"Usage: sproxy-bpf rules [OPTION]... --print | --apply | --remove\n"
"\n"
"The netfilter rules and policy routes that send traffic to 'sproxy-bpf\n"
"tproxy': in mangle PREROUTING, destinations of this host return first,\n"
"then TCP and UDP go to TPROXY on the port with the mark; 'ip rule fwmark\n"
"MARK lookup TABLE' and 'ip route add local default dev lo table TABLE'.\n"
"With --local, mangle OUTPUT marks this host's own packets (not the\n"
"proxy's, not to local addresses) and the policy route brings them back\n"
"through PREROUTING.  TPROXY is never put in OUTPUT.\n"
"\n"
"  --print                  write the rules as a commented shell script\n"
"  --apply                  apply them, all or nothing, and record what was\n"
"                           done (in " RULES_STATE_DIR "/, per network namespace)\n"
"  --remove                 undo exactly what --apply recorded\n"
"  --port P                 the tproxy listener's port (default 3333)\n"
"  --mark M                 the mark TPROXY sets and the ip rule matches\n"
"                           (default 0x5354); not the daemon's --mark\n"
"  --daemon-mark M          the daemon's --mark, left alone (default 0x5350)\n"
"  --table T                policy routing table (default 3333)\n"
"  --interface IF           only traffic arriving on IF; repeatable\n"
"  --cidr CIDR              only traffic from these sources; repeatable\n"
"  --local                  this host's own processes too\n"
"  --ipv6                   IPv6 too (default IPv4 only)\n"
"  --backend nft|iptables   nft (default: one table of its own) or\n"
"                           iptables/ip6tables (chains of its own in mangle)\n"
"\n"
"Exit status: 0 done, 1 a command failed (--apply then leaves nothing\n"
"applied), 2 a usage error.\n";

static void rules_parse(int argc, char **argv)
{
	enum { R_PRINT = 256, R_APPLY, R_REMOVE, R_PORT, R_MARK, R_DMARK, R_TABLE, R_IF,
	       R_CIDR, R_LOCAL, R_IPV6, R_BACKEND, R_STATE, R_HELP };
	static const struct option lo[] = {
		{ "print", no_argument, 0, R_PRINT }, { "apply", no_argument, 0, R_APPLY },
		{ "remove", no_argument, 0, R_REMOVE }, { "port", required_argument, 0, R_PORT },
		{ "mark", required_argument, 0, R_MARK },
		{ "daemon-mark", required_argument, 0, R_DMARK },
		{ "table", required_argument, 0, R_TABLE },
		{ "interface", required_argument, 0, R_IF },
		{ "cidr", required_argument, 0, R_CIDR }, { "local", no_argument, 0, R_LOCAL },
		{ "ipv6", no_argument, 0, R_IPV6 }, { "backend", required_argument, 0, R_BACKEND },
		{ "state", required_argument, 0, R_STATE }, { "help", no_argument, 0, R_HELP },
		{ 0, 0, 0, 0 },
	};
	static struct rules_opts r;
	char err[200];
	int c;

	r.port = RULES_DEFAULT_PORT;
	r.mark = RULES_DEFAULT_MARK;
	r.daemon_mark = SPROXY_MARK_DEFAULT;
	r.table = RULES_DEFAULT_TABLE;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case R_PRINT: case R_APPLY: case R_REMOVE:
			if (r.action)
				usage_error("rules: one of --print, --apply, --remove%s", "");
			r.action = c == R_PRINT ? RULES_PRINT : c == R_APPLY ? RULES_APPLY : RULES_REMOVE;
			break;
		case R_PORT: r.port = (unsigned)number(optarg, "--port", 1, 65535); break;
		case R_MARK: r.mark = (uint32_t)number_base(optarg, "--mark", 1, 1, 0xffffffffu); break;
		case R_DMARK:
			r.daemon_mark = (uint32_t)number_base(optarg, "--daemon-mark", 1, 1, 0xffffffffu);
			break;
		case R_TABLE:
			r.table = (uint32_t)number(optarg, "--table", 1, 0xffffffffu);
			/* default, main and local are the system's own. */
			if (r.table >= 253 && r.table <= 255)
				usage_error("--table %s is the system's (default, main or local)", optarg);
			break;
		case R_IF:
			if (r.n_ifaces == 16)
				usage_error("at most 16 --interface%s", "");
			if (!*optarg || strlen(optarg) >= 16 || strpbrk(optarg, " \t\"'/;{}"))
				usage_error("--interface: '%s' is not an interface name", optarg);
			r.ifaces[r.n_ifaces++] = optarg;
			break;
		case R_CIDR:
			if (rules_add_cidr(&r, optarg, err, sizeof(err)) < 0)
				usage_error("--cidr: %s", err);
			break;
		case R_LOCAL: r.local = 1; break;
		case R_IPV6: r.ipv6 = 1; break;
		case R_BACKEND:
			if (strcmp(optarg, "nft") == 0)
				r.backend = RULES_NFT;
			else if (strcmp(optarg, "iptables") == 0)
				r.backend = RULES_IPTABLES;
			else
				usage_error("--backend is 'nft' or 'iptables', not '%s'", optarg);
			break;
		case R_STATE: r.state = optarg; break;
		case R_HELP:
			fputs(rules_usage, stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'sproxy-bpf rules --help'.\n");
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc)
		usage_error("rules takes no argument, not '%s'", argv[optind]);
	if (!r.action)
		usage_error("rules: say --print, --apply or --remove%s", "");
	if (r.mark == r.daemon_mark)
		usage_error("rules: --mark must differ from --daemon-mark%s: the proxy's "
			    "own packets would be routed back to it", "");
	if (r.n_cidr6 && !r.ipv6)
		usage_error("rules: an IPv6 --cidr needs --ipv6%s", "");
	exit(rules_run(&r));
}

static const char doctor_usage[] =
"Usage: sproxy-bpf doctor [CGROUP] [OPTION]...\n"
"\n"
"Checks what capture needs and what is in its way, and says how to fix each\n"
"finding: the kernel version, BTF, the cgroup v2 mount (hybrid hosts too),\n"
"cgroup BPF support, privileges, CGROUP and the BPF programs on it and its\n"
"ancestors that could fight ours, whether each --pid is in CGROUP and in\n"
"this network namespace, TPROXY support, the TPROXY rules and policy routes\n"
"(when some are present, all must be), and a running daemon's listener.\n"
"Run it where the daemon runs (in its network namespace).\n"
"\n"
"  --pid PID       a process whose traffic should be captured; repeatable\n"
"  --port P        the daemon's listener port (default 3333)\n"
"  --mark M        the TPROXY rules' mark (default 0x5354)\n"
"  --table T       their routing table (default 3333)\n"
"  --ipv6          check the IPv6 rules and routes too\n"
"  (what 'sproxy-bpf rules --apply' recorded overrides --mark, --table, --ipv6)\n"
"\n"
"Exit status: 0 healthy (warnings allowed), 1 problems found, 2 usage.\n";

static void doctor_parse(int argc, char **argv)
{
	enum { D_PID = 256, D_PORT, D_MARK, D_TABLE, D_IPV6, D_HELP };
	static const struct option lo[] = {
		{ "pid", required_argument, 0, D_PID }, { "port", required_argument, 0, D_PORT },
		{ "mark", required_argument, 0, D_MARK }, { "table", required_argument, 0, D_TABLE },
		{ "ipv6", no_argument, 0, D_IPV6 }, { "help", no_argument, 0, D_HELP },
		{ 0, 0, 0, 0 },
	};
	static struct doctor_opts d;
	int c;

	d.port = 3333;
	d.mark = RULES_DEFAULT_MARK;
	d.table = RULES_DEFAULT_TABLE;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case D_PID:
			if (d.n_pids == 16)
				usage_error("at most 16 --pid%s", "");
			d.pids[d.n_pids++] = (pid_t)number(optarg, "--pid", 1, 4194304);
			break;
		case D_PORT: d.port = (unsigned)number(optarg, "--port", 1, 65535); break;
		case D_MARK: d.mark = (uint32_t)number_base(optarg, "--mark", 1, 1, 0xffffffffu); break;
		case D_TABLE: d.table = (uint32_t)number(optarg, "--table", 1, 0xffffffffu); break;
		case D_IPV6: d.ipv6 = 1; break;
		case D_HELP:
			fputs(doctor_usage, stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'sproxy-bpf doctor --help'.\n");
			exit(EXIT_USAGE);
		}
	}
	if (optind < argc)
		d.cgroup = argv[optind++];
	if (optind != argc)
		usage_error("doctor: unexpected argument '%s'", argv[optind]);
	exit(doctor_run(&d));
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
	if (strcmp(argv[1], "rules") == 0)
		rules_parse(argc, argv);
	if (strcmp(argv[1], "doctor") == 0)
		doctor_parse(argc, argv);
	if (strcmp(argv[1], "tproxy") == 0) {
		optind = 2;
		parse(argc, argv, o);
		if (optind != argc)
			usage_error("tproxy takes no argument, not '%s'", argv[optind]);
		o->tproxy = 1;
		return;
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
