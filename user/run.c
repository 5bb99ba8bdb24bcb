/* sproxy-bpf run: CMD in a transient cgroup, <parent>/<our pid>.
 *
 * CMD is forked first, before anything is loaded, so that it inherits a
 * clean descriptor table, and waits on a pipe in its cgroup; main.c's
 * daemon attaches to that cgroup and, once ready, lets it go: there is no
 * moment when CMD runs uncaptured.  CMD stays in our process group, so the
 * terminal's Ctrl-C, Ctrl-\ and Ctrl-Z reach it (and us: we ignore the
 * first two, and stop and go on with it for the third).  Signals sent to us
 * by another process are passed to CMD, or once it has exited to what it
 * left in the cgroup.  The daemon lives until the cgroup is empty
 * (cgroup.events says "populated 0", watched with inotify), then detaches,
 * removes the cgroup and exits with CMD's status. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <event2/event.h>

#include "cgroup.h"
#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "runas.h"
#include "run.h"

struct runcmd {
	char mount[PATH_MAX];
	char parent[PATH_MAX];
	char cg[PATH_MAX];       /* parent/<pid> */
	int own_parent;          /* the default parent: removed when empty */
	char *const *argv;
	struct runas cred;
	pid_t pid;               /* CMD */
	int go;                  /* the pipe CMD waits on; -1 once it went */
	sigset_t forwarded, old_mask;
	int sfd;                 /* signalfd for the forwarded signals and SIGCHLD */
	int ifd;                 /* inotify on cgroup.events */
	struct event *sev, *iev, *drain;
	struct daemon *d;
	int drain_ticks;
	int status;              /* CMD's wait status, once reaped */
	int reaped, done, said_waiting;
};

#define RUN_DRAIN_TICKS 100     /* of 50 ms: 5 s */

/* Signals passed on to CMD when another process sends them to us. */
static const int forward_sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
				    SIGUSR2, SIGWINCH, SIGALRM };

/* In CMD's process, after the go: become the user for good, then exec.
 * Nothing here returns. */
