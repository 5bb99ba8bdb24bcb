/* Subnet broadcast goes direct: the broadcast address of every IPv4
 * address of the namespace (the kernel's broadcast routes) is kept in the
 * BPF bypass map, and kept up to date as they come and go (rtnetlink).  A relay could not send it:
 * the proxy's connected socket has no SO_BROADCAST, and the reply of a
 * broadcast comes from hosts, not from the address it was sent to. */
#ifndef SPROXY_BCAST_H
#define SPROXY_BCAST_H

struct daemon;
struct bcast;

/* NULL with a log line when the addresses cannot be watched. */
struct bcast *bcast_new(struct daemon *d);
void bcast_free(struct bcast *b);

#endif
