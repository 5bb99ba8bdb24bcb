/* The privileged helper (see privhelper.h): one request, one answer, over a
 * SOCK_SEQPACKET pair; a file travels as an fd (SCM_RIGHTS).  The daemon
 * waits for each answer: every job here is a syscall or two. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cap-ng.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#include "privhelper.h"

enum { OP_OPEN = 1, OP_CREATE, OP_RENAME, OP_UNLINK, OP_EXE, OP_CGPATH, OP_FINISH,
       OP_TAKESOCK };
enum { PH_STORE = 2, PH_REMOVE };   /* allow-list kinds: the store and its
					 * .tmp; a file to remove at exit */
#define FILEID_KERNFS 0xfe
#define MAX_ALLOWED 64

struct ph_req {
	int op;
	int kind;
	uint64_t num;
	char path[PATH_MAX];
};

struct ph_rep {
	int err;
	int len;
	char buf[PATH_MAX];
};

static struct { int kind; char *path; } allowed[MAX_ALLOWED];
static int n_allowed;
static int ph_fd = -1;          /* the daemon's end; -1: no helper */
static pid_t ph_pid;

/* The helper's state: where the daemon came from and its own cgroup. */
static char h_mount[PATH_MAX], h_own[PATH_MAX], h_self[PATH_MAX];
static char h_sockets_of[PATH_MAX];     /* "": no socket is handed out */
static pid_t h_daemon;

static void allow(int kind, const char *path)
{
	for (int i = 0; i < n_allowed; i++)
		if (allowed[i].kind == kind && strcmp(allowed[i].path, path) == 0)
			return;
	if (n_allowed < MAX_ALLOWED && (allowed[n_allowed].path = strdup(path)))
		allowed[n_allowed++].kind = kind;
}

static int is_allowed(int kind, const char *path)
{
	for (int i = 0; i < n_allowed; i++)
		if (allowed[i].kind == kind && strcmp(allowed[i].path, path) == 0)
			return 1;
	return 0;
}

/* tmp is PATH.tmp for an allowed store PATH; *path gets PATH. */
static int is_store_tmp(const char *tmp, char *path, size_t len)
{
	size_t n = strlen(tmp);

	if (n < 5 || n - 4 >= len || strcmp(tmp + n - 4, ".tmp") != 0)
		return 0;
	memcpy(path, tmp, n - 4);
	path[n - 4] = 0;
	return is_allowed(PH_STORE, path);
}

void privhelper_allow_append(const char *path)
{
	if (path)
		allow(PH_APPEND, path);
}

void privhelper_allow_store(const char *path)
{
	if (path)
		allow(PH_STORE, path);
}

void privhelper_allow_remove(const char *path)
{
	if (path)
		allow(PH_REMOVE, path);
}

void privhelper_allow_sockets_of(const char *cgroup)
{
	snprintf(h_sockets_of, sizeof(h_sockets_of), "%s", cgroup ? cgroup : "");
}

int privhelper_active(void)
{
	return ph_fd >= 0;
}

static int open_kind(const char *path, int kind)
{
	if (kind == PH_APPEND)
		return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static int create_excl(const char *tmp)
{
	unlink(tmp);            /* never through a planted symlink: O_EXCL */
	return open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* --- the daemon's side ---------------------------------------------------- */

static int call(struct ph_req *q, struct ph_rep *p, int *fd)
{
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } c;
	struct iovec iov = { p, sizeof(*p) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b,
			    .msg_controllen = sizeof(c.b) };
	struct cmsghdr *cm;
	ssize_t n;

	do
		n = send(ph_fd, q, sizeof(*q), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	do
		n = recvmsg(ph_fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n == 0)
			errno = EPIPE;  /* the helper is gone */
		return -1;
	}
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && fd)
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	if (p->err) {
		errno = p->err;
		return -1;
	}
	return 0;
}

