/* sproxy-bpf's command line: the usage text, options and their checks.
 * Every bad value ends here with exit status 2, before anything is loaded. */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "fakeip.h"
#include "preflight.h"
#include "privs.h"
#include "rules.h"
#include "tag.h"
#include "upstream.h"

/* Ports that carry TLS (HTTPS, SMTPS, LDAPS, DNS over TLS, FTPS, IMAPS,
 * POP3S, XMPP over TLS, HTTPS-alt) or SSH: nothing there can be tagged. */
#define TLS_PORTS_DEFAULT "22,443,465,563,636,853,989-995,5223,8443"

static int tls_ports(struct options *o, const char *s);

static const char usage_text[] =
"Usage: sproxy-bpf attach CGROUP [OPTION]...\n"
"       sproxy-bpf detach CGROUP [--pin DIR]\n"
"       sproxy-bpf check [CGROUP] [OPTION]...\n"
"       sproxy-bpf run [OPTION]... -- CMD [ARG]...\n"
"       sproxy-bpf tproxy [OPTION]...\n"
"       sproxy-bpf rules [RULES OPTION]... --print | --apply | --remove\n"
"       sproxy-bpf doctor [CGROUP] [DOCTOR OPTION]...\n"
"       sproxy-bpf status [--json] [--pid N | --socket PATH]\n"
"       sproxy-bpf top [-n COUNT] [--interval SEC] [--pid N | --socket PATH]\n"
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
"run makes a cgroup of its own, <cg2>/sproxy-bpf.run/<pid>, captures it as\n"
"attach would, then runs CMD there as the invoking user (SUDO_UID/SUDO_GID or\n"
"PKEXEC_UID; root only with --user root), on the terminal, passing signals on.\n"
"It lives until CMD and every process CMD started have exited, then detaches,\n"
"removes the cgroup and exits with CMD's status (128+N for signal N).  Without\n"
"--listen it listens on a free port, so several runs go side by side.  Its\n"
"messages and the connection log go to stderr (or --log), never to CMD's\n"
"stdout; SIGHUP goes on to CMD.  Every option of attach applies; run's own:\n"
"      --user NAME|UID        run CMD as this user\n"
"      --cgroup-parent CGROUP make the run's cgroup below CGROUP instead\n"
"\n"
"tproxy: gateway mode, for traffic of other hosts (and, with the rules'\n"
"--local, of this one) that netfilter TPROXY rules send to the listeners:\n"
"TCP and UDP on each --listen (default [::]:3333, IPv4 and IPv6) with\n"
"IP_TRANSPARENT; no cgroup, no BPF.  The same relay, FakeIP DNS (UDP and TCP\n"
"port 53) and log; the log names the client (capture=tproxy proc=none client=).\n"
"Its own sockets carry --mark, which the rules leave alone; SIGHUP reopens\n"
"the log only.  Needs root or CAP_NET_ADMIN.  'sproxy-bpf rules --help'\n"
"tells about the netfilter rules.\n"
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
"      --udp-flows N          concurrent UDP flows per address family (default 1024;\n"
"                             a sixteenth of them only for DNS, to port 53)\n"
"      --udp-flows-per-process N  UDP flows one process may hold, both families\n"
"                             together (default a quarter of --udp-flows, no\n"
"                             bound below 16; 0: no bound)\n"
"      --udp-timeout SEC      idle UDP flows end after SEC seconds (default 60)\n"
"      --connect-timeout SEC  outbound connect timeout (default 10)\n"
"      --relay MODE           splice (default: bulk bytes that need no rewriting\n"
"                             stay in the kernel) or copy (always through a buffer)\n"
"      --netns all|current    all (default): processes of CGROUP in other network\n"
"                             namespaces (containers) are captured too, through\n"
"                             a listener the daemon opens inside each; current:\n"
"                             only those of the daemon's own namespace\n"
"      --mark N               SO_MARK of the daemon's own sockets, which are never\n"
"                             captured; decimal or 0x hex (default 0x5350)\n"
"      --pin DIR              fail-closed: pin programs, links and maps in DIR\n"
"                             (on a BPF filesystem: /sys/fs/bpf/sproxy), so that\n"
"                             CGROUP's connections fail, not go direct, once the\n"
"                             daemon is gone; a daemon with the same DIR takes\n"
"                             them over; 'detach CGROUP' removes them\n"
"      --reattach             when CGROUP is removed, wait for its path to come\n"
"                             back and capture it again (default: exit, status 3)\n"
"      --tag off|on|TEMPLATE  what HTTP User-Agents get appended: on (default) is\n"
"                             'sproxy-bpf (comm=%c; pid=%p)'; a TEMPLATE may use\n"
"                             %c comm, %p pid, %u uid, %g gid, %% a percent sign\n"
"      --fast-path on|off     on (default): connections the proxy need not see\n"
"                             (no tagging, no upstream, rules the kernel can\n"
"                             decide) go straight to the server, logged with\n"
"                             path=kernel; off: every connection is proxied\n"
"      --tls-ports LIST       ports never tagged, so on the kernel path when\n"
"                             nothing else needs the proxy: 'none' or N and A-B\n"
"                             joined by ','; with --tag off, every port; default\n"
"                             " TLS_PORTS_DEFAULT "\n"
"      --header-timeout SEC   a request header not complete after SEC seconds\n"
"                             ends its connection (default 30; 0: never)\n"
"      --header-budget KIB    memory for unfinished request headers, all\n"
"                             connections together (default 16384); past it a\n"
"                             connection is relayed untagged\n"
"      --idle-timeout SEC     end a TCP connection after SEC seconds without a\n"
"                             byte either way (default 0: never)\n"
"      --control-dir DIR      where the control socket PID.sock that status and\n"
"                             top use is made (default: $SPROXY_BPF_CONTROL_DIR,\n"
"                             else /run/sproxy-bpf)\n"
"      --config FILE          read options from FILE: 'option = value' lines, one\n"
"                             long option each (flags take true or false), as\n"
"                             if written here; '#' starts a comment line\n"
"Rules:\n"
"      --rule TYPE,VALUE,TARGET  route a connection; repeatable, the first match\n"
"                             wins (e.g. DOMAIN-SUFFIX,example.com,REJECT;\n"
"                             default DIRECT).  Types and targets: see README\n"
"      --sniff on|off         to a real address (not FakeIP), read the name in\n"
"                             the client's TLS ClientHello (TCP, QUIC) or HTTP\n"
"                             Host for DOMAIN rules and the log (default on)\n"
"      --sniff-override on|off  send a sniffed name to a SOCKS5 or HTTP upstream\n"
"                             in place of the address (default on)\n"
"      --sniff-timeout MS     wait at most MS ms for the client's first bytes,\n"
"                             then go on by address (default 100)\n"
"Hand-off (see README):\n"
"      --to ADDR:PORT         hand captured TCP to the REDIRECT-style proxy\n"
"                             listening there (redsocks, mitmproxy --mode\n"
"                             transparent, a redir-port) instead of relaying it;\n"
"                             its getsockopt(SO_ORIGINAL_DST) gets the answer.\n"
"                             UDP and DNS stay here; FakeIP is off (real answers)\n"
"      --proxy-cgroup CGROUP  the cgroup that proxy runs in (default: found from\n"
"                             the process listening on --to); never the root\n"
"Upstream proxies:\n"
"      --upstream [NAME=]URL  an upstream proxy; repeatable.  URL is\n"
"                             socks5://[USER:PASS@]HOST[:PORT] (socks5h:// too),\n"
"                             http://[USER:PASS@]HOST[:PORT] or direct; the port\n"
"                             defaults to 1080; USER and PASS percent-encoded.\n"
"                             Without NAME it is the default route, which every\n"
"                             connection takes.  NAME=@FILE reads the URL from\n"
"                             FILE, which others must not be able to read: keeps\n"
"                             a password out of ps\n"
"      --udp-over-http MODE   UDP on a route through an HTTP proxy, which cannot\n"
"                             carry it: reject (default) or direct\n"
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
"                             default: the daemon connects with CAP_NET_ADMIN\n"
"                             and its mark)\n"
"Privileges (attach, tproxy; run and --pin keep them all):\n"
"      --user NAME            once set up, the daemon runs as NAME with\n"
"                             CAP_NET_ADMIN (and for --netns all CAP_SYS_ADMIN\n"
"                             and CAP_SYS_PTRACE; default: sproxy-bpf if that\n"
"                             user exists, else nobody); root keeps them all\n"
"      --no-drop              keep root and every capability (debugging)\n"
"  -h, --help                 this text\n"
"  -V, --version              the version\n"
"\n"
"N and SEC are decimal numbers; --mark also takes 0x hex.\n"
"\n"
"Exit status: 0 stopped by SIGINT/SIGTERM (everything detached); 1 a runtime\n"
"failure (kernel too old, BPF load or attach, listening); 2 a usage error or a\n"
"bad value (named in the message; nothing was loaded); 3 CGROUP was removed\n"
"while captured (without --reattach).  check: 0 all is well, 2 it is not.\n"
"run: CMD's status, or one of these when CMD could not be started.\n"
"\n"
"detach removes sproxy-bpf's programs left on CGROUP by a daemon that is gone,\n"
"and their pins (in DIR, or found on the BPF filesystems), printing each link,\n"
"program and pin it removed, or 'nothing attached'.  Status 0 then; 1 when a\n"
"running daemon holds them (stop it first) or removing failed; 2 a bad CGROUP\n"
"or DIR.\n";


