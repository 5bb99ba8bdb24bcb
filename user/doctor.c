/* Each check prints one finding: "ok", "info", "warn" (may bite, not
 * wrong) or "FAIL" (capture will not work), with a "fix:" line when there
 * is something to do.  Only FAILs make the exit status 1. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <zlib.h>

#include "cgroup.h"
#include "doctor.h"
#include "nftrules.h"
#include "preflight.h"

static int n_fail, n_warn;

static void say(const char *what, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(const char *what, const char *fix, const char *fmt, ...)
{
	va_list ap;

	if (strcmp(what, "FAIL") == 0)
		n_fail++;
	if (strcmp(what, "warn") == 0)
		n_warn++;
	printf("%-5s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (fix)
		printf("      fix: %s\n", fix);
}

static void check_kernel(void)
{
	struct utsname u;
	int ok;

	if (uname(&u) < 0 || (ok = kernel_recent_enough(u.release)) < 0) {
		say("warn", NULL, "kernel: cannot tell the version (attach needs %d.%d or later)",
		    PREFLIGHT_MIN_KERNEL_MAJOR, PREFLIGHT_MIN_KERNEL_MINOR);
		return;
	}
	if (ok)
		say("ok", NULL, "kernel %s (attach needs %d.%d or later)", u.release,
		    PREFLIGHT_MIN_KERNEL_MAJOR, PREFLIGHT_MIN_KERNEL_MINOR);
	else
		say("FAIL", "a kernel of 5.18 or later; 'sproxy-bpf tproxy' (gateway mode) "
		    "works without it", "kernel %s is too old for attach: its getsockopt hook "
		    "cannot refuse with its own errno", u.release);
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		say("ok", NULL, "BTF: /sys/kernel/btf/vmlinux");
	else
		say("FAIL", "a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution "
		    "kernels are)", "no /sys/kernel/btf/vmlinux: the CO-RE programs cannot be "
		    "loaded");
}

/* CONFIG_NAME from /proc/config.gz: 'y', 'm', 'n', or 0 when unknown. */
static char kconfig(const char *name)
{
	char line[256], want[96];
	gzFile gz = gzopen("/proc/config.gz", "rb");
	char v = 0;

	if (!gz)
		return 0;
	v = 'n';
	snprintf(want, sizeof(want), "CONFIG_%s=", name);
	while (gzgets(gz, line, sizeof(line))) {
		if (strncmp(line, want, strlen(want)) == 0) {
			v = line[strlen(want)];
			break;
		}
	}
	gzclose(gz);
	return v;
}

static int has_v1_mounts(void)
{
	char line[1024], type[64];
	FILE *fp = fopen("/proc/mounts", "re");
	int v1 = 0;

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "%*s %*s %63s", type) == 1 && strcmp(type, "cgroup") == 0)
			v1 = 1;
	fclose(fp);
	return v1;
}

static void check_cgroup_v2(char *mount, size_t len)
{
	int fd;
	__u32 cnt = 0;

	if (cg_mount(mount, len) < 0) {
		mount[0] = 0;
		say("FAIL", "mount -t cgroup2 none /sys/fs/cgroup (or boot with "
		    "systemd.unified_cgroup_hierarchy=1)", "no cgroup v2 hierarchy is mounted");
		return;
	}
	if (has_v1_mounts())
		say("ok", NULL, "cgroup v2 at %s (a hybrid host: v1 controllers beside it; give "
		    "cgroups under %s)", mount, mount);
	else
		say("ok", NULL, "cgroup v2 at %s", mount);
	fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (bpf_prog_query(fd, BPF_CGROUP_INET4_CONNECT, 0, NULL, NULL, &cnt) == 0)
		say("ok", NULL, "cgroup BPF: the kernel answers queries on %s", mount);
	else if (errno == EPERM)
		say("info", NULL, "cgroup BPF: cannot query without privileges (CONFIG_CGROUP_BPF=%c)",
		    kconfig("CGROUP_BPF") ? kconfig("CGROUP_BPF") : '?');
	else
		say("FAIL", "a kernel with CONFIG_CGROUP_BPF=y", "cgroup BPF: %s", strerror(errno));
	close(fd);
}

