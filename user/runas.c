/* Whom run's command runs as: the invoking user, never root by default. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runas.h"

static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *out >= (unsigned long)(uid_t)-1 ? -1 : 0;
}

/* The supplementary groups a login would give; the primary alone for a
 * uid with no name. */
static int fill_groups(struct runas *p)
{
	if (p->name[0]) {
		p->ngroups = 0;
		getgrouplist(p->name, p->gid, NULL, &p->ngroups);
		p->groups = calloc((size_t)p->ngroups + 1, sizeof(gid_t));
		if (p->groups && getgrouplist(p->name, p->gid, p->groups, &p->ngroups) < 0)
			p->ngroups = 0;
	}
	if (!p->groups && !(p->groups = calloc(1, sizeof(gid_t))))
		return -1;
	if (!p->ngroups) {
		p->groups[0] = p->gid;
		p->ngroups = 1;
	}
	return 0;
}

/* From SUDO_UID/SUDO_GID or PKEXEC_UID: numbers, and never 0. */
static int from_env(struct runas *p, const char *from, const char *uid_s,
		    const char *gid_s, char *err, size_t len)
{
	struct passwd *pw;
	unsigned long v, g = 0;

	if (parse_id(uid_s, &v) < 0 || (gid_s && parse_id(gid_s, &g) < 0)) {
		snprintf(err, len, "%s=%s%s%s is not a uid (and gid); pass --user NAME",
			 from, uid_s, gid_s ? ", SUDO_GID=" : "", gid_s ? gid_s : "");
		return -1;
	}
	if (v == 0) {
		snprintf(err, len, "%s is 0: the command would run as root; pass "
			 "--user root if that is what you want, or --user NAME", from);
		return -1;
	}
	pw = getpwuid((uid_t)v);
	p->uid = (uid_t)v;
	p->gid = gid_s ? (gid_t)g : pw ? pw->pw_gid : (gid_t)v;
	if (pw) {
		snprintf(p->name, sizeof(p->name), "%s", pw->pw_name);
		snprintf(p->home, sizeof(p->home), "%s", pw->pw_dir);
	}
	return 0;
}

int runas_resolve(struct runas *p, const char *user, uid_t ruid, char *err, size_t len)
{
	const char *uid_s;
	struct passwd *pw = NULL;
	unsigned long v;

	memset(p, 0, sizeof(*p));
	if (user) {
		pw = getpwnam(user);
		if (!pw && parse_id(user, &v) < 0) {
			snprintf(err, len, "--user %s: no such user", user);
			return -1;
		}
		if (!pw && !(pw = getpwuid((uid_t)v)))
			p->uid = p->gid = (uid_t)v;
	} else if ((uid_s = getenv("SUDO_UID"))) {
		if (from_env(p, "SUDO_UID", uid_s, getenv("SUDO_GID"), err, len) < 0)
			return -1;
	} else if ((uid_s = getenv("PKEXEC_UID"))) {
		if (from_env(p, "PKEXEC_UID", uid_s, NULL, err, len) < 0)
			return -1;
	} else if (ruid != 0) {
		if (!(pw = getpwuid(ruid)))
			p->uid = p->gid = ruid;
	} else {
		snprintf(err, len, "run as root, not through sudo: whom should the "
			 "command run as?  Pass --user NAME (--user root to run it as root)");
		return -1;
	}
	if (pw) {
		p->uid = pw->pw_uid;
		p->gid = pw->pw_gid;
		snprintf(p->name, sizeof(p->name), "%s", pw->pw_name);
		snprintf(p->home, sizeof(p->home), "%s", pw->pw_dir);
	}
	if (fill_groups(p) < 0) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	return 0;
}

int runas_become(const struct runas *p)
{
	if (geteuid() == 0 &&
	    (setgroups((size_t)p->ngroups, p->groups) < 0 ||
	     setresgid(p->gid, p->gid, p->gid) < 0 || setresuid(p->uid, p->uid, p->uid) < 0))
		return -1;
	if (p->uid != 0 && setuid(0) == 0) {
		errno = EPERM;   /* the change did not hold: never go on as root */
		return -1;
	}
	if (getuid() != p->uid || geteuid() != p->uid || getgid() != p->gid) {
		errno = EPERM;   /* not root to begin with, and not p either */
		return -1;
	}
	if (p->name[0]) {
		setenv("HOME", p->home, 1);
		setenv("USER", p->name, 1);
		setenv("LOGNAME", p->name, 1);
	}
	return 0;
}

void runas_free(struct runas *p)
{
	free(p->groups);
	p->groups = NULL;
}
