#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "owner.h"
#include "pin.h"

#define PROG_PREFIX "sproxy_"

static int prog_name(uint32_t id, char name[16])
{
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id), rc;

	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	rc = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (rc < 0)
		return -1;
	memcpy(name, info.name, 16);
	name[15] = 0;
	return 0;
}

/* The hooks sproxy-bpf's programs take. */
static const enum bpf_attach_type hook_types[] = {
	BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT,
	BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG,
	BPF_CGROUP_UDP4_RECVMSG, BPF_CGROUP_UDP6_RECVMSG,
	BPF_CGROUP_INET4_GETPEERNAME, BPF_CGROUP_INET6_GETPEERNAME,
	BPF_CGROUP_SOCK_OPS, BPF_CGROUP_INET_SOCK_RELEASE,
	BPF_CGROUP_INET_SOCK_CREATE, BPF_CGROUP_SETSOCKOPT, BPF_CGROUP_GETSOCKOPT,
};

int owner_progs(int cgfd, struct owner_prog *out, int max)
{
	int n = 0;

	for (size_t t = 0; t < sizeof(hook_types) / sizeof(hook_types[0]); t++) {
		uint32_t ids[64], cnt = 64, flags = 0;

		if (bpf_prog_query(cgfd, hook_types[t], 0, &flags, ids, &cnt) < 0)
			continue;
		for (uint32_t i = 0; i < cnt && n < max; i++) {
			struct owner_prog *p = &out[n];

			if (prog_name(ids[i], p->name) < 0 ||
			    strncmp(p->name, PROG_PREFIX, strlen(PROG_PREFIX)) != 0)
				continue;
			p->id = ids[i];
			p->attach_type = hook_types[t];
			n++;
		}
	}
	return n;
}

/* One program may be there twice, through a link and without one: each
 * link accounts for one entry of the query. */
int owner_unlinked(struct owner_prog *p, int np, const struct owner_link *l, int nl)
{
	char used[OWNER_MAX_LINKS] = { 0 };
	int n = 0;

	for (int i = 0; i < np; i++) {
		int linked = 0;

		for (int j = 0; j < nl && j < OWNER_MAX_LINKS && !linked; j++) {
			linked = !used[j] && l[j].prog_id == p[i].id &&
				 l[j].attach_type == p[i].attach_type;
			used[j] |= linked;
		}
		if (!linked) {
			struct owner_prog t = p[n];

			p[n++] = p[i];
			p[i] = t;
		}
	}
	return n;
}

/* Every link of the kernel is looked at: a cgroup's attached programs say
 * nothing of the links that hold them, and the links are what a pid or a
 * pin keeps. */
int owner_links(uint64_t cgid, struct owner_link *out, int max)
{
	uint32_t id = 0;
	int n = 0;

	while (n < max && bpf_link_get_next_id(id, &id) == 0) {
		struct bpf_link_info info;
		uint32_t len = sizeof(info);
		int fd = bpf_link_get_fd_by_id(id);
		struct owner_link *l = &out[n];

		if (fd < 0)
			continue;        /* gone meanwhile */
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
		    info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgid &&
		    prog_name(info.prog_id, l->prog) == 0 &&
		    strncmp(l->prog, PROG_PREFIX, strlen(PROG_PREFIX)) == 0) {
			l->id = info.id;
			l->prog_id = info.prog_id;
			l->attach_type = info.cgroup.attach_type;
			n++;
		}
		close(fd);
	}
	if (n == 0 && errno != ENOENT)
		return -1;
	return n;
}