static void check_privileges(void)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *fp = fopen("/proc/self/status", "re");
	const unsigned long long need = (1ull << 12) | (1ull << 21) | (1ull << 39);

	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	if (fp)
		fclose(fp);
	if (geteuid() == 0 && (eff & need) == need)
		say("ok", NULL, "privileges: root");
	else if ((eff & need) == need)
		say("ok", NULL, "privileges: CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN");
	else
		say("FAIL", "run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN "
		    "(AmbientCapabilities= in a unit)", "privileges: missing%s%s%s",
		    eff & (1ull << 39) ? "" : " CAP_BPF", eff & (1ull << 12) ? "" : " CAP_NET_ADMIN",
		    eff & (1ull << 21) ? "" : " CAP_SYS_ADMIN");
}

static const struct {
	enum bpf_attach_type type;
	const char *name;
	int rewrites;                 /* changes where traffic goes, as ours does */
} hooks[] = {
	{ BPF_CGROUP_INET4_CONNECT, "connect4", 1 }, { BPF_CGROUP_INET6_CONNECT, "connect6", 1 },
	{ BPF_CGROUP_UDP4_SENDMSG, "sendmsg4", 1 }, { BPF_CGROUP_UDP6_SENDMSG, "sendmsg6", 1 },
	{ BPF_CGROUP_UDP4_RECVMSG, "recvmsg4", 1 }, { BPF_CGROUP_UDP6_RECVMSG, "recvmsg6", 1 },
	{ BPF_CGROUP_INET4_GETPEERNAME, "getpeername4", 1 },
	{ BPF_CGROUP_INET6_GETPEERNAME, "getpeername6", 1 },
	{ BPF_CGROUP_SOCK_OPS, "sockops", 0 }, { BPF_CGROUP_GETSOCKOPT, "getsockopt", 1 },
	{ BPF_CGROUP_INET_EGRESS, "egress", 0 }, { BPF_CGROUP_INET_INGRESS, "ingress", 0 },
	{ BPF_CGROUP_INET_SOCK_CREATE, "sock_create", 0 },
};

/* Programs on dir of the hooks that matter; ours (sproxy_*) are named so. */
static void programs_on(const char *dir, int ancestor)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	for (size_t h = 0; h < sizeof(hooks) / sizeof(hooks[0]); h++) {
		__u32 ids[64], cnt = 64, flags = 0;

		if (bpf_prog_query(fd, hooks[h].type, 0, &flags, ids, &cnt) < 0)
			continue;
		for (__u32 i = 0; i < cnt; i++) {
			struct bpf_prog_info info;
			__u32 ilen = sizeof(info);
			int pfd = bpf_prog_get_fd_by_id(ids[i]);

			memset(&info, 0, sizeof(info));
			if (pfd >= 0) {
				bpf_obj_get_info_by_fd(pfd, &info, &ilen);
				close(pfd);
			}
			if (strncmp(info.name, "sproxy_", 7) == 0) {
				say("info", NULL, "%s: sproxy-bpf's own %s program (id %u): a daemon "
				    "is attached%s", dir, hooks[h].name, ids[i],
				    ancestor ? " to an ancestor" : "");
				continue;
			}
			if (hooks[h].rewrites)
				say("warn", "detach it, or capture a cgroup outside its reach; "
				    "'bpftool cgroup tree' lists every program", "%s%s: %s program "
				    "'%s' (id %u) also rewrites addresses: it and sproxy-bpf may "
				    "undo each other", dir, ancestor ? " (an ancestor)" : "",
				    hooks[h].name, info.name[0] ? info.name : "?", ids[i]);
			else
				say("info", NULL, "%s%s: %s program '%s' (id %u) (filters, does not "
				    "redirect; it can still drop captured traffic)", dir,
				    ancestor ? " (an ancestor)" : "", hooks[h].name,
				    info.name[0] ? info.name : "?", ids[i]);
		}
	}
	close(fd);
}

