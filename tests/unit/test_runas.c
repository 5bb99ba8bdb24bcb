/* Whom run's command runs as: --user, SUDO_UID/SUDO_GID, PKEXEC_UID, the
 * real uid; never root unless asked by name; and becoming that user holds
 * (in a child process, when the test runs as root). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "check.h"
#include "runas.h"

static char err[512];

static void clear_env(void)
{
	unsetenv("SUDO_UID");
	unsetenv("SUDO_GID");
	unsetenv("PKEXEC_UID");
}

/* resolve with the environment given as "VAR=VALUE" words (NULL ends). */
static int resolve(struct runas *p, const char *user, uid_t ruid, const char *env1,
		   const char *env2)
{
	clear_env();
	if (env1)
		putenv((char *)env1);
	if (env2)
		putenv((char *)env2);
	err[0] = 0;
	return runas_resolve(p, user, ruid, err, sizeof(err));
}

static void user_by_name_and_number(void)
{
	struct runas p;

	CHECK(resolve(&p, "nobody", 0, NULL, NULL) == 0);
	CHECK(p.uid == 65534);
	CHECK_STREQ(p.name, "nobody");
	CHECK(p.ngroups >= 1);
	runas_free(&p);
	CHECK(resolve(&p, "65534", 0, NULL, NULL) == 0);
	CHECK_STREQ(p.name, "nobody");
	runas_free(&p);
	/* A uid no passwd entry names: its own number as gid, no name. */
	CHECK(resolve(&p, "3999999", 0, NULL, NULL) == 0);
	CHECK(p.uid == 3999999 && p.gid == 3999999);
	CHECK(p.ngroups == 1 && p.groups[0] == 3999999);
	CHECK_STREQ(p.name, "");
	runas_free(&p);
	CHECK(resolve(&p, "root", 0, "SUDO_UID=65534", NULL) == 0);
	CHECK(p.uid == 0 && p.gid == 0);
	runas_free(&p);
	CHECK(resolve(&p, "no-such-user-here", 0, NULL, NULL) == -1);
	CHECK(strstr(err, "--user no-such-user-here") != NULL);
	CHECK(resolve(&p, "-1", 0, NULL, NULL) == -1);
}

static void from_sudo_and_pkexec(void)
{
	struct runas p;

	CHECK(resolve(&p, NULL, 0, "SUDO_UID=65534", "SUDO_GID=65534") == 0);
	CHECK(p.uid == 65534 && p.gid == 65534);
	CHECK_STREQ(p.name, "nobody");
	CHECK_STREQ(p.home, "/nonexistent");
	runas_free(&p);
	/* SUDO_GID is sudo's word for the group, even when passwd says another. */
	CHECK(resolve(&p, NULL, 0, "SUDO_UID=65534", "SUDO_GID=100") == 0);
	CHECK(p.uid == 65534 && p.gid == 100);
	runas_free(&p);
	CHECK(resolve(&p, NULL, 0, "PKEXEC_UID=65534", NULL) == 0);
	CHECK(p.uid == 65534 && p.gid == 65534);
	runas_free(&p);
	CHECK(resolve(&p, NULL, 0, "SUDO_UID=65534x", NULL) == -1);
	CHECK(strstr(err, "SUDO_UID=65534x") != NULL);
	CHECK(resolve(&p, NULL, 0, "SUDO_UID=65534", "SUDO_GID=") == -1);
}

static void never_root_unasked(void)
{
	struct runas p;

	CHECK(resolve(&p, NULL, 0, NULL, NULL) == -1);
	CHECK(strstr(err, "--user") != NULL);
	CHECK(resolve(&p, NULL, 0, "SUDO_UID=0", "SUDO_GID=0") == -1);
	CHECK(strstr(err, "--user root") != NULL);
	CHECK(resolve(&p, NULL, 0, "PKEXEC_UID=0", NULL) == -1);
	/* Not root ourselves: our own real uid. */
	CHECK(resolve(&p, NULL, 65534, NULL, NULL) == 0);
	CHECK(p.uid == 65534);
	runas_free(&p);
}

static void becoming_holds(void)
{
	struct runas p;
	pid_t pid;
	int st = -1;

	if (geteuid() != 0)
		return;      /* nothing to drop */
	CHECK(resolve(&p, NULL, 0, "SUDO_UID=65534", "SUDO_GID=65534") == 0);
	pid = fork();
	if (pid == 0) {
		gid_t groups[8];
		int n;

		if (runas_become(&p) < 0)
			_exit(1);
		n = getgroups(8, groups);
		_exit(getuid() != 65534 || geteuid() != 65534 || getgid() != 65534 ||
		      n != 1 || groups[0] != 65534 || setuid(0) == 0 || setgid(0) == 0 ||
		      strcmp(getenv("USER"), "nobody") != 0 ? 2 : 0);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	runas_free(&p);
}

int main(void)
{
	RUN("runas", user_by_name_and_number);
	RUN("runas", from_sudo_and_pkexec);
	RUN("runas", never_root_unasked);
	RUN("runas", becoming_holds);
	clear_env();
	CHECK_EXIT();
}
