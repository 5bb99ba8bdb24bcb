#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "pin.h"

static const char *const subdirs[] = { "links", "progs", "maps" };

int pin_is_bpffs(const char *path)
{
	struct statfs fs;

	return statfs(path, &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

static int not_bpffs(const char *dir, char *err, size_t errlen)
{
	snprintf(err, errlen, "--pin %s is not on a BPF filesystem: pins live on "
		 "one, e.g. under /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)", dir);
	return -1;
}

/* Pins of ours beside other tools' at the top of /sys/fs/bpf: no. */
static int is_mount_root(const char *dir, const struct stat *st)
{
	char up[PATH_MAX + 4];
	struct stat pst;

	snprintf(up, sizeof(up), "%s/..", dir);
	return stat(up, &pst) == 0 && (pst.st_dev != st->st_dev || pst.st_ino == st->st_ino);
}

int pin_open(struct pin *p, const char *dir, char *err, size_t errlen)
{
	char parent[PATH_MAX], sub[PATH_MAX + 16], *slash;
	struct stat st;
	size_t n = strlen(dir);

	memset(p, 0, sizeof(*p));
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(p->dir) - 32) {
		snprintf(err, errlen, "--pin '%s': not a usable path", dir);
		return -1;
	}
	memcpy(p->dir, dir, n);
	if (stat(p->dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "--pin %s is not a directory", p->dir);
			return -1;
		}
		if (!pin_is_bpffs(p->dir))
			return not_bpffs(p->dir, err, errlen);
		if (is_mount_root(p->dir, &st)) {
			snprintf(err, errlen, "--pin %s is the BPF filesystem's root: give a "
				 "directory of its own below it (%s/sproxy-bpf)", p->dir, p->dir);
			return -1;
		}
	} else if (errno == ENOENT) {
		snprintf(parent, sizeof(parent), "%s", p->dir);
		slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = 0;
		else if (slash)
			*slash = 0;
		else
			snprintf(parent, sizeof(parent), ".");
		if (access(parent, F_OK) < 0) {
			snprintf(err, errlen, "--pin %s: its parent %s: %s", p->dir, parent,
				 strerror(errno));
			return -1;
		}
		if (!pin_is_bpffs(parent))
			return not_bpffs(p->dir, err, errlen);
		if (mkdir(p->dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "--pin %s: cannot create it: %s", p->dir, strerror(errno));
			return -1;
		}
	} else {
		snprintf(err, errlen, "--pin %s: %s", p->dir, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", p->dir, subdirs[i]);
		if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "--pin: cannot create %s: %s", sub, strerror(errno));
			return -1;
		}
	}
	if (pin_read_meta(p->dir, &p->old) == 0) {
		p->takeover = 1;
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "--pin %s: %s/meta is not sproxy-bpf's (or of another "
			 "version); remove the directory, or pick another", p->dir, p->dir);
		return -1;
	}
	return 0;
}

int pin_read_meta(const char *dir, struct pin_meta *m)
{
	char path[PATH_MAX + 8];
	struct bpf_map_info info;
	uint32_t len = sizeof(info), key = 0;
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/meta", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	errno = EINVAL;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.type == BPF_MAP_TYPE_ARRAY &&
	    info.value_size == sizeof(*m) && bpf_map_lookup_elem(fd, &key, m) == 0 &&
	    m->magic == PIN_MAGIC && m->size == sizeof(*m))
		rc = 0;
	else
		errno = EINVAL;
	close(fd);
	return rc;
}