static void check_target(const char *mount, const char *arg, char *target, size_t len)
{
	char err[512], dir[PATH_MAX];

	target[0] = 0;
	if (cg_resolve(mount, arg, 1, target, len, err, sizeof(err)) < 0) {
		target[0] = 0;
		say("FAIL", "give a cgroup v2 directory, absolute or relative to the mount "
		    "(e.g. user.slice/user-1000.slice); 'cat /proc/PID/cgroup' shows a "
		    "process's (the line starting with 0::)", "%s", err);
		return;
	}
	say("ok", NULL, "cgroup %s", target);
	/* Multi-attached programs of ancestors run for the target too. */
	snprintf(dir, sizeof(dir), "%s", target);
	for (int ancestor = 0;; ancestor = 1) {
		char *slash;

		programs_on(dir, ancestor);
		if (strcmp(dir, mount) == 0 || !(slash = strrchr(dir, '/')) || slash == dir)
			break;
		*slash = 0;
	}
}

static void check_pid(pid_t pid, const char *mount, const char *target)
{
	char path[64], line[PATH_MAX + 8], cg[2 * PATH_MAX + 8] = "", fix[PATH_MAX + 200];
	struct stat mine, theirs;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	fp = fopen(path, "re");
	if (!fp) {
		say("FAIL", "give the pid of a running process", "pid %d: %s", (int)pid,
		    strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), fp))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(cg, sizeof(cg), "%s%s", mount, strcmp(line + 3, "/") ? line + 3 : "");
		}
	fclose(fp);
	if (target[0] && !cg_within(cg, target)) {
		snprintf(fix, sizeof(fix), "move it: echo %d > %s/cgroup.procs (its children "
			 "follow it from then on)", (int)pid, target);
		say("FAIL", fix, "pid %d is in %s, not in %s: its traffic is not captured",
		    (int)pid, cg[0] ? cg : "no cgroup v2 group", target);
	} else if (target[0]) {
		say("ok", NULL, "pid %d is in %s", (int)pid, cg);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &theirs) < 0 || stat("/proc/self/ns/net", &mine) < 0) {
		say("warn", NULL, "pid %d: cannot read its network namespace: %s", (int)pid,
		    strerror(errno));
	} else if (theirs.st_ino != mine.st_ino) {
		/* Served through a listener the daemon opens in there. */
		say("info", NULL, "pid %d is in another network namespace (netns=%llu, a "
		    "container?): captured through a listener the daemon opens there, "
		    "unless it runs with --netns current", (int)pid,
		    (unsigned long long)theirs.st_ino);
	} else {
		say("ok", NULL, "pid %d is in this network namespace", (int)pid);
	}
}

/* A kernel option for TPROXY: built in, a module (loaded or not), absent. */
static void check_kconfig(const char *opt, const char *what)
{
	char v = kconfig(opt);

	if (v == 'y')
		say("ok", NULL, "%s: built in (CONFIG_%s)", what, opt);
	else if (v == 'm')
		say("ok", NULL, "%s: a module (CONFIG_%s=m; loaded on first use)", what, opt);
	else if (v == 'n')
		say("warn", "a kernel with it, for 'sproxy-bpf tproxy' (attach does not need it)",
		    "%s: not in this kernel (CONFIG_%s)", what, opt);
}

static void check_netfilter(void)
{
	if (!kconfig("NFT_TPROXY")) {
		say("info", NULL, "TPROXY support: no /proc/config.gz to tell; 'sproxy-bpf rules "
		    "--apply' says so if it is missing");
		return;
	}
	check_kconfig("NFT_TPROXY", "nft tproxy");
	check_kconfig("NFT_SOCKET", "nft socket match");
	check_kconfig("NETFILTER_XT_TARGET_TPROXY", "iptables TPROXY target");
	check_kconfig("NETFILTER_XT_MATCH_SOCKET", "iptables socket match");
}

/* The rules' record, if any, names the mark, the table and the families. */
static int read_record(struct rules_opts *r)
{
	char path[256], line[256];
	unsigned mark, table;
	FILE *fp;
	int found = 0;

	fp = rules_record_open(r, path, sizeof(path));
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		if (sscanf(line, "undo ip -4 rule del fwmark %x lookup %u", &mark, &table) == 2)
			found = 1;
		else if (sscanf(line, "undo ip -6 rule del fwmark %x lookup %u", &mark, &table) == 2)
			r->ipv6 = found = 1;
		else
			continue;
		r->mark = mark;
		r->table = table;
	}
	fclose(fp);
	return found;
}

