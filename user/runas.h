/* Whom run's command runs as, and becoming that user for good. */
#ifndef SPROXY_RUNAS_H
#define SPROXY_RUNAS_H
#include <limits.h>
#include <sys/types.h>

struct runas {
	uid_t uid;
	gid_t gid;
	gid_t *groups;           /* supplementary, the primary among them */
	int ngroups;
	char name[256];          /* "" for a uid without a passwd entry */
	char home[PATH_MAX];
};

/* user (--user NAME or UID) when given; else the user sudo (SUDO_UID,
 * SUDO_GID) or pkexec (PKEXEC_UID) ran us for; else ruid, our real uid,
 * when it is not root.  Root only when user names it.  A uid without a
 * passwd entry gets its own number as gid.  0, or -1 with err saying
 * why and what to pass. */
int runas_resolve(struct runas *p, const char *user, uid_t ruid, char *err, size_t len);
/* Groups, gid and uid (real, effective, saved), checked: root cannot be
 * got back unless p is root.  HOME, USER and LOGNAME follow a named user.
 * 0, or -1 with errno. */
int runas_become(const struct runas *p);
void runas_free(struct runas *p);

#endif