enum { O_LOG = 256, O_JSON, O_ALL, O_MAPSIZE, O_UDPFLOWS, O_UDPTIMEOUT,
       O_CONNTIMEOUT, O_RELAY, O_MARK, O_RESOLVER, O_NOFAKE, O_FRANGE,
       O_FSTORE, O_FEXCL, O_FTTL,
       O_REATTACH, O_TAG, O_HDRTIMEOUT, O_HDRBUDGET, O_IDLETIMEOUT,
       O_CONFIG, O_RULE, O_PRIVATE, O_FPERPROC, O_UPSTREAM, O_UDPHTTP,
       O_UDPPERPROC, O_USER, O_CGPARENT, O_NETNS, O_PIN, O_CTLDIR, O_SNIFF,
       O_SNIFFOVERRIDE, O_SNIFFTIMEOUT, O_FASTPATH, O_TLSPORTS, O_TO,
       O_PROXYCG, O_NODROP };

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
	{ "udp-flows-per-process", required_argument, 0, O_UDPPERPROC },
	{ "connect-timeout", required_argument, 0, O_CONNTIMEOUT },
	{ "relay", required_argument, 0, O_RELAY },
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

static int is_run;          /* the command is run */

/* Parsed, resolved, and its password blanked where it was read (argv), so
 * that ps shows less of it from now on (NAME=@FILE shows none at all). */
