/* The TCP side: listeners, and one session per captured connection. */
#ifndef SPROXY_PROXY_H
#define SPROXY_PROXY_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct daemon;
struct proxy_listener;

/* Binds and listens on addr (port 0: any; the bound address is written
 * back), in the daemon's network namespace. */
struct proxy_listener *proxy_listen(struct daemon *d, struct sockaddr_storage *addr,
				    char *err, size_t errlen);
/* Takes fd, a listening socket with IP_TRANSPARENT bound to addr: each
 * accepted connection's local address is its original destination. */
struct proxy_listener *proxy_listen_transparent(struct daemon *d, int fd,
						const struct sockaddr_storage *addr,
						char *err, size_t errlen);
/* The listener was made in another network namespace (cookie, inode):
 * its connections' records are keyed with it, their log lines name it. */
void proxy_listener_netns(struct proxy_listener *l, uint64_t cookie, uint64_t ino);
/* Ends the listener's open sessions (logged with result=shutdown, both
 * ends reset), then the listener. */
void proxy_listener_free(struct proxy_listener *l);
/* The BPF side says a captured socket's options changed (cookie: the
 * application socket's); the leg out follows. */
void proxy_sockopts_changed(struct daemon *d, uint64_t cookie);

#endif