static int holds(const char *pid, const char *fd, const struct owner_link *l, int n)
{
	char path[600], line[128], target[64];
	ssize_t len;
	unsigned id;
	FILE *fp;
	int hit = 0;

	snprintf(path, sizeof(path), "/proc/%s/fd/%s", pid, fd);
	len = readlink(path, target, sizeof(target) - 1);
	if (len <= 0)
		return 0;
	target[len] = 0;
	/* "bpf_link" when made, "bpf-link" when opened from a pin */
	if (strcmp(target, "anon_inode:bpf_link") != 0 &&
	    strcmp(target, "anon_inode:bpf-link") != 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", pid, fd);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (!hit && fgets(line, sizeof(line), fp))
		if (sscanf(line, "link_id: %u", &id) == 1)
			for (int i = 0; i < n && !hit; i++)
				hit = l[i].id == id;
	fclose(fp);
	return hit;
}

pid_t owner_holder(const struct owner_link *l, int n)
{
	DIR *proc = opendir("/proc"), *fds;
	struct dirent *p, *f;
	char path[64];
	pid_t self = getpid(), found = 0;

	if (!proc)
		return 0;
	while (!found && (p = readdir(proc))) {
		char *end;
		long pid = strtol(p->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while (!found && (f = readdir(fds)))
			if (f->d_name[0] != '.' && holds(p->d_name, f->d_name, l, n))
				found = (pid_t)pid;
		closedir(fds);
	}
	closedir(proc);
	return found;
}

struct walk {
	uint64_t cgid;
	const char *path;
	char (*dirs)[PATH_MAX];
	int n, max;
	int budget;                /* directory entries left to look at */
};

static void walk_dir(struct walk *w, const char *dir, int depth)
{
	char path[PATH_MAX];
	struct pin_meta m;
	struct dirent *e;
	struct stat st;
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/meta", dir) < (int)sizeof(path) &&
	    stat(path, &st) == 0 && pin_read_meta(dir, &m) == 0) {
		if ((m.target_id == w->cgid || strcmp(m.target, w->path) == 0) &&
		    w->n < w->max)
			snprintf(w->dirs[w->n++], PATH_MAX, "%s", dir);
		return;
	}
	if (depth == 0 || !(d = opendir(dir)))
		return;
	while (w->budget-- > 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.' || e->d_type != DT_DIR)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		walk_dir(w, path, depth - 1);
	}
	closedir(d);
}

int owner_find_pins(uint64_t cgid, const char *path, char dirs[][PATH_MAX], int max)
{
	struct walk w = { .cgid = cgid, .path = path, .dirs = dirs, .max = max,
			  .budget = 20000 };
	char line[4096], dev[256], mnt[PATH_MAX], type[64], seen[8][PATH_MAX];
	int nseen = 0;
	FILE *fp = fopen("/proc/mounts", "re");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp) && nseen < 8) {
		int dup = 0;

		if (sscanf(line, "%255s %4095s %63s", dev, mnt, type) != 3 ||
		    strcmp(type, "bpf") != 0)
			continue;
		for (int i = 0; i < nseen; i++)
			dup |= strcmp(seen[i], mnt) == 0;
		if (dup)
			continue;
		snprintf(seen[nseen++], PATH_MAX, "%s", mnt);
		walk_dir(&w, mnt, 3);
	}
	fclose(fp);
	return w.n;
}

static void prog_list(const struct owner_link *l, int n, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = 0;
	for (int i = 0; i < n && i < 3 && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", l[i].prog);
	if (n > 3 && at < len)
		snprintf(buf + at, len - at, " and %d more", n - 3);
}

int owner_guard(const char *target, const struct pin *pin, char *err, size_t errlen)
{
	struct owner_link l[OWNER_MAX_LINKS];
	struct owner_prog p[OWNER_MAX_LINKS];
	char progs[128], dirs[OWNER_MAX_PINS][PATH_MAX];
	uint32_t ids[OWNER_MAX_LINKS];
	struct pin_meta m;
	struct stat st;
	int n, np, nids, ndirs, mine = 0, fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t pid;

	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return 0;     /* attach will say */
	}
	np = owner_progs(fd, p, OWNER_MAX_LINKS);
	close(fd);
	n = owner_links((uint64_t)st.st_ino, l, OWNER_MAX_LINKS);
	if (n < 0)
		n = 0;        /* cannot be listed: attach will say */
	np = owner_unlinked(p, np, l, n);
	if (n == 0 && np == 0)
		return 0;
	if (n)
		prog_list(l, n, progs, sizeof(progs));
	pid = n ? owner_holder(l, n) : 0;
	if (pid > 0) {
		snprintf(err, errlen, "%s is captured already by sproxy-bpf pid %d (%s): "
			 "a second daemon would stack on it; stop that one first",
			 target, (int)pid, progs);
		return -1;
	}
	if (np) {
		snprintf(err, errlen, "%s has sproxy-bpf's programs attached without a "
			 "link (%s%s; by another tool, or an older version): remove them "
			 "with 'sproxy-bpf detach %s'", target, p[0].name,
			 np > 1 ? " and more" : "", target);
		return -1;
	}
	if (pin) {
		nids = pin_link_ids(pin->dir, ids, OWNER_MAX_LINKS);
		for (int i = 0; i < n; i++)
			for (int j = 0; j < nids; j++)
				mine += l[i].id == ids[j];
		if (mine == n)
			return 0;     /* our own pins: a takeover */
	}
	ndirs = owner_find_pins((uint64_t)st.st_ino, target, dirs, OWNER_MAX_PINS);
	if (ndirs > 0 && pin_read_meta(dirs[0], &m) == 0) {
		snprintf(err, errlen, "%s is still captured by the programs (%s) that "
			 "sproxy-bpf pid %u pinned at %s and left when it died: start with "
			 "--pin %s to take them over, or remove them with 'sproxy-bpf detach %s'",
			 target, progs, m.pid, dirs[0], dirs[0], target);
		return -1;
	}
	snprintf(err, errlen, "%s still has sproxy-bpf's programs attached (%s), held "
		 "by no process (pinned outside any pin directory this finds): remove them "
		 "with 'sproxy-bpf detach %s'", target, progs, target);
	return -1;
}
