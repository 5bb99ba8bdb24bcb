/* Least privilege: once set up, the daemon runs as an unprivileged user with
 * CAP_NET_ADMIN only (SO_MARK on the sockets it makes from then on); the
 * privileged helper (privhelper.h) does the rest. */
#ifndef SPROXY_PRIVS_H
#define SPROXY_PRIVS_H
#include <stddef.h>

#define PRIVS_DEFAULT_USER "sproxy-bpf"   /* else nobody */

struct privs_plan {
	const char *user;        /* --user; NULL: the default */
	int no_drop;             /* --no-drop, or --user root */
	const char *keep_why;    /* non-NULL: keep every privilege, for this */
	int containers;          /* --netns all: keep CAP_SYS_ADMIN (setns into a
				  * new container's namespace) and CAP_SYS_PTRACE
				  * (/proc/PID/ns/net of other users' processes) */
	int bind_low;            /* keep CAP_NET_BIND_SERVICE too (tproxy's replies
				  * come from the original port, 53 or 80) */
	const char *log_path;    /* reopened on SIGHUP, through the helper */
	const char *store_path;  /* --fakeip-store, written through the helper */
	const char *target;      /* the captured cgroup: its UDP sockets, at exit */
	const char *cg_mount;
	const char *own_cg;      /* the daemon's own cgroup, "" for none */
	const char *self_cg;     /* where the daemon came from */
};

/* Checks that a --user value names a user.  0, or -1 with err. */
int privs_check_user(const char *user, char *err, size_t errlen);

/* Starts the helper, gives up root and every capability but CAP_NET_ADMIN,
 * and says so.  0, or -1 (logged). */
int privs_drop(const struct privs_plan *p);

#endif
