/* The daemon's state as one JSON document, for the control socket:
 * what is attached where and since when, the BPF side's counters, how
 * full the maps and pools are, and the live TCP sessions and UDP flows
 * grouped by process.  Field by field in README.md. */
#ifndef SPROXY_REPORT_H
#define SPROXY_REPORT_H

struct daemon;
struct evbuffer;

/* Connections listed at most; more are counted in "unlisted". */
#define REPORT_MAX_CONNS 4096

/* Appends the document and a newline to out.  0, or -1 out of memory. */
int report_status(struct daemon *d, struct evbuffer *out);

#endif
