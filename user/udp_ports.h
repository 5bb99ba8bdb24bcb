/* The UDP pool ports as the BPF side hands them out: giving them back (to
 * the main pool or to the DNS reserve), and the count of ports each
 * process holds, which bounds one application's share. */
#ifndef SPROXY_UDP_PORTS_H
#define SPROXY_UDP_PORTS_H
#include <stdint.h>

struct daemon;
struct sproxy_flow;

/* Pool ports are unique across network namespaces (the BPF side keys its
 * records by port alone): each belongs to one pool, its owner (1: the
 * daemon's own pool; 2..SPROXY_NETNS_MAX+1: a served namespace's, whose
 * free ports go to that namespace's queues).  Claim: 0, or -1 when the
 * port is another pool's. */
#define UDP_OWNER_SELF 1
int udp_ports_claim(int family, uint32_t port, int owner);
void udp_ports_unclaim(int family, uint32_t port);
/* The free-port queues (map fds) of a namespace's pool; -1: none. */
void udp_ports_queues(int owner, int q4, int q6);

/* Makes a port free for the BPF side: reserve = 1 for DNS only. */
int udp_port_push(struct daemon *d, int family, uint32_t port, int reserve);
/* Gives a handed-out port back: its records go, the process's count
 * drops, the port returns to the queue it came from. */
void udp_port_free(struct daemon *d, int family, uint32_t port,
		   const struct sproxy_flow *rec);
/* The record of a handed-out port; -1 when it is free. */
int udp_port_record(struct daemon *d, int family, uint32_t port,
		    struct sproxy_flow *rec);
/* Recounts the ports each process holds from the records themselves:
 * counting up in BPF and down here can drift when both race. */
void udp_procs_recount(struct daemon *d);

#endif
