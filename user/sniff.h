/* The name a client names in its first bytes: the server_name of a TLS
 * ClientHello, or the Host header of an HTTP/1 request.  A pure parser:
 * it reads a buffer (what MSG_PEEK showed) and says found, need more, or
 * give up. */
#ifndef SPROXY_SNIFF_H
#define SPROXY_SNIFF_H
#include <stddef.h>
#include <stdint.h>

enum sniff_kind { SNIFF_NONE = 0, SNIFF_TLS, SNIFF_HTTP, SNIFF_QUIC };

/* Enough for a ClientHello in one TLS record (the record header and the
 * largest plaintext record); an HTTP header longer than this gives up. */
#define SNIFF_MAX (5 + 16384)

/* Results of sniff_host. */
enum { SNIFF_NO = -1, SNIFF_MORE = 0, SNIFF_FOUND = 1 };

/* Looks at the first len bytes a client sent.  SNIFF_FOUND: host (a valid
 * DNS name, lower case, no trailing dot, no port) and *kind are set.
 * SNIFF_MORE: these bytes are the start of a ClientHello or a request
 * whose name is not in them yet.  SNIFF_NO: neither, or no usable name
 * (none sent, an address literal, bad characters). */
int sniff_host(const uint8_t *buf, size_t len, char *host, size_t hostlen,
	       enum sniff_kind *kind);

/* The server name in the first datagram of a QUIC v1 connection: the
 * client's Initial packet, decrypted with the keys RFC 9001 derives from
 * its destination connection ID, holds the ClientHello in CRYPTO frames.
 * Only this datagram is read: a name that a client put in a later one
 * (a ClientHello over two packets) is not found.  SNIFF_FOUND with *kind
 * SNIFF_QUIC, or SNIFF_NO. */
int sniff_quic(const uint8_t *dgram, size_t len, char *host, size_t hostlen,
	       enum sniff_kind *kind);
/* The client's Initial keys for a destination connection ID (RFC 9001
 * 5.2).  0, or -1 when a label does not fit (never for these). */
int sniff_quic_keys(const uint8_t *dcid, size_t dcidlen, uint8_t key[16], uint8_t iv[12],
		    uint8_t hp[16]);

/* "tls", "http", "quic", or NULL for SNIFF_NONE. */
const char *sniff_kind_name(enum sniff_kind k);

#endif
