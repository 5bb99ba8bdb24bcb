/* The UDP pool ports as the BPF side hands them out: giving them back (to
 * the main pool or to the DNS reserve), and the count of ports each
 * process holds, which bounds one application's share. */
#ifndef SPROXY_UDP_PORTS_H
#define SPROXY_UDP_PORTS_H
#include <stdint.h>

struct daemon;
struct sproxy_flow;

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
