/* The command lines of the gateway tools: 'rules' and 'doctor'.  A bad
 * value exits with status 2, named, before anything is changed. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "doctor.h"
#include "nftrules.h"

static const char *command;     /* for the pointer to --help */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sproxy-bpf: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'sproxy-bpf %s --help'.\n", command);
	exit(EXIT_USAGE);
}

static unsigned long num(const char *s, const char *opt, int hex_ok, unsigned long min,
			 unsigned long max)
{
	unsigned long v;

	if (cli_number(s, hex_ok, min, max, &v) < 0) {
		fprintf(stderr, "sproxy-bpf: %s wants a %snumber from %lu to %lu, not '%s'\n",
			opt, hex_ok ? "" : "decimal ", min, max, s);
		exit(EXIT_USAGE);
	}
	return v;
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

int cli_rules(int argc, char **argv)
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

	command = "rules";
	r.port = RULES_DEFAULT_PORT;
	r.mark = RULES_DEFAULT_MARK;
	r.daemon_mark = SPROXY_MARK_DEFAULT;
	r.table = RULES_DEFAULT_TABLE;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case R_PRINT: case R_APPLY: case R_REMOVE:
			if (r.action)
				die("rules: one of --print, --apply, --remove");
			r.action = c == R_PRINT ? RULES_PRINT : c == R_APPLY ? RULES_APPLY : RULES_REMOVE;
			break;
		case R_PORT: r.port = (unsigned)num(optarg, "--port", 0, 1, 65535); break;
		case R_MARK: r.mark = (uint32_t)num(optarg, "--mark", 1, 1, 0xffffffffu); break;
		case R_DMARK:
			r.daemon_mark = (uint32_t)num(optarg, "--daemon-mark", 1, 1, 0xffffffffu);
			break;
		case R_TABLE:
			r.table = (uint32_t)num(optarg, "--table", 0, 1, 0xffffffffu);
			/* default, main and local are the system's own. */
			if (r.table >= 253 && r.table <= 255)
				die("--table %s is the system's (default, main or local)", optarg);
			break;
		case R_IF:
			if (r.n_ifaces == 16)
				die("at most 16 --interface");
			if (!*optarg || strlen(optarg) >= 16 || strpbrk(optarg, " \t\"'/;{}"))
				die("--interface: '%s' is not an interface name", optarg);
			r.ifaces[r.n_ifaces++] = optarg;
			break;
		case R_CIDR:
			if (rules_add_cidr(&r, optarg, err, sizeof(err)) < 0)
				die("--cidr: %s", err);
			break;
		case R_LOCAL: r.local = 1; break;
		case R_IPV6: r.ipv6 = 1; break;
		case R_BACKEND:
			if (strcmp(optarg, "nft") == 0)
				r.backend = RULES_NFT;
			else if (strcmp(optarg, "iptables") == 0)
				r.backend = RULES_IPTABLES;
			else
				die("--backend is 'nft' or 'iptables', not '%s'", optarg);
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
		die("rules takes no argument, not '%s'", argv[optind]);
	if (!r.action)
		die("rules: say --print, --apply or --remove");
	if (r.mark == r.daemon_mark)
		die("rules: --mark must differ from --daemon-mark: the proxy's "
			    "own packets would be routed back to it");
	if (r.n_cidr6 && !r.ipv6)
		die("rules: an IPv6 --cidr needs --ipv6");
	return rules_run(&r);
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

int cli_doctor(int argc, char **argv)
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

	command = "doctor";
	d.port = 3333;
	d.mark = RULES_DEFAULT_MARK;
	d.table = RULES_DEFAULT_TABLE;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case D_PID:
			if (d.n_pids == 16)
				die("at most 16 --pid");
			d.pids[d.n_pids++] = (pid_t)num(optarg, "--pid", 0, 1, 4194304);
			break;
		case D_PORT: d.port = (unsigned)num(optarg, "--port", 0, 1, 65535); break;
		case D_MARK: d.mark = (uint32_t)num(optarg, "--mark", 1, 1, 0xffffffffu); break;
		case D_TABLE: d.table = (uint32_t)num(optarg, "--table", 0, 1, 0xffffffffu); break;
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
		die("doctor: unexpected argument '%s'", argv[optind]);
	return doctor_run(&d);
}

