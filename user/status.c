/* `sproxy-bpf status`: finds the daemon's control socket, asks it, and
 * prints its answer as it came (--json) or as text. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cli.h"
#include "control.h"
#include "daemon.h"
#include "json.h"
#include "log.h"
#include "status.h"

#define MAX_REPLY (64u << 20)
#define MAX_FOUND 64

static const char status_usage[] =
"Usage: sproxy-bpf status [--json] [--pid N | --socket PATH] [--control-dir DIR]\n"
"\n"
"Shows what a running sproxy-bpf daemon captures: the cgroup and programs\n"
"attached and since when, its counters, how full its maps and pools are, and\n"
"its open connections and UDP flows by process (destination, bytes each way,\n"
"age).  Asks the daemon's control socket, DIR/PID.sock (root only).\n"
"\n"
"      --json            the daemon's answer as it is: one JSON document\n"
"      --pid N           the daemon with process id N\n"
"      --socket PATH     the daemon listening on this control socket\n"
"      --control-dir DIR where the sockets are (default: $SPROXY_BPF_CONTROL_DIR,\n"
"                        else /run/sproxy-bpf)\n"
"  -h, --help            this text\n"
"\n"
"Without --pid or --socket: the only daemon running; when there are several,\n"
"they are listed and the exit status is 2.  Exit status 1: no daemon, or it\n"
"did not answer.\n";

int ctl_option(int c, const char *arg, struct ctl_choice *ch)
{
	unsigned long v;

	switch (c) {
	case 'P':
		if (cli_number(arg, 0, 1, 1ul << 22, &v) < 0) {
			fprintf(stderr, "sproxy-bpf: --pid wants a process id, not '%s'\n", arg);
			exit(EXIT_USAGE);
		}
		ch->pid = (pid_t)v;
		return 1;
	case 'S':
		ch->socket = arg;
		return 1;
	case 'D':
		ch->dir = arg;
		return 1;
	}
	return 0;
}

int ctl_command(const struct ctl_cmd *cmd, int argc, char **argv, char *path, size_t len)
{
	static const struct option common[] = {
		{ "pid", required_argument, 0, 'P' },
		{ "socket", required_argument, 0, 'S' },
		{ "control-dir", required_argument, 0, 'D' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct option lo[16];
	struct ctl_choice ch = { 0 };
	size_t n = 0;
	int c, rc;

	/* The command's own first, as each command listed them before. */
	while (cmd->extra && cmd->extra[n].name && n < 16 - 5) {
		lo[n] = cmd->extra[n];
		n++;
	}
	memcpy(lo + n, common, sizeof(common));
	while ((c = getopt_long(argc, argv, cmd->shorts, lo, NULL)) != -1) {
		if (ctl_option(c, optarg, &ch))
			continue;
		if (c == 'h') {
			fputs(cmd->usage, stdout);
			return 0;
		}
		if (c == '?' || !cmd->own) {
			fprintf(stderr, "Try 'sproxy-bpf %s --help'.\n", cmd->name);
			return EXIT_USAGE;
		}
		rc = cmd->own(c, optarg, cmd->ctx);
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "sproxy-bpf: %s takes no argument ('%s')\n"
			"Try 'sproxy-bpf %s --help'.\n", cmd->name, argv[optind], cmd->name);
		return EXIT_USAGE;
	}
	rc = ctl_choose(&ch, path, len);
	return rc ? rc : -1;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 5, 0 };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void say_connect_error(const char *path)
{
	if (errno == EACCES || errno == EPERM)
		fprintf(stderr, "sproxy-bpf: %s: %s (the control socket is root's: "
			"run status as root)\n", path, strerror(errno));
	else if (errno == ECONNREFUSED || errno == ENOENT)
		fprintf(stderr, "sproxy-bpf: %s: %s (no daemon listens there: it "
			"stopped?)\n", path, strerror(errno));
	else
		fprintf(stderr, "sproxy-bpf: %s: %s\n", path, strerror(errno));
}