static void child(struct runcmd *c, int rfd)
{
	const struct runas *u = &c->cred;
	ssize_t n;
	char b;

	do
		n = read(rfd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(127);      /* the daemon did not start: nothing must run */
	if (runas_become(u) < 0) {
		fprintf(stderr, "sproxy-bpf: error: cannot become uid %u gid %u to run %s: %s\n",
			(unsigned)u->uid, (unsigned)u->gid, c->argv[0], strerror(errno));
		_exit(126);
	}
	sigprocmask(SIG_SETMASK, &c->old_mask, NULL);
	execvp(c->argv[0], c->argv);
	fprintf(stderr, "sproxy-bpf: error: cannot run %s: %s\n", c->argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* <parent>/<pid>: the parent from --cgroup-parent (which must exist, and
 * not be the root), or <cg2>/sproxy-bpf.run, made when missing. */
static int make_cgroup(struct runcmd *c, const struct options *o)
{
	char err[512], real[PATH_MAX];

	if (cg_mount(c->mount, sizeof(c->mount)) < 0) {
		log_err("no cgroup v2 hierarchy in /proc/mounts: run needs one");
		return EXIT_USAGE;
	}
	/* As cg_resolve gives the parent: our cgroup's path below the mount
	 * is then the tail of ours (for sender_inside). */
	if (realpath(c->mount, real))
		memcpy(c->mount, real, sizeof(real));
	if (o->run_parent) {
		if (cg_resolve(c->mount, o->run_parent, 1, c->parent, sizeof(c->parent),
			       err, sizeof(err)) < 0) {
			log_err("--cgroup-parent: %s", err);
			return EXIT_USAGE;
		}
		if (strcmp(c->mount, c->parent) == 0) {
			log_err("--cgroup-parent %s is the cgroup v2 root: give a cgroup "
				"below it", o->run_parent);
			return EXIT_USAGE;
		}
	} else {
		if (snprintf(c->parent, sizeof(c->parent), "%s/%s", c->mount,
			     RUN_PARENT_DEFAULT) >= (int)sizeof(c->parent))
			goto too_long;
		if (mkdir(c->parent, 0755) < 0 && errno != EEXIST) {
			log_err("cannot create cgroup %s: %s", c->parent, strerror(errno));
			return EXIT_RUNTIME;
		}
		c->own_parent = 1;
		/* Only in the default parent: in one the user chose, a
		 * numeric directory may be anything. */
		cg_remove_stale(c->parent, "a run");
	}
	if (snprintf(c->cg, sizeof(c->cg), "%s/%d", c->parent, (int)getpid()) >=
	    (int)sizeof(c->cg))
		goto too_long;
	/* An empty one of the same name is a killed run's whose pid came back. */
	if (mkdir(c->cg, 0755) < 0 && (errno != EEXIST || rmdir(c->cg) < 0 ||
					mkdir(c->cg, 0755) < 0)) {
		log_err("cannot create cgroup %s: %s", c->cg,
			errno == EBUSY || errno == ENOTEMPTY ? "it exists, in use" : strerror(errno));
		c->cg[0] = 0;
		return EXIT_RUNTIME;
	}
	return 0;
too_long:
	log_err("the run's cgroup path below %s is too long", c->mount);
	c->cg[0] = 0;
	return EXIT_USAGE;
}

static int move_into(const char *cg, pid_t pid)
{
	char path[PATH_MAX + 16], num[16];
	int fd, n, rc = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	n = snprintf(num, sizeof(num), "%d", (int)pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, num, (size_t)n) != n)
		rc = -1;
	close(fd);
	return rc;
}

struct runcmd *runcmd_prepare(struct options *o, int *status)
{
	struct runcmd *c = calloc(1, sizeof(*c));
	char err[512];
	int p[2];

	*status = EXIT_RUNTIME;
	if (!c) {
		log_err("out of memory");
		return NULL;
	}
	c->argv = o->run_argv;
	c->go = c->sfd = c->ifd = -1;
	if (runas_resolve(&c->cred, o->run_user, getuid(), err, sizeof(err)) < 0) {
		log_err("%s", err);
		*status = EXIT_USAGE;
		goto fail;
	}
	*status = make_cgroup(c, o);
	if (*status)
		goto fail;
	/* Blocked before the fork: a SIGTERM now waits for the loop, which
	 * passes it on, instead of killing us with the cgroup left behind. */
	sigemptyset(&c->forwarded);
	for (size_t i = 0; i < sizeof(forward_sigs) / sizeof(forward_sigs[0]); i++)
		sigaddset(&c->forwarded, forward_sigs[i]);
	sigaddset(&c->forwarded, SIGCHLD);
	sigprocmask(SIG_BLOCK, &c->forwarded, &c->old_mask);
	c->sfd = signalfd(-1, &c->forwarded, SFD_NONBLOCK | SFD_CLOEXEC);
	if (c->sfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
		log_err("run: signalfd or pipe: %s", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		log_err("run: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		goto fail;
	}
	if (c->pid == 0) {
		close(p[1]);
		close(c->sfd);
		child(c, p[0]);
	}
	close(p[0]);
	c->go = p[1];
	if (move_into(c->cg, c->pid) < 0) {
		log_err("cannot move the command (pid %d) into cgroup %s: %s",
			(int)c->pid, c->cg, strerror(errno));
		goto fail;
	}
	o->cgroup = c->cg;
	return c;
fail:
	runcmd_finish(c, *status);
	return NULL;
}

/* 1 while a process is in the cgroup (or its descendants). */
static int populated(const struct runcmd *c)
{
	char path[PATH_MAX + 16], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.events", c->cg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strstr(buf, "populated ");
	return p && p[10] == '1';
}

static int left_in_cgroup(const struct runcmd *c, pid_t *pids, int max)
{
	char path[PATH_MAX + 16];
	FILE *fp;
	int n = 0, pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", c->cg);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (n < max && fscanf(fp, "%d", &pid) == 1)
		pids[n++] = pid;
	fclose(fp);
	return n;
}

static void describe(int st, char *buf, size_t len)
{
	if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by %s", strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
}

/* The cgroup is empty, but its last connections may still be on their
 * way through us (a request sent just before exit, the close not yet
 * read): the loop runs on until they have ended, for a few seconds at
 * most. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct runcmd *c = arg;
	struct timeval tick = { 0, 50000 };

	(void)fd;
	(void)what;
	if (c->d->n_conns && ++c->drain_ticks < RUN_DRAIN_TICKS) {
		event_add(c->drain, &tick);
		return;
	}
	if (c->d->n_conns)
		log_warn("%llu connections of %s still open: ending them",
			 (unsigned long long)c->d->n_conns, c->argv[0]);
	event_base_loopbreak(c->d->base);
}

/* Done once CMD is reaped and its cgroup empty; said once when CMD
 * leaves processes behind, since the daemon then outlives it. */
static void check_done(struct runcmd *c)
{
	struct timeval now = { 0, 0 };
	char how[128];

	if (!c->reaped || c->done)
		return;
	if (!populated(c)) {
		c->done = 1;
		if (event_add(c->drain, &now) < 0)
			event_base_loopbreak(c->d->base);
		return;
	}
	if (!c->said_waiting) {
		pid_t pids[1];

		c->said_waiting = 1;
		describe(c->status, how, sizeof(how));
		left_in_cgroup(c, pids, 1);
		log_info("%s (pid %d) %s; capture goes on until the processes it left "
			 "in %s (pid %d first) have exited", c->argv[0], (int)c->pid, how,
			 c->cg, (int)pids[0]);
	}
}

/* Whether pid sits in our cgroup: CMD signalling its own process group
 * reaches us too, and must not get the signal a second time. */
static int sender_inside(const struct runcmd *c, uint32_t pid)
{
	char path[64], line[PATH_MAX + 8];
	size_t n = strlen(c->mount);
	FILE *fp;
	int in = 0;

	if (!pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/cgroup", pid);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			in = cg_within(line + 3, c->cg + n);
			break;
		}
	}
	fclose(fp);
	return in;
}

static void forward(struct runcmd *c, int sig)
{
	pid_t pids[4096];
	int n;

	if (!c->reaped) {
		log_debug("passing %s on to %s (pid %d)", strsignal(sig), c->argv[0], (int)c->pid);
		kill(c->pid, sig);
		return;
	}
	n = left_in_cgroup(c, pids, 4096);
	log_info("passing %s on to the %d process%s left in %s", strsignal(sig), n,
		 n == 1 ? "" : "es", c->cg);
	for (int i = 0; i < n; i++)
		kill(pids[i], sig);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	struct runcmd *c = arg;
	struct signalfd_siginfo si;
	int st;

	(void)what;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGCHLD) {
			if (!c->reaped && waitpid(c->pid, &st, WNOHANG) == c->pid) {
				c->reaped = 1;
				c->status = st;
			}
			continue;
		}
		if (sig == SIGHUP)
			connlog_reopen();
		/* The terminal sends Ctrl-C and its kind to the whole process
		 * group, CMD included: it has it already. */
		if (si.ssi_code == SI_KERNEL || sender_inside(c, si.ssi_pid))
			continue;
		forward(c, sig);
	}
	check_done(c);
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	check_done(arg);
}

int runcmd_start(struct runcmd *c, struct daemon *d)
{
	struct event_base *base = d->base;
	char path[PATH_MAX + 16];

	c->d = d;
	snprintf(path, sizeof(path), "%s/cgroup.events", c->cg);
	c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ifd < 0 || inotify_add_watch(c->ifd, path, IN_MODIFY) < 0) {
		log_err("cannot watch %s: inotify: %s", path, strerror(errno));
		return -1;
	}
	c->sev = event_new(base, c->sfd, EV_READ | EV_PERSIST, on_signal, c);
	c->iev = event_new(base, c->ifd, EV_READ | EV_PERSIST, on_events, c);
	c->drain = evtimer_new(base, on_drain, c);
	if (!c->sev || !c->iev || !c->drain || event_add(c->sev, NULL) < 0 || event_add(c->iev, NULL) < 0) {
		log_err("run: cannot set up events: out of memory");
		return -1;
	}
	if (write(c->go, "g", 1) != 1) {
		log_err("run: cannot start %s (pid %d): %s", c->argv[0], (int)c->pid,
			strerror(errno));
		return -1;
	}
	close(c->go);
	c->go = -1;
	log_info("running %s (pid %d) as uid %u in %s", c->argv[0], (int)c->pid,
		 (unsigned)c->cred.uid, c->cg);
	return 0;
}

