/* `sproxy-bpf rules`: the netfilter rules and policy routes that send
 * other hosts' traffic (and, with --local, this host's) to the TPROXY
 * listener.  Printed as a commented shell script, applied all-or-nothing
 * with a record of what was done, removed exactly from that record. */
#ifndef SPROXY_NFTRULES_H
#define SPROXY_NFTRULES_H
#include <stdint.h>
#include <stdio.h>

#define RULES_DEFAULT_PORT  3333
#define RULES_DEFAULT_MARK  0x5354     /* the route's mark: not the daemon's */
#define RULES_DEFAULT_TABLE 3333
#define RULES_NAME          "sproxy-bpf"     /* nft table */
#define RULES_STATE_DIR     "/run/sproxy-bpf"
#define IPT_PRE             "SPROXY_BPF_PRE"     /* iptables chains */

enum rules_backend { RULES_NFT, RULES_IPTABLES };
enum rules_action { RULES_PRINT = 1, RULES_APPLY, RULES_REMOVE };

struct rules_opts {
	unsigned port;
	uint32_t mark;               /* TPROXY's mark, the ip rule's fwmark */
	uint32_t daemon_mark;        /* the daemon's SO_MARK: left alone */
	uint32_t table;
	const char *ifaces[16];
	int n_ifaces;
	const char *cidr4[64], *cidr6[64];   /* sources to capture; none: all */
	int n_cidr4, n_cidr6;
	int local;                   /* this host's processes too */
	int ipv6;                    /* IPv6 as well as IPv4 */
	enum rules_backend backend;
	enum rules_action action;
	const char *state;           /* NULL: RULES_STATE_DIR/rules-<netns> */
};

/* Checks a --cidr value and files it by family.  0, or -1 with err. */
int rules_add_cidr(struct rules_opts *r, const char *s, char *err, size_t errlen);
/* Where --apply records what it did: r->state, or one file per netns. */
void rules_state_path(const struct rules_opts *r, char *path, size_t len);
/* The record of this network namespace, open for reading, or NULL (none,
 * or a dead namespace's, which is deleted). */
FILE *rules_record_open(const struct rules_opts *r, char *path, size_t len);
/* Does r->action.  Returns the exit status (0 done, 1 failed). */
int rules_run(const struct rules_opts *r);

/* The ip rule / route / nft table this netns has for these settings, for
 * doctor: 1 all present, 0 none, -1 some (a half-applied setup); why says
 * what is missing. */
int rules_check(const struct rules_opts *r, char *why, size_t whylen);

/* With --local rules in place, a family (4 or 6) whose main table has no
 * default route, else 0: the kernel looks a route up before OUTPUT, so a
 * destination without one (a FakeIP address) fails before the rules. */
int rules_local_unroutable(const struct rules_opts *r);

/* The rules as steps: a command (words separated by single spaces), its
 * stdin, the commands that take it back (in order), and why it is there. */
#define MAX_STEPS 8
struct step {
	char cmd[160];
	char *input;
	char undo[8][160];
	int n_undo;
	char why[600];
};
struct plan {
	struct step s[MAX_STEPS];
	int n;
};
void rules_build(struct plan *p, const struct rules_opts *r);
void rules_plan_free(struct plan *p);
/* The plan as a commented shell script on stdout. */
void rules_print(const struct plan *p, const struct rules_opts *r);

#endif
