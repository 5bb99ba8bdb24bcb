/* Least privilege, once the programs are loaded and attached and the
 * listeners open.  What the daemon still does after that, and what it takes:
 *   SO_MARK on each new outbound, resolver and UDP relay socket: CAP_NET_ADMIN
 *   (so that our own hooks skip them);
 *   map updates, the ring buffer, detaching, attaching again (--reattach):
 *   nothing more, on fds it holds (the kernel checks at load time);
 *   files (the log on SIGHUP, the FakeIP store, the config and @FILE read
 *   again), cgroup names by id, /proc/PID/exe of other users' processes, the
 *   captured processes' connected UDP sockets at exit (udp_failopen.c), and
 *   removing its own cgroup: the helper (privhelper.c), which has no network.
 * No port below 1024 is bound after the drop, so no CAP_NET_BIND_SERVICE.
 * With --netns all, serving a container that starts later means reading
 * /proc/PID/ns/net of another user's process (CAP_SYS_PTRACE) and setns
 * into it to make the listener and pool there (CAP_SYS_ADMIN): kept. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cap-ng.h>
#include <sys/prctl.h>

#include "log.h"
#include "privhelper.h"
#include "privs.h"

/* --user root: no drop at all. */
static int is_root(const char *user)
{
	struct passwd *pw;

	if (!user)
		return 0;
	pw = getpwnam(user);
	return pw && pw->pw_uid == 0;
}

int privs_check_user(const char *user, char *err, size_t errlen)
{
	errno = 0;
	if (getpwnam(user))
		return 0;
	snprintf(err, errlen, "--user %s: %s", user,
		 errno ? strerror(errno) : "no such user");
	return -1;
}

/* The default user: a dedicated one when the package made it, else nobody. */
static struct passwd *target_user(const char *user)
{
	struct passwd *pw;

	if (user)
		return getpwnam(user);
	pw = getpwnam(PRIVS_DEFAULT_USER);
	return pw ? pw : getpwnam("nobody");
}

/* What we kept, read back from the kernel, not what we asked for. */
static int verify(uid_t uid, int bind_low, int containers)
{
	capng_get_caps_process();
	if (getuid() != uid || geteuid() != uid) {
		log_err("privilege drop: still uid %d", (int)geteuid());
		return -1;
	}
	for (unsigned c = 0; c <= CAP_LAST_CAP; c++) {
		if (c == CAP_NET_ADMIN || (bind_low && c == CAP_NET_BIND_SERVICE) ||
		    (containers && (c == CAP_SYS_ADMIN || c == CAP_SYS_PTRACE)))
			continue;
		if (capng_have_capability(CAPNG_EFFECTIVE, c) ||
		    capng_have_capability(CAPNG_PERMITTED, c)) {
			log_err("privilege drop: %s is still held", capng_capability_to_name(c));
			return -1;
		}
	}
	return 0;
}

int privs_drop(const struct privs_plan *p)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;
	char name[64];
	pid_t helper;

	if (p->no_drop || p->keep_why || is_root(p->user)) {
		log_info("privileges: kept all (%s); the daemon runs as uid %d",
			 p->no_drop ? "--no-drop" : p->keep_why ? p->keep_why : "--user root",
			 (int)geteuid());
		return 0;
	}
	if (geteuid() != 0) {
		log_info("privileges: not started as root: nothing to drop");
		return 0;
	}
	pw = target_user(p->user);
	if (!pw) {
		log_err("privilege drop: no user %s (nor nobody): use --user NAME, or "
			"--no-drop", p->user ? p->user : PRIVS_DEFAULT_USER);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	snprintf(name, sizeof(name), "%s", pw->pw_name);
	privhelper_allow_append(p->log_path);
	privhelper_allow_store(p->store_path);
	privhelper_allow_sockets_of(p->target);
	helper = privhelper_start(p->cg_mount, p->own_cg, p->self_cg);
	if (helper < 0) {
		log_err("privilege drop: cannot start the helper: %s", strerror(errno));
		return -1;
	}
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED, CAP_NET_ADMIN) < 0 ||
	    (p->bind_low && capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED,
					 CAP_NET_BIND_SERVICE) < 0) ||
	    (p->containers && capng_updatev(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED,
					    CAP_SYS_ADMIN, CAP_SYS_PTRACE, -1) < 0)) {
		log_err("privilege drop: libcap-ng cannot name CAP_NET_ADMIN");
		return -1;
	}
	if (capng_change_id((int)uid, (int)gid, CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING)) {
		log_err("privilege drop: cannot become user %s (uid %d, gid %d): %s", name,
			(int)uid, (int)gid, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    verify(uid, p->bind_low, p->containers) < 0)
		return -1;
	gr = getgrgid(gid);
	log_info("privileges: running as user %s (uid %d), group %s (gid %d), with "
		 "CAP_NET_ADMIN%s (SO_MARK on the daemon's own sockets)%s%s", name,
		 (int)uid, gr ? gr->gr_name : "?", (int)gid,
		 p->bind_low || p->containers ? "" : " only", p->bind_low ? " and "
		 "CAP_NET_BIND_SERVICE (replies from the original port, IP_TRANSPARENT)" : "",
		 p->containers ? ", CAP_SYS_ADMIN and CAP_SYS_PTRACE (--netns all: entering "
		 "the network namespace of a container that starts later; --netns current "
		 "drops them)" : "");
	log_info("privileges: helper pid %d keeps uid 0 with CAP_DAC_OVERRIDE, "
		 "CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, no network: it reopens the "
		 "log, writes the FakeIP store, reads the config again, names cgroups "
		 "and executables, hands over the captured processes' UDP sockets at "
		 "exit, and removes the daemon's cgroup", (int)helper);
	return 0;
}