struct json *ctl_status(const char *path, char **raw)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap), err[160];
	struct json *j;
	const char *why;
	int fd = connect_to(path);

	if (fd < 0) {
		say_connect_error(path);
		free(buf);
		return NULL;
	}
	if (!buf || write(fd, "status\n", 7) != 7)
		goto io;
	for (;;) {
		ssize_t n;

		if (cap - len < 2) {
			char *b = cap >= MAX_REPLY ? NULL : realloc(buf, cap * 2);

			if (!b) {
				fprintf(stderr, "sproxy-bpf: %s: the answer is larger than %u "
					"MiB\n", path, MAX_REPLY >> 20);
				goto out;
			}
			buf = b;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto io;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	j = json_parse(buf, len, err, sizeof(err));
	if (!j) {
		fprintf(stderr, "sproxy-bpf: %s: the daemon's answer is not JSON: %s\n",
			path, len ? err : "it closed without a word");
		free(buf);
		return NULL;
	}
	why = json_str(j, "error", NULL);
	if (why) {
		fprintf(stderr, "sproxy-bpf: %s: the daemon says: %s\n", path, why);
		json_free(j);
		free(buf);
		return NULL;
	}
	if (raw)
		*raw = buf;
	else
		free(buf);
	return j;
io:
	fprintf(stderr, "sproxy-bpf: %s: %s\n", path,
		errno == EAGAIN ? "no answer within 5 s" : strerror(errno ? errno : ENOMEM));
out:
	close(fd);
	free(buf);
	return NULL;
}

/* Several daemons: each with what it captures, for the user to pick. */
static void list_daemons(const char *dir, pid_t *pids, int n)
{
	char path[PATH_MAX];

	fprintf(stderr, "sproxy-bpf: %d daemons are running; pick one with --pid N "
		"or --socket PATH:\n", n);
	for (int i = 0; i < n; i++) {
		struct json *j;

		control_path(path, sizeof(path), dir, pids[i]);
		j = ctl_status(path, NULL);
		fprintf(stderr, "  --pid %-8d %s  capturing %s\n", (int)pids[i], path,
			j ? json_str(j, "cgroup", "?") : "?");
		json_free(j);
	}
}

int ctl_choose(const struct ctl_choice *c, char *path, size_t len)
{
	const char *dir = control_dir(c->dir);
	pid_t pids[MAX_FOUND];
	int n = 0;
	struct dirent *e;
	DIR *dp;

	if (c->socket) {
		snprintf(path, len, "%s", c->socket);
		return 0;
	}
	if (c->pid) {
		if (control_path(path, len, dir, c->pid) < 0) {
			fprintf(stderr, "sproxy-bpf: %s: too long a path\n", dir);
			return EXIT_USAGE;
		}
		return 0;
	}
	dp = opendir(dir);
	if (!dp && errno == ENOENT) {
		fprintf(stderr, "sproxy-bpf: no daemon is running: no %s (started with "
			"another --control-dir or $%s?)\n", dir, CONTROL_DIR_ENV);
		return 1;
	}
	if (!dp) {
		fprintf(stderr, "sproxy-bpf: cannot read %s: %s%s\n", dir, strerror(errno),
			errno == EACCES ? " (the control sockets are root's: run as root)" : "");
		return 1;
	}
	while ((e = readdir(dp)) && n < MAX_FOUND) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		int alive;

		if (v <= 0 || strcmp(end, ".sock") != 0 ||
		    control_path(path, len, dir, (pid_t)v) < 0)
			continue;
		alive = control_alive(path);
		if (alive == 0) {
			/* A daemon that was killed left it: tidy up if it is
			 * gone for good. */
			if (kill((pid_t)v, 0) < 0 && errno == ESRCH)
				unlink(path);
			continue;
		}
		pids[n++] = (pid_t)v;
	}
	closedir(dp);
	if (n == 0) {
		fprintf(stderr, "sproxy-bpf: no daemon is running with a control socket in "
			"%s (started with another --control-dir or $%s?)\n", dir,
			CONTROL_DIR_ENV);
		return 1;
	}
	if (n > 1) {
		list_daemons(dir, pids, n);
		return EXIT_USAGE;
	}
	control_path(path, len, dir, pids[0]);
	return 0;
}

