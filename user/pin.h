/* --pin DIR: the cgroup's programs, links and maps pinned on the BPF
 * filesystem, so that they outlive the daemon (fail-closed), and a later
 * daemon with the same DIR takes them over.  Layout:
 *   DIR/meta           what the daemon that pinned them was (struct pin_meta)
 *   DIR/maps/NAME      every map but .rodata (the new programs' settings)
 *   DIR/progs/NAME     every program
 *   DIR/links/NAME     the links on the captured cgroup, one per program
 * The links on the daemon's own cgroup (getsockopt, the marks of its own
 * sockets) are not pinned: they serve only the daemon's sockets, which die
 * with it. */
#ifndef SPROXY_PIN_H
#define SPROXY_PIN_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sproxy.h"

struct bpf_object;
struct bpf_program;
struct bpf_link;

#define PIN_MAGIC 0x5350504eu   /* "SPPN" */

/* The daemon that owns (or last owned) a pin directory. */
struct pin_meta {
	uint32_t magic;
	uint32_t size;            /* sizeof(struct pin_meta): the layout */
	uint32_t pid;
	uint32_t mark;
	uint32_t map_size;
	uint32_t pool_size;
	uint64_t target_id;       /* the captured cgroup's id (its inode) */
	struct sproxy_addr listen4, listen6;   /* port 0: none */
	char target[256];         /* its path, for messages */
};

struct pin {
	char dir[PATH_MAX];
	int takeover;             /* DIR holds an earlier daemon's pins */
	struct pin_meta old;      /* theirs, when takeover */
};

/* Checks that dir is on a BPF filesystem (or would be: its parent is),
 * creates it and its subdirectories, reads an earlier daemon's meta.
 * 0, or -1 with err. */
int pin_open(struct pin *p, const char *dir, char *err, size_t errlen);
/* A takeover keeps what the pinned state depends on: the cgroup, the
 * listeners, the mark, the map sizes.  0, or -1 with err saying which. */
int pin_check(const struct pin *p, const struct pin_meta *want, char *err, size_t errlen);
/* Before load: every map but .rodata pinned under DIR/maps, reusing the
 * earlier daemon's where there are. */
int pin_maps(const struct pin *p, struct bpf_object *obj, char *err, size_t errlen);
/* After load: the programs under DIR/progs (an earlier daemon's replaced),
 * and the meta. */
int pin_progs(const struct pin *p, struct bpf_object *obj, char *err, size_t errlen);
int pin_write_meta(const struct pin *p, const struct pin_meta *m, char *err, size_t errlen);
int pin_read_meta(const char *dir, struct pin_meta *m);
/* prog's link on the cgroup cgfd (id cgid), pinned at DIR/links/NAME: the
 * pinned one updated to prog in place when it is on that cgroup already
 * (the cgroup never goes without a program), else a new one, pinned, and
 * then the old one let go.  NULL with err. */
struct bpf_link *pin_link(const struct pin *p, struct bpf_program *prog, int cgfd,
			  uint64_t cgid, char *err, size_t errlen);
/* The link ids pinned under DIR/links.  How many, at most max. */
int pin_link_ids(const char *dir, uint32_t *ids, int max);
/* detach: unlinks every pin under dir and the directories, with one line
 * per pin to report (NULL: none).  How many were removed, or -1 (err). */
int pin_remove(const char *dir, FILE *report, char *err, size_t errlen);
/* Whether path lies on a BPF filesystem. */
int pin_is_bpffs(const char *path);

#endif
