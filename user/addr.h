/* Socket addresses: parsing, printing, and the BPF side's format. */
#ifndef SPROXY_ADDR_H
#define SPROXY_ADDR_H
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct sproxy_addr;
struct sproxy_bypass_key;

#define ADDR_STRLEN 64

/* "1.2.3.4:80", "[::1]:80"; without a port, default_port (0 = required). */
int addr_parse(const char *s, uint16_t default_port, struct sockaddr_storage *ss,
	       char *err, size_t errlen);
/* "10.0.0.0/8", "10.0.0.0/8:443", "2001:db8::/32", "[2001:db8::/32]:443";
 * a bare address is a /32 or /128.  port 0 = any. */
int cidr_parse(const char *s, struct sproxy_bypass_key *key, uint16_t *port,
	       char *err, size_t errlen);
const char *addr_str(const struct sockaddr *sa, char *buf, size_t len);
socklen_t addr_len(const struct sockaddr *sa);
uint16_t addr_port(const struct sockaddr *sa);
void addr_to_sproxy(const struct sockaddr *sa, struct sproxy_addr *out);
/* IPv4-mapped addresses come back as AF_INET. */
socklen_t addr_from_sproxy(const struct sproxy_addr *a, struct sockaddr_storage *ss);
/* An AF_INET6 ::ffff:a.b.c.d becomes AF_INET in place. */
void addr_unmap(struct sockaddr_storage *ss);
int addr_equal(const struct sockaddr *a, const struct sockaddr *b);
int addr_is_loopback(const struct sockaddr *sa);
/* An address of this network namespace (bindable without IP_TRANSPARENT). */
int addr_is_ours(const struct sockaddr *sa);

#endif
