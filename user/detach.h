/* sproxy-bpf detach CGROUP [--pin DIR]: removes what a daemon that is gone
 * left on CGROUP (pinned links, programs, maps, its own cgroup). */
#ifndef SPROXY_DETACH_H
#define SPROXY_DETACH_H

/* argv[0] is "detach".  Returns the exit status. */
int detach_main(int argc, char **argv);

#endif