static int simple(int op, int kind, uint64_t num, const char *path, struct ph_rep *p,
		  int *fd)
{
	static struct ph_req q;

	memset(&q, 0, sizeof(q));
	q.op = op;
	q.kind = kind;
	q.num = num;
	if (path && strlen(path) >= sizeof(q.path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (path)
		strcpy(q.path, path);
	return call(&q, p, fd);
}

int privhelper_open(const char *path, int kind)
{
	static struct ph_rep p;
	int fd = -1;

	if (ph_fd < 0) {
		fd = open_kind(path, kind);
		if (fd >= 0 && kind == PH_READ)
			allow(PH_READ, path);
		return fd;
	}
	if (simple(OP_OPEN, kind, 0, path, &p, &fd) < 0)
		return -1;
	return fd;
}

int privhelper_create_excl(const char *tmp)
{
	static struct ph_rep p;
	int fd = -1;

	if (ph_fd < 0)
		return create_excl(tmp);
	return simple(OP_CREATE, 0, 0, tmp, &p, &fd) < 0 ? -1 : fd;
}

int privhelper_rename(const char *tmp, const char *path)
{
	static struct ph_rep p;
	char want[PATH_MAX];

	if (ph_fd < 0)
		return rename(tmp, path);
	/* The helper renames PATH.tmp to PATH and nothing else. */
	if (snprintf(want, sizeof(want), "%s.tmp", path) >= (int)sizeof(want) ||
	    strcmp(want, tmp) != 0) {
		errno = EPERM;
		return -1;
	}
	return simple(OP_RENAME, 0, 0, tmp, &p, NULL);
}

int privhelper_unlink(const char *tmp)
{
	static struct ph_rep p;

	if (ph_fd < 0)
		return unlink(tmp);
	return simple(OP_UNLINK, 0, 0, tmp, &p, NULL);
}

int privhelper_take_socket(uint32_t pid, uint32_t ino)
{
	static struct ph_rep p;
	int fd = -1;

	if (ph_fd < 0) {
		errno = ENOSYS;
		return -1;
	}
	return simple(OP_TAKESOCK, 0, (uint64_t)ino << 32 | pid, NULL, &p, &fd) < 0 ? -1 : fd;
}

ssize_t privhelper_exe(uint32_t pid, char *buf, size_t len)
{
	static struct ph_rep p;
	char path[32];

	if (ph_fd < 0) {
		snprintf(path, sizeof(path), "/proc/%u/exe", pid);
		return readlink(path, buf, len);
	}
	if (simple(OP_EXE, 0, pid, NULL, &p, NULL) < 0)
		return -1;
	memcpy(buf, p.buf, (size_t)p.len < len ? (size_t)p.len : len);
	return p.len;
}

int privhelper_cgroup_path(uint64_t id, char *buf, size_t len)
{
	static struct ph_rep p;

	if (ph_fd < 0) {
		errno = ENOSYS;
		return -1;
	}
	if (simple(OP_CGPATH, 0, id, NULL, &p, NULL) < 0)
		return -1;
	if ((size_t)p.len >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, p.buf, (size_t)p.len);
	buf[p.len] = 0;
	return 0;
}

int privhelper_finish(char *err, size_t errlen)
{
	static struct ph_rep p;
	int rc;

	if (ph_fd < 0)
		return 0;
	rc = simple(OP_FINISH, 0, 0, NULL, &p, NULL);
	if (rc < 0 && p.err)
		snprintf(err, errlen, "%s", p.buf);
	else if (rc < 0)
		snprintf(err, errlen, "the privileged helper (pid %d) did not answer at "
			 "exit: %s; the daemon's cgroup may be left", (int)ph_pid,
			 strerror(errno));
	close(ph_fd);
	ph_fd = -1;
	while (waitpid(ph_pid, NULL, 0) < 0 && errno == EINTR)
		;
	return rc < 0 ? -1 : 1;
}

/* --- the helper's side ---------------------------------------------------- */

static int write_pid(const char *cg, pid_t pid)
{
	char procs[PATH_MAX + 16];
	int fd, rc = 0;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (dprintf(fd, "%d", (int)pid) < 0)
		rc = -1;
	close(fd);
	return rc;
}

/* Is pid in h_sockets_of or below?  Its "0::" line in /proc/PID/cgroup is
 * relative to the cgroup2 mount. */
static int in_captured(uint32_t pid)
{
	char path[64], line[PATH_MAX + 8];
	const char *rel = h_sockets_of + strlen(h_mount);
	size_t n = strlen(rel);
	FILE *f;
	int in = 0;

	if (!h_sockets_of[0] || strncmp(h_sockets_of, h_mount, strlen(h_mount)) != 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/cgroup", pid);
	if (!(f = fopen(path, "re")))
		return 0;
	while (!in && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, "0::", 3) == 0)
			in = !n || (strncmp(line + 3, rel, n) == 0 &&
				    (line[3 + n] == 0 || line[3 + n] == '/'));
	}
	fclose(f);
	return in;
}

/* A UDP socket of a captured process, by inode: the fd that names it. */
static int take_socket(uint32_t pid, uint32_t ino)
{
	char dir[64], path[320], link[64], want[40];
	int theirs = -1, pidfd, fd, type = 0;
	socklen_t len = sizeof(type);
	struct dirent *e;
	DIR *d;

	if (!in_captured(pid)) {
		errno = EPERM;
		return -1;
	}
	snprintf(dir, sizeof(dir), "/proc/%u/fd", pid);
	snprintf(want, sizeof(want), "socket:[%u]", ino);
	if (!(d = opendir(dir)))
		return -1;
	while (theirs < 0 && (e = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || e->d_name[0] == '.')
			continue;
		link[n] = 0;
		if (strcmp(link, want) == 0)
			theirs = atoi(e->d_name);
	}
	closedir(d);
	if (theirs < 0) {
		errno = ENOENT;
		return -1;
	}
	if ((pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0)) < 0)
		return -1;
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, theirs, 0);
	close(pidfd);
	if (fd >= 0 && (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
			type != SOCK_DGRAM)) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* The daemon out of its own cgroup (when it still lives), the cgroup gone.
 * A process that has just exited may keep a cgroup busy for a moment. */