int pin_write_meta(const struct pin *p, const struct pin_meta *m, char *err, size_t errlen)
{
	char path[PATH_MAX + 8];
	uint32_t key = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/meta", p->dir);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sproxy_meta", sizeof(key),
				    sizeof(*m), 1, NULL);
		if (fd < 0 || bpf_obj_pin(fd, path) < 0)
			goto fail;
	}
	if (bpf_map_update_elem(fd, &key, m, BPF_ANY) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	snprintf(err, errlen, "--pin: cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static const char *addr_or_none(const struct sproxy_addr *a, char *buf, size_t len)
{
	struct sockaddr_storage ss;

	if (!a->port)
		return "none";
	addr_from_sproxy(a, &ss);
	return addr_str((struct sockaddr *)&ss, buf, len);
}

int pin_check(const struct pin *p, const struct pin_meta *want, char *err, size_t errlen)
{
	const struct pin_meta *o = &p->old;
	char a[ADDR_STRLEN], b[ADDR_STRLEN], c[ADDR_STRLEN], d[ADDR_STRLEN];

	if (!p->takeover)
		return 0;
	/* The same path with another id: the cgroup was removed and made
	 * again (a login after a logout); the links pinned on the old one
	 * are dead, and get replaced. */
	if (o->target_id != want->target_id && strcmp(o->target, want->target) != 0) {
		snprintf(err, errlen, "--pin %s holds the pins of cgroup %s, not of %s: one "
			 "directory per cgroup ('sproxy-bpf detach %s --pin %s' removes them)",
			 p->dir, o->target, want->target, o->target, p->dir);
		return -1;
	}
	/* The pinned records name the listeners (the 4-tuples' proxy end),
	 * and the pinned programs redirect there until they are replaced. */
	if (memcmp(&o->listen4, &want->listen4, sizeof(o->listen4)) ||
	    memcmp(&o->listen6, &want->listen6, sizeof(o->listen6))) {
		snprintf(err, errlen, "--pin %s: the daemon that pinned these programs "
			 "listened on %s and %s, this one would on %s and %s; a takeover keeps "
			 "the listeners (give the same --listen), or detach first",
			 p->dir, addr_or_none(&o->listen4, a, sizeof(a)),
			 addr_or_none(&o->listen6, b, sizeof(b)),
			 addr_or_none(&want->listen4, c, sizeof(c)),
			 addr_or_none(&want->listen6, d, sizeof(d)));
		return -1;
	}
	if (o->mark != want->mark || o->map_size != want->map_size ||
	    o->pool_size != want->pool_size) {
		snprintf(err, errlen, "--pin %s was made with --mark 0x%x --map-size %u "
			 "--udp-flows %u; a takeover keeps them (the pinned maps and the "
			 "marks of live sockets depend on them), or detach first",
			 p->dir, o->mark, o->map_size, o->pool_size);
		return -1;
	}
	return 0;
}

int pin_maps(const struct pin *p, struct bpf_object *obj, char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	struct bpf_map *m;

	bpf_object__for_each_map(m, obj) {
		const char *name = bpf_map__name(m);

		/* The settings of the programs loaded now, not of the
		 * earlier ones (the daemon's pid, above all).  A reused
		 * .bss or .data keeps its values: whatever user space sets
		 * in them must be set after load (as udp_per_proc is). */
		if (strstr(name, ".rodata") || strstr(name, ".kconfig"))
			continue;
		snprintf(path, sizeof(path), "%s/maps/%s", p->dir, name);
		/* bpffs refuses names with a dot ("sproxy_b.bss") */
		for (char *c = path + strlen(p->dir) + 6; *c; c++)
			if (*c == '.')
				*c = '_';
		if (bpf_map__set_pin_path(m, path)) {
			snprintf(err, errlen, "--pin: map %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int pin_progs(const struct pin *p, struct bpf_object *obj, char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		snprintf(path, sizeof(path), "%s/progs/%s", p->dir, bpf_program__name(prog));
		if (unlink(path) < 0 && errno != ENOENT)
			goto fail;
		if (bpf_program__pin(prog, path))
			goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "--pin: cannot pin %s: %s", path, strerror(errno));
	return -1;
}

static int link_info(int fd, struct bpf_link_info *info)
{
	uint32_t len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &len);
}

struct bpf_link *pin_link(const struct pin *p, struct bpf_program *prog, int cgfd,
			  uint64_t cgid, char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	struct bpf_link *old = NULL, *link;
	struct bpf_link_info info;
	int e;

	snprintf(path, sizeof(path), "%s/links/%s", p->dir, bpf_program__name(prog));
	if (access(path, F_OK) == 0)
		old = bpf_link__open(path);
	if (old && link_info(bpf_link__fd(old), &info) == 0 &&
	    info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgid &&
	    info.cgroup.attach_type == bpf_program__expected_attach_type(prog)) {
		if (bpf_link__update_program(old, prog) == 0)
			return old;
		snprintf(err, errlen, "cannot replace the program of the link pinned at "
			 "%s: %s", path, strerror(errno));
		bpf_link__destroy(old);   /* the fd only: the pin stays */
		return NULL;
	}
	/* Elsewhere (a cgroup removed and made again): the new link first,
	 * then the old one goes. */
	link = bpf_program__attach_cgroup(prog, cgfd);
	if (!link) {
		e = errno;
		snprintf(err, errlen, "cannot attach %s: %s", bpf_program__section_name(prog),
			 strerror(e));
		if (old)
			bpf_link__destroy(old);
		return NULL;
	}
	if (old)
		bpf_link__unpin(old);
	else
		unlink(path);    /* not a link: a leftover */
	if (bpf_link__pin(link, path)) {
		snprintf(err, errlen, "cannot pin the link of %s at %s: %s",
			 bpf_program__name(prog), path, strerror(errno));
		bpf_link__destroy(link);
		link = NULL;
	}
	if (old)
		bpf_link__destroy(old);
	return link;
}

int pin_link_ids(const char *dir, uint32_t *ids, int max)
{
	char path[PATH_MAX + 300];
	struct bpf_link_info info;
	struct dirent *e;
	DIR *d;
	int n = 0, fd;

	snprintf(path, sizeof(path), "%s/links", dir);
	d = opendir(path);
	if (!d)
		return 0;
	while (n < max && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/links/%s", dir, e->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (link_info(fd, &info) == 0)
			ids[n++] = info.id;
		close(fd);
	}
	closedir(d);
	return n;
}

/* One line of detach's report for the pin at path. */
static void describe(FILE *out, const char *kind, const char *path)
{
	union {
		struct bpf_link_info link;
		struct bpf_prog_info prog;
		struct bpf_map_info map;
	} u;
	uint32_t len = sizeof(u);
	int fd = bpf_obj_get(path);

	memset(&u, 0, sizeof(u));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &u, &len) < 0) {
		fprintf(out, "removed pin %s\n", path);
	} else if (strcmp(kind, "links") == 0) {
		const char *at = libbpf_bpf_attach_type_str(u.link.cgroup.attach_type);

		fprintf(out, "removed pin %s (link %u, cgroup %s, program %u)\n", path, u.link.id,
		       at ? at : "?", u.link.prog_id);
	} else if (strcmp(kind, "progs") == 0) {
		fprintf(out, "removed pin %s (program %u %s)\n", path, u.prog.id, u.prog.name);
	} else {
		fprintf(out, "removed pin %s (map %u %s)\n", path, u.map.id, u.map.name);
	}
	if (fd >= 0)
		close(fd);
}

int pin_remove(const char *dir, FILE *report, char *err, size_t errlen)
{
	char path[PATH_MAX + 300];
	struct dirent *e;
	int n = 0;

	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		DIR *d;

		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		d = opendir(path);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' && (!e->d_name[1] ||
						    (e->d_name[1] == '.' && !e->d_name[2])))
				continue;
			snprintf(path, sizeof(path), "%s/%s/%s", dir, subdirs[i], e->d_name);
			if (report)
				describe(report, subdirs[i], path);
			if (unlink(path) < 0) {
				snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
				closedir(d);
				return -1;
			}
			n++;
		}
		closedir(d);
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		rmdir(path);
	}
	snprintf(path, sizeof(path), "%s/meta", dir);
	if (unlink(path) == 0) {
		if (report)
			fprintf(report, "removed pin %s\n", path);
		n++;
	}
	if (rmdir(dir) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove %s: %s (it holds files that are not "
			 "sproxy-bpf's)", dir, strerror(errno));
		return -1;
	}
	return n;
}
