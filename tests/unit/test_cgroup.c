/* cgroup paths: naming a cgroup by id for the log without walking the
 * tree, and refusing a CGROUP that is a file.  Needs root and the cgroup
 * v2 mount; makes <cg2>/sproxy-bpf-test-<pid>-unit/a/b and removes it. */
#include <dlfcn.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "check.h"
#include "daemon.h"

/* Every tree walk of the code under test comes through here. */
static int walks;
int nftw(const char *dir, __nftw_func_t fn, int nopenfd, int flags)
{
	int (*real)(const char *, __nftw_func_t, int, int) =
		(int (*)(const char *, __nftw_func_t, int, int))dlsym(RTLD_NEXT, "nftw");

	walks++;
	return real ? real(dir, fn, nopenfd, flags) : -1;
}

static struct daemon d;
static char top[PATH_MAX], leaf[PATH_MAX + 8];

static void names_by_id_without_walking(void)
{
	char want[PATH_MAX];
	struct stat st;

	CHECK(stat(leaf, &st) == 0);
	snprintf(want, sizeof(want), "%s", leaf + strlen(d.cg_mount));
	walks = 0;
	CHECK_STREQ(daemon_cgroup_name(&d, (uint64_t)st.st_ino), want);
	CHECK_STREQ(daemon_cgroup_name(&d, (uint64_t)st.st_ino), want);
	/* Ids of cgroups that are gone (processes outlive them): asked for
	 * again and again, by every connection of such a process. */
	for (int i = 0; i < 200; i++)
		CHECK_STREQ(daemon_cgroup_name(&d, 0x7fffffff00000000ull + (uint64_t)(i % 20)), "?");
	if (walks)
		printf("  %d walks of the cgroup tree for 202 lookups\n", walks);
	CHECK(walks == 0);
}

static void refuses_a_file(void)
{
	char procs[PATH_MAX + 16], path[PATH_MAX], err[512] = "";

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", top);
	CHECK(cg_resolve(d.cg_mount, procs, 0, path, sizeof(path), err, sizeof(err)) < 0);
	CHECK(strstr(err, "not a cgroup v2 directory") != NULL);
	CHECK(cg_resolve(d.cg_mount, top, 0, path, sizeof(path), err, sizeof(err)) == 0);
}

int main(void)
{
	char mid[PATH_MAX + 8];

	if (cg_mount(d.cg_mount, sizeof(d.cg_mount)) < 0) {
		printf("FAIL cgroup/setup: no cgroup2 mount\n");
		return 1;
	}
	if (snprintf(top, sizeof(top), "%.3000s/sproxy-bpf-test-%d-unit", d.cg_mount,
		     (int)getpid()) >= (int)sizeof(top))
		return 1;
	snprintf(mid, sizeof(mid), "%.3100s/a", top);
	snprintf(leaf, sizeof(leaf), "%.3100s/a/b", top);
	snprintf(d.target, sizeof(d.target), "%s", top);
	if (mkdir(top, 0755) < 0 || mkdir(mid, 0755) < 0 || mkdir(leaf, 0755) < 0) {
		printf("FAIL cgroup/setup: cannot make %s (run as root)\n", leaf);
		rmdir(mid);
		rmdir(top);
		return 1;
	}
	RUN("cgroup", names_by_id_without_walking);
	RUN("cgroup", refuses_a_file);
	rmdir(leaf);
	rmdir(mid);
	rmdir(top);
	CHECK_EXIT();
}
