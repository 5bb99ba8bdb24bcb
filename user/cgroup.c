#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "cgroup.h"
#include "privhelper.h"
#include "log.h"

int cg_mount(char *buf, size_t len)
{
	char line[4096], dev[256], dir[PATH_MAX], type[64];
	FILE *fp = fopen("/proc/mounts", "re");

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		if (sscanf(line, "%255s %4095s %63s", dev, dir, type) == 3 &&
		    strcmp(type, "cgroup2") == 0) {
			snprintf(buf, len, "%s", dir);
			fclose(fp);
			return 0;
		}
	}
	fclose(fp);
	return -1;
}

int cg_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

int cg_resolve(const char *mount, const char *arg, int allow_root,
	       char *path, size_t len, char *err, size_t errlen)
{
	char joined[PATH_MAX], real[PATH_MAX], realmount[PATH_MAX];
	struct statfs fs;
	struct stat st;

	if (arg[0] == '/')
		snprintf(joined, sizeof(joined), "%s", arg);
	else
		snprintf(joined, sizeof(joined), "%s/%s", mount, arg);
	if (!realpath(joined, real)) {
		snprintf(err, errlen, "cgroup '%s': %s", joined, strerror(errno));
		return -1;
	}
	if (!realpath(mount, realmount))
		snprintf(realmount, sizeof(realmount), "%s", mount);
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode) || statfs(real, &fs) < 0 ||
	    fs.f_type != CGROUP2_SUPER_MAGIC || !cg_within(real, realmount)) {
		snprintf(err, errlen, "'%s' is not a cgroup v2 directory "
			 "(the cgroup v2 hierarchy is mounted at %s)", real, mount);
		return -1;
	}
	if (strcmp(real, realmount) == 0 && !allow_root) {
		snprintf(err, errlen, "'%s' is the cgroup v2 root: attaching there "
			 "captures every process on this machine, system daemons "
			 "included; pass --all if that is really what you want", real);
		return -1;
	}
	snprintf(path, len, "%s", real);
	return 0;
}

int cg_self(const char *mount, char *path, size_t len)
{
	char line[PATH_MAX + 8];
	FILE *fp = fopen("/proc/self/cgroup", "re");
	int rc = -1;

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(path, len, "%s%s", mount,
				 strcmp(line + 3, "/") == 0 ? "" : line + 3);
			rc = 0;
			break;
		}
	}
	fclose(fp);
	return rc;
}

int cg_move_self(const char *path)
{
	char procs[PATH_MAX];
	int fd, rc = 0;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "0", 1) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* A cgroup's id is its inode number on the cgroup2 mount, and the kernel
 * opens a cgroup by id as a file handle (kernfs, 8 bytes): a lookup costs
 * three syscalls, not a walk of the tree.  Answers are cached in a bounded
 * table, misses too (a process's cgroup removed since), each for a while. */
#define CG_NAME_SLOTS 1024
#define CG_NAME_TTL 60          /* seconds: a cgroup may be renamed */
#define CG_NAME_MISS_TTL 1      /* seconds: a new cgroup appears */
#define FILEID_KERNFS 0xfe

static struct cg_name_entry {
	uint64_t id;
	time_t at;
	char *path;             /* NULL: a miss */
} cg_names[CG_NAME_SLOTS];

static int cg_open_by_id(const char *mount, uint64_t id)
{
	static int mount_fd = -1, warned;
	struct { struct file_handle fh; uint64_t id; } h;
	int fd;

	if (mount_fd < 0)
		mount_fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mount_fd < 0)
		return -1;
	h.fh.handle_bytes = sizeof(h.id);
	h.fh.handle_type = FILEID_KERNFS;
	h.id = id;
	fd = open_by_handle_at(mount_fd, &h.fh, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno != ESTALE && errno != ENOENT && !warned++)
		log_warn("cannot name cgroups by id under %s: %s; the log shows "
			 "cgroup=? (needs CAP_DAC_READ_SEARCH)", mount, strerror(errno));
	return fd;
}

static char *cg_lookup(const char *mount, uint64_t id)
{
	char link[64], path[PATH_MAX];
	size_t n = strlen(mount);
	ssize_t len;
	int fd;

	/* After the drop, the helper holds CAP_DAC_READ_SEARCH. */
	if (privhelper_cgroup_path(id, path, sizeof(path)) < 0) {
		if (errno != ENOSYS || (fd = cg_open_by_id(mount, id)) < 0)
			return NULL;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, path, sizeof(path) - 1);
		close(fd);
		if (len <= 0)
			return NULL;
		path[len] = 0;
	}
	if (strncmp(path, mount, n) || (path[n] && path[n] != '/'))
		return NULL;
	return strdup(path[n] ? path + n : "/");
}

const char *cg_name(const char *mount, uint64_t id)
{
	struct cg_name_entry *e = &cg_names[id % CG_NAME_SLOTS];
	time_t now = time(NULL);

	if (!id)
		return "?";
	if (e->id == id && now - e->at < (e->path ? CG_NAME_TTL : CG_NAME_MISS_TTL))
		return e->path ? e->path : "?";
	free(e->path);
	e->id = id;
	e->at = now;
	e->path = cg_lookup(mount, id);
	return e->path ? e->path : "?";
}

void cg_remove_stale(const char *base, const char *who)
{
	DIR *d = opendir(base);
	struct dirent *e;
	char p[PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		if (snprintf(p, sizeof(p), "%s/%ld", base, pid) >= (int)sizeof(p))
			continue;
		if (rmdir(p) == 0)
			log_info("removed %s, left by %s that was killed", p, who);
	}
	closedir(d);
}

int cg_own_create(const char *mount, char *path, size_t len, char *err, size_t errlen)
{
	char base[PATH_MAX];

	snprintf(base, sizeof(base), "%s/sproxy-bpf", mount);
	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		goto fail_base;
	cg_remove_stale(base, "a daemon");
	snprintf(path, len, "%s/%d", base, (int)getpid());
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create cgroup %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
fail_base:
	snprintf(err, errlen, "cannot create cgroup %s: %s", base, strerror(errno));
	return -1;
}

void cg_own_remove(const char *mount, const char *path)
{
	char base[PATH_MAX];

	if (rmdir(path) < 0 && errno != ENOENT)
		log_warn("cannot remove cgroup %s: %s", path, strerror(errno));
	snprintf(base, sizeof(base), "%s/sproxy-bpf", mount);
	rmdir(base);    /* fails while another daemon runs: fine */
}

void cg_own_remove_stale(const char *mount)
{
	char base[PATH_MAX];

	snprintf(base, sizeof(base), "%s/sproxy-bpf", mount);
	cg_remove_stale(base, "a daemon");
	rmdir(base);    /* fails while a daemon runs: fine */
}