const char *fmt_bytes(char *buf, size_t len, double v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", v);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

const char *fmt_age(char *buf, size_t len, double s)
{
	unsigned long t = s < 0 ? 0 : (unsigned long)s;

	if (t < 60)
		snprintf(buf, len, "%.1fs", s < 0 ? 0 : s);
	else if (t < 3600)
		snprintf(buf, len, "%lum%02lus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, len, "%luh%02lum", t / 3600, t / 60 % 60);
	else
		snprintf(buf, len, "%lud%02luh", t / 86400, t / 3600 % 24);
	return buf;
}

const char *fmt_safe(char *buf, size_t len, const char *s)
{
	return log_escape(buf, len, s, strlen(s));
}

const char *fmt_dest(char *buf, size_t len, const struct json *conn)
{
	const char *dst = json_str(conn, "dst", "?"), *host = json_str(conn, "host", NULL);
	const char *port = strrchr(dst, ':');
	char h[300];

	if (host && port)
		snprintf(buf, len, "%s%s (%s)", fmt_safe(h, sizeof(h), host), port, dst);
	else
		snprintf(buf, len, "%s", dst);
	return buf;
}

static const char *when(char *buf, size_t len, double t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	strftime(buf, len, "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
	return buf;
}

static void print_fill(const struct json *fill, const char *key, const char *what)
{
	const struct json *f = json_get(fill, key);

	if (f)
		printf("  %-22s %.0f of %.0f\n", what, json_num(f, "used", 0),
		       json_num(f, "size", 0));
}

/* Bulk relays per event loop, the main one first: now (since the start). */
static void print_loops(const struct json *loops)
{
	const struct json *l;
	int n = 0;

	for (l = loops ? loops->child : NULL; l; l = l->next)
		n++;
	if (n < 2)
		return;
	printf("  %-22s", "Bulk relays per loop");
	for (l = loops->child; l; l = l->next)
		printf(" %.0f (%.0f)", json_num(l, "bulk", 0), json_num(l, "taken", 0));
	printf("\n");
}

/* Programs grouped by the cgroup they are attached to. */
static void print_programs(const struct json *progs)
{
	const struct json *p, *q;

	for (p = progs ? progs->child : NULL; p; p = p->next) {
		const char *cg = json_str(p, "cgroup", "?");
		int seen = 0;

		for (q = progs->child; q != p && !seen; q = q->next)
			seen = strcmp(json_str(q, "cgroup", "?"), cg) == 0;
		if (seen)
			continue;
		printf("Attached to %s:\n   ", cg);
		for (q = p; q; q = q->next) {
			const char *name = json_str(q, "name", "?");

			if (strcmp(json_str(q, "cgroup", "?"), cg) == 0)
				printf(" %s", strncmp(name, "sproxy_", 7) ? name : name + 7);
		}
		printf("\n");
	}
}

static void print_text(const struct json *j)
{
	const struct json *stats = json_get(j, "stats"), *fill = json_get(j, "fill");
	const struct json *procs = json_get(j, "processes"), *s, *p, *c;
	double now = json_num(j, "now", 0), at = json_num(j, "attached_at", 0);
	char t[64], a[32], b1[32], b2[32], dest[400], cg[600], comm[80];

	printf("sproxy-bpf %s, pid %.0f, capturing %s\n", json_str(j, "version", "?"),
	       json_num(j, "pid", 0), fmt_safe(cg, sizeof(cg), json_str(j, "cgroup", "?")));
	printf("  since %s (%s)\n", when(t, sizeof(t), at), fmt_age(a, sizeof(a), now - at));
	print_programs(json_get(j, "programs"));
	printf("Counters:\n");
	for (s = stats ? stats->child : NULL; s; s = s->next)
		printf("  %-22s %.0f\n", s->key, s->num);
	printf("Fill:\n");
	print_fill(fill, "tcp_records", "TCP records");
	print_fill(fill, "udp_pool", "UDP pool ports");
	print_fill(fill, "fakeip", "FakeIP names");
	printf("  %-22s %.0f\n", "TCP sessions", json_num(fill, "tcp_sessions", 0));
	print_loops(json_get(fill, "relay_loops"));
	printf("Connections: %.0f", json_num(j, "conns", 0));
	if (json_num(j, "unlisted", 0) > 0)
		printf(" (%.0f not listed)", json_num(j, "unlisted", 0));
	printf("\n");
	for (p = procs ? procs->child : NULL; p; p = p->next) {
		const struct json *conns = json_get(p, "conns");

		printf("  pid %.0f %s", json_num(p, "pid", 0),
		       fmt_safe(comm, sizeof(comm), json_str(p, "comm", "?")));
		if (json_get(p, "uid"))
			printf(" (uid %.0f, %s)", json_num(p, "uid", 0),
			       fmt_safe(cg, sizeof(cg), json_str(p, "cgroup", "?")));
		printf("\n");
		for (c = conns ? conns->child : NULL; c; c = c->next) {
			const char *via = json_str(c, "via", NULL);
			/* The kernel path's bytes are counted by the kernel, and
			 * logged when the connection closes. */
			int kernel = json_get(c, "up") == NULL;

			printf("    %-3s %-44s sent %9s  received %9s  age %s", json_str(c, "proto", "?"),
			       fmt_dest(dest, sizeof(dest), c),
			       kernel ? "-" : fmt_bytes(b1, sizeof(b1), json_num(c, "up", 0)),
			       kernel ? "-" : fmt_bytes(b2, sizeof(b2), json_num(c, "down", 0)),
			       fmt_age(a, sizeof(a), json_num(c, "age", 0)));
			if (via)
				printf("  via %s", fmt_safe(comm, sizeof(comm), via));
			if (kernel)
				printf("  kernel path");
			printf("\n");
		}
	}
}

static int status_option(int c, const char *arg, void *ctx)
{
	(void)arg;
	if (c != 'j')
		return EXIT_USAGE;
	*(int *)ctx = 1;
	return 0;
}

int status_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, 'j' },
		{ 0, 0, 0, 0 },
	};
	int json = 0;
	const struct ctl_cmd cmd = { "status", status_usage, "h", lo, status_option, &json };
	char path[PATH_MAX], *raw = NULL;
	struct json *j;
	int rc;

	rc = ctl_command(&cmd, argc, argv, path, sizeof(path));
	if (rc >= 0)
		return rc;
	j = ctl_status(path, &raw);
	if (!j)
		return 1;
	if (json)
		fputs(raw, stdout);
	else
		print_text(j);
	json_free(j);
	free(raw);
	return fflush(stdout) == 0 ? 0 : 1;
}