static int upstream_option(struct options *o, const char *arg, char *err, size_t errlen)
{
	struct upstream *u = &o->upstream[o->n_upstream];
	char msg[400], *at, *colon, *w = (char *)arg;

	if (o->n_upstream == UPSTREAM_MAX)
		return usage_error(err, errlen, "at most %d --upstream", UPSTREAM_MAX);
	if (upstream_parse_arg(arg, u, msg, sizeof(msg)) < 0)
		return usage_error(err, errlen, "--upstream %s", msg);
	if (upstream_find(o, u->name))
		return usage_error(err, errlen, "--upstream: the name '%s' is given twice",
				   u->name);
	if (upstream_resolve(u, msg, sizeof(msg)) < 0)
		return usage_error(err, errlen, "--%s", msg);
	o->n_upstream++;
	colon = strstr(w, "://") ? strchr(strstr(w, "://") + 3, ':') : NULL;
	at = strrchr(w, '@');
	if (colon && at && colon < at)
		memset(colon + 1, '*', (size_t)(at - colon - 1));
	return 0;
}

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
			return usage_error(err, errlen, "--relay is 'splice' or 'copy', not '%s'",
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
			return usage_error(err, errlen, "--netns is 'all' or 'current', not '%s'",
					   arg);
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
	case O_PIN:
		/* run's cgroup goes with it: nothing to keep closed */
		if (is_run)
			return usage_error(err, errlen, "--pin is an option of attach");
		if (!(o->pin_dir = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		break;
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
	case O_SNIFF:
		if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
			return usage_error(err, errlen, "--sniff is 'on' or 'off', not '%s'", arg);
		o->sniff = strcmp(arg, "on") == 0;
		break;
	case O_SNIFFOVERRIDE:
		if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
			return usage_error(err, errlen, "--sniff-override is 'on' or 'off', not '%s'",
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
			return usage_error(err, errlen, "--control-dir %s: too long for a unix "
					   "socket's path (90 bytes at most)", arg);
		if (!(o->control_dir = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		break;
	case O_UDPHTTP:
		if (strcmp(arg, "direct") == 0)
			o->udp_over_http = UDP_OVER_HTTP_DIRECT;
		else if (strcmp(arg, "reject") == 0)
			o->udp_over_http = UDP_OVER_HTTP_REJECT;
		else
			return usage_error(err, errlen,
					   "--udp-over-http is 'reject' or 'direct', not '%s'", arg);
		break;
	case O_TO:
		if (addr_parse(arg, 0, &o->handoff_to, msg, sizeof(msg)) < 0)
			return usage_error(err, errlen, "--to: %s", msg);
		break;
	case O_PROXYCG:
		if (!(o->proxy_cgroup = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
		break;
	case O_NODROP: o->no_drop = flag(arg); break;
	case O_CONFIG:
		return apply_config(o, arg, err, errlen);
	case O_FASTPATH:
		if (strcmp(arg, "on") == 0)
			o->fast_path_off = 0;
		else if (strcmp(arg, "off") == 0)
			o->fast_path_off = 1;
		else
			return usage_error(err, errlen, "--fast-path is 'on' or 'off', not '%s'",
					   arg);
		break;
	case O_TLSPORTS:
		if (tls_ports(o, arg) < 0)
			return usage_error(err, errlen, "--tls-ports: '%s' is not 'none' or a "
					   "list of ports and ranges A-B (1 to 65535) joined by "
					   "',', at most 32", arg);
		break;
	case O_RULE: {
		char rmsg[512];

		if (!o->rules && !(o->rules = rules_new()))
			return usage_error(err, errlen, "out of memory");
		if (rules_add(o->rules, arg, o->origin ? o->origin : "--rule", rmsg,
			      sizeof(rmsg)) < 0)
			return usage_error(err, errlen, "--rule '%.200s': %s", arg, rmsg);
		break;
	}
	case O_USER:
		/* Whom the command runs as: run's command, attach's daemon. */
		if (!is_run) {
			if (privs_check_user(arg, err, errlen) < 0)
				return BAD_USAGE;
			if (!(o->user = keep(o, arg)))
				return usage_error(err, errlen, "out of memory");
			break;
		}
		/* fall through */
	case O_CGPARENT: {
		const char **to = c == O_USER ? &o->run_user : &o->run_parent;

		if (!is_run)
			return usage_error(err, errlen, "--%s is an option of run",
					   c == O_USER ? "user" : "cgroup-parent");
		if (!(*to = keep(o, arg)))
			return usage_error(err, errlen, "out of memory");
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
	int n = 0;

	for (int i = 0; i < o->n_upstream && n < max; i++)
		names[n++] = o->upstream[i].name;
	return n;
}

int cli_finish(struct options *o, char *err, size_t errlen)
{
	const char *names[64];
	int n = upstream_names(o, names, 64);

	if (o->proxy_cgroup && !o->handoff_to.ss_family)
		return usage_error(err, errlen, "--proxy-cgroup goes with --to");
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

static void defaults(struct options *o)
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

/* The libraries it was built with, and those it runs with when they differ. */
static void print_version(void)
{
	char bpf[24];

	snprintf(bpf, sizeof(bpf), "v%d.%d", LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION);
	printf("sproxy-bpf %s (built with libbpf %s, libevent %s", SPROXY_VERSION, bpf,
	       LIBEVENT_VERSION);
	if (strcmp(bpf, libbpf_version_string()) || strcmp(LIBEVENT_VERSION, event_get_version()))
		printf("; running with libbpf %s, libevent %s", libbpf_version_string(),
		       event_get_version());
	puts(")");
}

static void parse(int argc, char **argv, struct options *o)
{
	char err[4096];
	int c, rc;

	defaults(o);
	/* run: options end at CMD, whose own options are its own. */
	while ((c = getopt_long(argc, argv, is_run ? "+l:b:vhV" : "l:b:vhV", long_opts,
				NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			print_version();
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
	int check, tproxy;

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
		exit(cli_rules(argc, argv));
	if (strcmp(argv[1], "doctor") == 0)
		exit(cli_doctor(argc, argv));
	tproxy = strcmp(argv[1], "tproxy") == 0;
	check = strcmp(argv[1], "check") == 0;
	is_run = strcmp(argv[1], "run") == 0;
	if (!check && !is_run && !tproxy && strcmp(argv[1], "attach") != 0) {
		fprintf(stderr, "sproxy-bpf: unknown command '%s'\nTry 'sproxy-bpf --help'.\n",
			argv[1]);
		exit(EXIT_USAGE);
	}
	optind = 2;
	parse(argc, argv, o);
	if (is_run) {
		if (optind >= argc) {
			fprintf(stderr, "sproxy-bpf: run needs a command: sproxy-bpf run "
				"[OPTION]... -- CMD [ARG]...\nTry 'sproxy-bpf --help'.\n");
			exit(EXIT_USAGE);
		}
		o->run_argv = argv + optind;
		optind = argc - 1;      /* CMD is no CGROUP */
	}
	if (tproxy && optind < argc) {
		fprintf(stderr, "sproxy-bpf: tproxy takes no argument, not '%s'\n"
			"Try 'sproxy-bpf --help'.\n", argv[optind]);
		exit(EXIT_USAGE);
	}
	o->tproxy = tproxy;
	if (tproxy && (o->handoff_to.ss_family || o->proxy_cgroup)) {
		fprintf(stderr, "sproxy-bpf: --to and --proxy-cgroup are options of attach "
			"and run\nTry 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	if (tproxy && o->pin_dir) {
		fprintf(stderr, "sproxy-bpf: --pin is an option of attach (tproxy loads "
			"no BPF)\nTry 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	if (!tproxy && (optind < argc - 1 || (!check && optind != argc - 1))) {
		if (optind >= argc)
			fprintf(stderr, "sproxy-bpf: attach needs a CGROUP\n");
		else
			fprintf(stderr, "sproxy-bpf: unexpected argument '%s'\n",
				argv[optind + 1]);
		fprintf(stderr, "Try 'sproxy-bpf --help'.\n");
		exit(EXIT_USAGE);
	}
	o->cgroup = optind < argc && !is_run ? argv[optind] : NULL;
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
