/* `sproxy-bpf doctor`: what capture needs from this machine and what is
 * in its way, each finding with its fix. */
#ifndef SPROXY_DOCTOR_H
#define SPROXY_DOCTOR_H
#include <stdint.h>
#include <sys/types.h>

struct doctor_opts {
	const char *cgroup;          /* NULL: no cgroup checks */
	pid_t pids[16];              /* each: in the cgroup, in our netns? */
	int n_pids;
	unsigned port;               /* the daemon's listener port */
	uint32_t mark, table;        /* the TPROXY rules' (a record overrides) */
	int ipv6;
};

/* Prints every finding.  Returns 0 healthy, 1 problems found. */
int doctor_run(const struct doctor_opts *o);

#endif