static void check_rules(const struct doctor_opts *o, int *have_rules)
{
	struct rules_opts r = { .mark = o->mark, .table = o->table, .ipv6 = o->ipv6 };
	char why[1024], fix[300];
	int recorded = read_record(&r), state = rules_check(&r, why, sizeof(why)), fam;

	*have_rules = state != 0;
	snprintf(fix, sizeof(fix), "sproxy-bpf rules --remove, then sproxy-bpf rules --apply "
		 "with your options (--print shows what they do)");
	if (state == 1)
		say("ok", NULL, "TPROXY rules: the TPROXY rules, 'ip rule fwmark 0x%x lookup %u' "
		    "and a local route on lo in table %u%s", r.mark, r.table, r.table,
		    r.ipv6 ? ", IPv4 and IPv6" : "");
	if (state == 1 && (fam = rules_local_unroutable(&r)))
		say("warn", "a default route through the uplink (the marked packets "
		    "never take it; it only has to exist)",
		    "TPROXY rules capture this host's own traffic, but IPv%d has no default "
		    "route: connecting to an address without a route (FakeIP ones included) "
		    "fails before the rules see it", fam);
	else if (state == 0 && !recorded)
		say("info", NULL, "TPROXY rules: none in this network namespace (only gateway "
		    "mode, 'sproxy-bpf tproxy', needs them)");
	else
		say("FAIL", fix, "TPROXY rules: %s%s", why, recorded ? " (they were applied: "
		    "something removed part of them)" : "");
}

/* The daemon's loop answers: a direct connection to its listener is
 * refused (closed) at once, which takes a running loop. */
static int probe(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct pollfd p;
	socklen_t len;
	char c;
	int fd, rc;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (void *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -1;      /* nothing listens */
	}
	p.fd = fd;
	p.events = POLLIN;
	rc = poll(&p, 1, 2000);
	if (rc == 1)
		rc = read(fd, &c, 1) <= 0 ? 1 : 1;
	close(fd);
	return rc == 1 ? 1 : 0;   /* 0: accepted, never answered */
}

static void check_daemon(const struct doctor_opts *o, int have_rules)
{
	static const char *ips[] = { "127.0.0.1", "::1" };
	int any = 0;

	for (int i = 0; i < 2; i++) {
		int rc = probe(ips[i], o->port);

		if (rc == 1) {
			say("ok", NULL, "a daemon answers on %s port %u (its direct-connection "
			    "refusal shows in its log)", ips[i], o->port);
			any = 1;
		} else if (rc == 0) {
			say("FAIL", "look at its log; restart it", "something on %s port %u accepts "
			    "but does not answer within 2 s: a stuck daemon?", ips[i], o->port);
			any = 1;
		}
	}
	if (any)
		return;
	if (have_rules)
		say("FAIL", "start it: sproxy-bpf tproxy --listen [::]:PORT (the rules' --port)",
		    "TPROXY rules are in place but no daemon listens on port %u: traffic they "
		    "catch goes nowhere", o->port);
	else
		say("info", NULL, "no daemon listens on port %u here", o->port);
}

int doctor_run(const struct doctor_opts *o)
{
	char mount[PATH_MAX], target[PATH_MAX] = "";
	int have_rules = 0;

	n_fail = n_warn = 0;
	check_kernel();
	check_privileges();
	check_cgroup_v2(mount, sizeof(mount));
	if (o->cgroup && mount[0])
		check_target(mount, o->cgroup, target, sizeof(target));
	for (int i = 0; i < o->n_pids; i++)
		check_pid(o->pids[i], mount, target);
	check_netfilter();
	check_rules(o, &have_rules);
	check_daemon(o, have_rules);
	printf("%s: %d problem%s, %d warning%s\n", n_fail ? "unhealthy" : "healthy", n_fail,
	       n_fail == 1 ? "" : "s", n_warn, n_warn == 1 ? "" : "s");
	return n_fail ? 1 : 0;
}
