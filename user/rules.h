/* The policy's rules: Clash-style lines, ordered, the first match wins.
 *
 *   TYPE,VALUE,TARGET[,no-resolve]     AND,((TYPE,VALUE),(TYPE,VALUE)),TARGET
 *   MATCH,TARGET                       OR,(...),TARGET   NOT,((TYPE,VALUE)),TARGET
 *
 * A rule set is built line by line (rules_add), then compiled against the
 * known upstream names (rules_compile), then shared read-only: a reload
 * builds a new set and swaps it in, and whoever still holds the old one
 * (a decision waiting on DNS) keeps it alive with a reference. */
#ifndef SPROXY_RULES_H
#define SPROXY_RULES_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct rules;

enum rule_net { RULE_NET_TCP = 1, RULE_NET_UDP = 2 };
enum rule_action { RULE_DIRECT, RULE_REJECT, RULE_UPSTREAM };

/* What is known of a connection when it is decided.  Strings may be NULL
 * (unknown); a NULL never matches a rule that needs it. */
struct rule_input {
	const struct sockaddr *dst;   /* original destination, with its port */
	int fakeip;                   /* dst is host's FakeIP address, not a real one */
	int network;                  /* RULE_NET_TCP or RULE_NET_UDP */
	const char *host;             /* the name dst stands for */
	/* host's real addresses, for IP rules on a FakeIP connection; set
	 * resolved_done once they were looked up, even when none came back. */
	const struct sockaddr_storage *resolved;
	int n_resolved;
	int resolved_done;
	uint32_t pid;
	uint32_t uid;                 /* (uint32_t)-1: unknown, matches no UID rule */
	const char *comm;             /* as the kernel keeps it: at most 15 bytes */
	const char *exe;              /* /proc/PID/exe's target */
	const char *cgroup;           /* the process's cgroup below the attached one */
};

struct rule_result {
	int rule;                     /* 1-based line of the rule set; 0: none matched */
	enum rule_action action;      /* DIRECT when no rule matched */
	int upstream;                 /* index into rules_compile's names, or -1 */
	const char *target;           /* "DIRECT", "REJECT" or the upstream's name;
	                               * lives as long as the rule set */
};

/* rules_match: decided, or the rule (out->rule) that needs host's real
 * addresses first: resolve host, set resolved_done, ask again. */
enum { RULES_DECIDED = 0, RULES_RESOLVE = 1 };

/* What the caller should look up for rules_match: nothing else is read. */
/* RULES_NEED_HOST: some rule matches on the host name (DOMAIN,
 * DOMAIN-SUFFIX, DOMAIN-KEYWORD): worth sniffing one for a connection to a
 * real address. */
enum { RULES_NEED_EXE = 1, RULES_NEED_CGROUP = 2, RULES_NEED_HOST = 4 };

#define RULES_MAX_LINE 4096
#define RULES_MAX 1000000

struct rules *rules_new(void);
/* Parses one line and appends it.  origin ("FILE:LINE", "--rule") is kept
 * to name the line in rules_compile's errors.  -1 with err on a bad line;
 * the set is unchanged then. */
int rules_add(struct rules *r, const char *line, const char *origin, char *err,
	      size_t errlen);
/* Resolves every target against DIRECT, REJECT and names[0..n) (an unknown
 * one is an error, never a silent DIRECT) and builds the lookup tables.
 * No rules_add after it. */
int rules_compile(struct rules *r, const char *const *names, int n, char *err,
		  size_t errlen);
/* The first rule that matches in, in a time that does not grow with the
 * number of DOMAIN, DOMAIN-SUFFIX, IP-CIDR, PROCESS-NAME and PROCESS-PATH
 * rules.  RULES_DECIDED or RULES_RESOLVE. */
int rules_match(const struct rules *r, const struct rule_input *in,
		struct rule_result *out);
/* The same answer found rule by rule: the reference for tests and the
 * benchmark. */
int rules_match_linear(const struct rules *r, const struct rule_input *in,
		       struct rule_result *out);
int rules_count(const struct rules *r);
unsigned rules_needs(const struct rules *r);
/* The line of rule idx (1-based) as written, trimmed. */
const char *rules_line(const struct rules *r, int idx);
struct rules *rules_ref(struct rules *r);
void rules_unref(struct rules *r);

#endif
