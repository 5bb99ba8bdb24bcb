/* The --bypass rules as the BPF side's LPM trie needs them. */
#ifndef SPROXY_BYPASS_H
#define SPROXY_BYPASS_H
#include <stddef.h>
#include <stdint.h>

#include "sproxy.h"

/* One --bypass CIDR[:PORT] (or a built-in one). */
struct bypass_entry {
	struct sproxy_bypass_key key;
	uint16_t port;                 /* network order, 0 = any */
};

/* One entry of the trie: a prefix and the ports that go direct there. */
struct bypass_rule {
	struct sproxy_bypass_key key;
	struct sproxy_bypass_val val;
};

/* An LPM lookup returns only the longest matching prefix, so each prefix
 * gets the ports of every entry that contains it (itself included), "any
 * port" winning: a destination then goes direct when any entry covering it
 * names its port, whatever the order of the entries.  Host bits beyond a
 * prefix are cleared; equal prefixes become one rule.  Writes at most max
 * rules to out and returns how many, or -1 with err set (more than
 * SPROXY_BYPASS_PORTS ports for one prefix, or more than max prefixes). */
int bypass_rules(const struct bypass_entry *in, size_t n, struct bypass_rule *out,
		 size_t max, char *err, size_t errlen);

#endif
