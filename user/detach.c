/* detach: the way back from --pin's fail-closed state.  Links first
 * (BPF_LINK_DETACH: traffic goes direct at once), then the pins that kept
 * them, then the cgroups that killed daemons left. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cgroup.h"
#include "cli.h"
#include "detach.h"
#include "log.h"
#include "owner.h"
#include "pin.h"

static const char detach_usage[] =
"Usage: sproxy-bpf detach CGROUP [--pin DIR] [-v]\n"
"Removes sproxy-bpf's programs from CGROUP, when the daemon that attached\n"
"them is gone and they stayed (--pin), and their pins: those in DIR, or\n"
"without --pin those found on the BPF filesystems.  Prints each link,\n"
"program, map and pin it removes, or 'nothing attached to CGROUP'.\n"
"Exit status: 0 done, or nothing was attached; 1 a running daemon holds\n"
"them (stop it first), or removing failed; 2 a bad CGROUP or DIR.\n";

static int bad(const char *msg, const char *arg)
{
	fprintf(stderr, "sproxy-bpf: detach: ");
	fprintf(stderr, msg, arg);
	fprintf(stderr, "\n%s", detach_usage);
	return EXIT_USAGE;
}

/* A --pin DIR must be sproxy-bpf's pins of this cgroup. */
static int check_pin(const char *dir, uint64_t cgid, const char *target)
{
	struct pin_meta m;
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("detach: --pin %s: %s", dir, errno ? strerror(errno) : "not a directory");
		return -1;
	}
	if (!pin_is_bpffs(dir)) {
		log_err("detach: --pin %s is not on a BPF filesystem", dir);
		return -1;
	}
	if (pin_read_meta(dir, &m) == 0 && m.target_id != cgid && strcmp(m.target, target)) {
		log_err("detach: --pin %s holds the pins of cgroup %s, not of %s", dir,
			m.target, target);
		return -1;
	}
	return 0;
}

static int detach_links(const struct owner_link *l, int n, const char *target)
{
	int rc = 0;

	for (int i = 0; i < n; i++) {
		const char *at = libbpf_bpf_attach_type_str(l[i].attach_type);
		int fd = bpf_link_get_fd_by_id(l[i].id);

		if (fd < 0 || bpf_link_detach(fd) < 0) {
			log_err("detach: link %u (program %s) on %s: %s", l[i].id, l[i].prog,
				target, strerror(errno));
			rc = -1;
		} else {
			printf("detached link %u (cgroup %s) of program %u %s from %s\n",
			       l[i].id, at ? at : "?", l[i].prog_id, l[i].prog, target);
		}
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

/* Programs attached without a link (BPF_PROG_ATTACH) come off by type. */
static int detach_unlinked(const char *target, const struct owner_prog *p, int np)
{
	int cgfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	for (int i = 0; i < np && cgfd >= 0; i++) {
		const char *at = libbpf_bpf_attach_type_str(p[i].attach_type);
		int fd = bpf_prog_get_fd_by_id(p[i].id);

		if (fd < 0 || bpf_prog_detach2(fd, cgfd, p[i].attach_type) < 0) {
			log_err("detach: program %u %s on %s: %s", p[i].id, p[i].name, target,
				strerror(errno));
			rc = -1;
		} else {
			printf("detached program %u %s (cgroup %s, attached without a link) "
			       "from %s\n", p[i].id, p[i].name, at ? at : "?", target);
		}
		if (fd >= 0)
			close(fd);
	}
	if (cgfd >= 0)
		close(cgfd);
	return rc;
}

int detach_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pin", required_argument, 0, 'p' },
		{ "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	char mount[PATH_MAX], target[PATH_MAX], err[512];
	char dirs[OWNER_MAX_PINS][PATH_MAX];
	struct owner_link l[OWNER_MAX_LINKS];
	struct owner_prog p[OWNER_MAX_LINKS];
	const char *pin_dir = NULL;
	struct stat st;
	int c, n, np, cgfd, ndirs, rc = 0, removed = 0;
	pid_t holder;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case 'p': pin_dir = optarg; break;
		case 'v': slog_level = SLOG_DEBUG; break;
		case 'h': fputs(detach_usage, stdout); return 0;
		default: return bad("%s", "bad option");
		}
	}
	if (optind != argc - 1)
		return bad("%s", optind >= argc ? "needs a CGROUP" : "one CGROUP only");
	if (cg_mount(mount, sizeof(mount)) < 0)
		return bad("%s", "no cgroup v2 hierarchy in /proc/mounts");
	if (cg_resolve(mount, argv[optind], 1, target, sizeof(target), err, sizeof(err)) < 0 ||
	    stat(target, &st) < 0) {
		log_err("detach: %s", err);
		return EXIT_USAGE;
	}
	if (pin_dir && check_pin(pin_dir, (uint64_t)st.st_ino, target) < 0)
		return EXIT_USAGE;
	n = owner_links((uint64_t)st.st_ino, l, OWNER_MAX_LINKS);
	if (n < 0) {
		log_err("detach: cannot list the BPF links: %s (needs CAP_SYS_ADMIN)",
			strerror(errno));
		return EXIT_RUNTIME;
	}
	cgfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	np = cgfd >= 0 ? owner_progs(cgfd, p, OWNER_MAX_LINKS) : 0;
	if (cgfd >= 0)
		close(cgfd);
	np = owner_unlinked(p, np, l, n);
	holder = n ? owner_holder(l, n) : 0;
	if (holder > 0) {
		log_err("detach: %s is captured by sproxy-bpf pid %d, which is running: "
			"stop it first (kill -TERM %d); with --pin its programs stay, and "
			"detach then removes them", target, (int)holder, (int)holder);
		return EXIT_RUNTIME;
	}
	if (pin_dir) {
		snprintf(dirs[0], PATH_MAX, "%s", pin_dir);
		ndirs = 1;
	} else {
		ndirs = owner_find_pins((uint64_t)st.st_ino, target, dirs, OWNER_MAX_PINS);
	}
	if (detach_links(l, n, target) < 0 || detach_unlinked(target, p, np) < 0)
		rc = EXIT_RUNTIME;
	for (int i = 0; i < ndirs; i++) {
		int k = pin_remove(dirs[i], stdout, err, sizeof(err));

		if (k < 0) {
			log_err("detach: %s", err);
			rc = EXIT_RUNTIME;
		} else {
			removed += k;
		}
	}
	cg_own_remove_stale(mount);
	if (n == 0 && np == 0 && removed == 0)
		printf("nothing attached to %s\n", target);
	else if (n && !ndirs)
		log_warn("detach: found no pin directory of %s on the BPF filesystems: "
			 "its pins stay, holding links that are detached now", target);
	return rc;
}
