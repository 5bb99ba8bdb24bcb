/* Gateway mode: `sproxy-bpf tproxy`.  TCP and UDP listeners with
 * IP_TRANSPARENT that serve what netfilter's TPROXY rules (`sproxy-bpf
 * rules`) send them, from other hosts or, with the rules' --local, from
 * this one; no BPF.  The sessions, the relay, FakeIP DNS and the log are
 * the eBPF mode's. */
#ifndef SPROXY_TPROXY_H
#define SPROXY_TPROXY_H

struct options;

#define TPROXY_DEFAULT_LISTEN "[::]:3333"

/* Runs until SIGINT/SIGTERM; SIGHUP reopens the log and reads the rules
 * and upstreams of the command line (argc, argv: as given, for
 * cli_reparse; 0 and NULL: none kept) again.  Returns the exit status. */
int tproxy_run(struct options *o, int argc, char **argv);

#endif