void runcmd_stop(struct runcmd *c)
{
	if (!c)
		return;
	if (c->sev)
		event_free(c->sev);
	if (c->iev)
		event_free(c->iev);
	if (c->drain)
		event_free(c->drain);
	c->sev = c->iev = c->drain = NULL;
}

/* rmdir of a cgroup that just emptied can meet EBUSY for a moment. */
static void remove_cgroup(struct runcmd *c)
{
	for (int i = 0; i < 100; i++) {
		if (rmdir(c->cg) == 0 || errno == ENOENT)
			goto parent;
		if (errno != EBUSY)
			break;
		usleep(20000);
	}
	log_warn("cannot remove cgroup %s: %s", c->cg, strerror(errno));
parent:
	if (c->own_parent)
		rmdir(c->parent);    /* fails while another run goes on: fine */
}

int runcmd_finish(struct runcmd *c, int daemon_status)
{
	int rc = daemon_status, st;

	if (!c)
		return rc;
	runcmd_stop(c);
	if (c->pid > 0 && c->go >= 0) {
		/* Never released: it must not run uncaptured. */
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	} else if (c->pid > 0 && !c->reaped) {
		if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
			c->reaped = 1;
			c->status = st;
		} else {
			log_err("%s (pid %d) runs on, no longer captured, in %s", c->argv[0],
				(int)c->pid, c->cg);
			c->cg[0] = 0;        /* not ours to remove while it is in use */
		}
	}
	if (c->reaped && !populated(c)) {
		rc = WIFSIGNALED(c->status) ? 128 + WTERMSIG(c->status) : WEXITSTATUS(c->status);
	} else if (c->reaped) {
		log_err("processes of %s are left in %s, no longer captured", c->argv[0], c->cg);
		c->cg[0] = 0;
	}
	if (c->go >= 0)
		close(c->go);
	if (c->sfd >= 0)
		close(c->sfd);
	if (c->ifd >= 0)
		close(c->ifd);
	if (c->cg[0])
		remove_cgroup(c);
	runas_free(&c->cred);
	free(c);
	return rc;
}