static int remove_own(struct ph_rep *p, int daemon_alive)
{
	char base[PATH_MAX + 16];

	if (!h_own[0])
		return 0;
	if (daemon_alive && write_pid(h_self, h_daemon) < 0) {
		p->err = errno;
		snprintf(p->buf, sizeof(p->buf), "cannot move pid %d back to %.3000s: %s",
			 (int)h_daemon, h_self, strerror(errno));
		return -1;
	}
	for (int i = 0; rmdir(h_own) < 0 && errno != ENOENT; i++) {
		if (errno != EBUSY || i == 100) {
			p->err = errno;
			snprintf(p->buf, sizeof(p->buf), "cannot remove cgroup %.3000s: %s",
				 h_own, strerror(errno));
			return -1;
		}
		usleep(20000);
	}
	snprintf(base, sizeof(base), "%s/sproxy-bpf", h_mount);
	rmdir(base);            /* fails while another daemon runs: fine */
	return 0;
}

static void answer(int s, struct ph_req *q, struct ph_rep *p, int mount_fd)
{
	char store[PATH_MAX], link[64];
	int fd = -1, cfd;

	memset(p, 0, sizeof(*p));
	q->path[sizeof(q->path) - 1] = 0;
	switch (q->op) {
	case OP_OPEN:
		if (!is_allowed(q->kind, q->path))
			p->err = EPERM;
		else if ((fd = open_kind(q->path, q->kind)) < 0)
			p->err = errno;
		break;
	case OP_CREATE:
		if (!is_store_tmp(q->path, store, sizeof(store)))
			p->err = EPERM;
		else if ((fd = create_excl(q->path)) < 0)
			p->err = errno;
		break;
	case OP_RENAME:
		if (!is_store_tmp(q->path, store, sizeof(store)))
			p->err = EPERM;
		else if (rename(q->path, store) < 0)
			p->err = errno;
		break;
	case OP_UNLINK:
		if (!is_store_tmp(q->path, store, sizeof(store)) &&
		    !is_allowed(PH_REMOVE, q->path))
			p->err = EPERM;
		else if (unlink(q->path) < 0)
			p->err = errno;
		break;
	case OP_EXE:
		snprintf(link, sizeof(link), "/proc/%u/exe", (unsigned)q->num);
		p->len = (int)readlink(link, p->buf, sizeof(p->buf));
		if (p->len < 0)
			p->err = errno;
		break;
	case OP_CGPATH: {
		struct { struct file_handle fh; uint64_t id; } h;

		h.fh.handle_bytes = sizeof(h.id);
		h.fh.handle_type = FILEID_KERNFS;
		h.id = q->num;
		cfd = mount_fd < 0 ? -1 :
		      open_by_handle_at(mount_fd, &h.fh, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cfd < 0) {
			p->err = mount_fd < 0 ? EBADF : errno;
			break;
		}
		snprintf(link, sizeof(link), "/proc/self/fd/%d", cfd);
		p->len = (int)readlink(link, p->buf, sizeof(p->buf) - 1);
		if (p->len < 0)
			p->err = errno;
		close(cfd);
		break;
	}
	case OP_FINISH:
		remove_own(p, 1);
		break;
	case OP_TAKESOCK:
		if ((fd = take_socket((uint32_t)q->num, (uint32_t)(q->num >> 32))) < 0)
			p->err = errno;
		break;
	default:
		p->err = EINVAL;
	}
	if (p->len < 0)
		p->len = 0;
	{
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } c;
		struct iovec iov = { p, sizeof(*p) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

		if (fd >= 0) {
			memset(&c, 0, sizeof(c));
			m.msg_control = c.b;
			m.msg_controllen = sizeof(c.b);
			CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
			CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
			CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &fd, sizeof(int));
		}
		if (sendmsg(s, &m, MSG_NOSIGNAL) < 0 && errno != EPIPE)
			fprintf(stderr, "sproxy-bpf: helper: cannot answer: %s\n",
				strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}

/* uid 0 kept (the files and cgroups it handles are root's), but only the
 * capabilities its jobs need; none can come back (no exec, no new privs). */
static int helper_drop(void)
{
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_updatev(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED, CAP_DAC_OVERRIDE,
			  CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, -1) < 0 ||
	    capng_apply(CAPNG_SELECT_BOTH) < 0)
		return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static void __attribute__((noreturn)) helper_main(int s)
{
	static struct ph_req q;
	static struct ph_rep p;
	sigset_t none;
	int mount_fd;
	ssize_t n;

	/* Ctrl-C in a terminal and systemd's SIGTERM reach us too: the daemon's
	 * exit (or its death, an end of file here) is our signal. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Nothing of the daemon's but our socket: no listener, no bpf_link
	 * kept alive by a copy of its fd. */
	if (s != 3) {
		dup2(s, 3);
		s = 3;
	}
	close_range(4, ~0U, 0);
	if (h_own[0] && write_pid(h_self, getpid()) < 0)
		fprintf(stderr, "sproxy-bpf: helper: cannot leave %s for %s: %s\n", h_own,
			h_self, strerror(errno));
	mount_fd = open(h_mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (helper_drop() < 0) {
		fprintf(stderr, "sproxy-bpf: helper: cannot drop capabilities\n");
		_exit(1);
	}
	for (;;) {
		n = recv(s, &q, sizeof(q), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n != sizeof(q)) {
			q.op = 0;       /* answered EINVAL */
		}
		answer(s, &q, &p, mount_fd);
		if (q.op == OP_FINISH)
			_exit(p.err ? 1 : 0);
	}
	/* The daemon died without saying goodbye: its cgroup still goes. */
	if (remove_own(&p, 0) < 0)
		fprintf(stderr, "sproxy-bpf: helper: %s\n", p.buf);
	_exit(0);
}

pid_t privhelper_start(const char *cg_mount, const char *own_cg, const char *self_cg)
{
	int sv[2];
	pid_t pid;

	snprintf(h_mount, sizeof(h_mount), "%s", cg_mount);
	snprintf(h_own, sizeof(h_own), "%s", own_cg ? own_cg : "");
	snprintf(h_self, sizeof(h_self), "%s", self_cg);
	h_daemon = getpid();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		helper_main(sv[1]);
	}
	close(sv[1]);
	ph_fd = sv[0];
	ph_pid = pid;
	return pid;
}
