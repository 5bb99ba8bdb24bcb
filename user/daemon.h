/* State shared by the parts of a running daemon. */
#ifndef SPROXY_DAEMON_H
#define SPROXY_DAEMON_H
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loader.h"
#include "relay.h"

struct event_base;
struct dns_server;
struct udp_pool;
struct rules;

#define SPROXY_MARK_DEFAULT 0x5350  /* "SP" */

struct options {
	const char *cgroup;
	struct sockaddr_storage listen[9];  /* 8 given, and one for a missing family */
	int n_listen;
	struct bypass_entry bypass[256];
	int n_bypass;
	const char *log_path;
	int json;
	int verbose;
	int allow_root;
	unsigned udp_timeout;         /* seconds */
	unsigned connect_timeout;     /* seconds */
	uint32_t map_size;
	uint32_t udp_flows;           /* pool ports per family */
	uint32_t mark;
	int relay_copy;               /* 1: never splice */
	int disable_fakeip;
	const char *fakeip_range[2];  /* IPv4, IPv6; NULL = default */
	const char *fakeip_store;
	const char *fakeip_exclude[64];
	int n_fakeip_exclude;
	struct sockaddr_storage resolvers[8];
	int n_resolvers;
	unsigned fakeip_ttl;
	int reattach;                 /* 1: wait for a removed CGROUP to come back */
	unsigned header_timeout;      /* seconds to finish a request header; 0 = none */
	unsigned idle_timeout;        /* seconds without a byte either way; 0 = none */
	size_t header_budget;         /* bytes of header buffers, all connections */
	const char *tag;              /* User-Agent tag template; NULL = off */
	int allow_private_answers;    /* proxied names may resolve to loopback etc. */
	unsigned fakeip_per_process;  /* new names per process per hold, 0 = default */
	struct rules *rules;          /* --rule lines, compiled by cli_finish */
	const char *origin;           /* "FILE:LINE" of the config line being applied */
	char **owned;                 /* copies of values that outlive their source */
	int n_owned;
};

struct daemon {
	struct event_base *base;
	const struct options *opt;
	struct loader bpf;
	struct dns_server *dns;
	struct udp_pool *udp;
	char cg_mount[PATH_MAX];
	char target[PATH_MAX];
	uint64_t netns;
	int tuples_fd;
	uint64_t n_conns;             /* open TCP sessions */
	struct relay_limits limits;   /* shared by every relay */
	/* The rules in use.  SIGHUP swaps in a new set; a decision that waits
	 * (on DNS) holds a reference (rules_ref) to the set it started with. */
	struct rules *rules;
	int argc;                     /* the command line, read again on SIGHUP */
	char **argv;
};

/* Sets the socket mark that the BPF side skips.  Logs a failure. */
void daemon_mark(const struct daemon *d, int fd);
/* Replaces the thread name the hooks saw with the process's. */
struct sproxy_proc;
void daemon_process_comm(struct sproxy_proc *p);
/* The cgroup path of a connection's process, for the log. */
const char *daemon_cgroup_name(const struct daemon *d, uint64_t id);

#endif
