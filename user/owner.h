/* sproxy-bpf's programs on a cgroup, and whose they are: the process that
 * holds their links, or the pin directory that keeps them. */
#ifndef SPROXY_OWNER_H
#define SPROXY_OWNER_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pin;

#define OWNER_MAX_LINKS 64
#define OWNER_MAX_PINS 8

struct owner_link {
	uint32_t id;
	uint32_t prog_id;
	uint32_t attach_type;      /* enum bpf_attach_type */
	char prog[16];             /* the program's name, as the kernel keeps it */
};

/* A program on a cgroup, as BPF_PROG_QUERY lists it. */
struct owner_prog {
	uint32_t id;
	uint32_t attach_type;
	char name[16];
};

/* The programs named sproxy_* attached to the cgroup cgfd, for each
 * attach type sproxy-bpf uses, links or not.  How many (at most max). */
int owner_progs(int cgfd, struct owner_prog *out, int max);
/* Of those, the ones no link holds (attached with BPF_PROG_ATTACH, by an
 * older version or another tool): moved to the front; how many. */
int owner_unlinked(struct owner_prog *p, int np, const struct owner_link *l, int nl);
/* The links on cgroup cgid whose program is named sproxy_*.  How many (at
 * most max), or -1 (errno). */
int owner_links(uint64_t cgid, struct owner_link *out, int max);
/* A process other than this one holding one of these links open (its pid
 * as this PID namespace sees it), or 0. */
pid_t owner_holder(const struct owner_link *l, int n);
/* Pin directories (on any BPF filesystem mounted, a few levels deep)
 * whose meta names cgroup cgid, or its path (a cgroup made again).  How
 * many, at most max. */
int owner_find_pins(uint64_t cgid, const char *path, char dirs[][PATH_MAX], int max);
/* Before attaching to target (a cgroup path): 0 when no other daemon's programs are
 * there (or they are the ones pinned in pin, to take over); else -1, with
 * err naming that daemon's pid or the pins it left. */
int owner_guard(const char *target, const struct pin *pin, char *err, size_t errlen);

#endif
