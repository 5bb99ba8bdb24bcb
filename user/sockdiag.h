/* What the kernel knows of the namespace's UDP sockets, asked through
 * sock_diag (NETLINK_SOCK_DIAG): which socket owns an address, and which
 * sockets are alive. */
#ifndef SPROXY_SOCKDIAG_H
#define SPROXY_SOCKDIAG_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct udp_sock_info {
	uint64_t cookie;
	uint32_t inode;
	uint16_t peer_port;   /* host order; 0: not connected */
};

/* The cookie of the UDP socket whose local address is `local` and that
 * would receive datagrams from `remote` (its peer, if it is connected):
 * 0 when found, -ENOENT when there is none, another negative errno when
 * the kernel could not be asked.  Both addresses are of one family. */
int sockdiag_udp_cookie(const struct sockaddr *local, const struct sockaddr *remote,
			uint64_t *cookie);

/* Every UDP socket of the namespace (both families), sorted by cookie, in
 * a malloc'd array the caller frees; a negative errno on failure. */
int sockdiag_udp_all(struct udp_sock_info **out, size_t *n);

/* The network namespace (an fd of it) the next queries ask about; -1:
 * the daemon's own.  The first call, made at home, keeps an fd of the
 * daemon's namespace to come back to. */
void sockdiag_netns(int fd);

/* The entry of a sorted array with this cookie, or NULL. */
const struct udp_sock_info *sockdiag_find(const struct udp_sock_info *v, size_t n,
					  uint64_t cookie);

#endif
