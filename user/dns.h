/* DNS message codec: parses what arrives from the network (queries from
 * captured apps, answers from the real resolvers) and builds the few
 * responses the server makes itself.  Pure: no I/O, no allocation, every
 * read bounds-checked against the message length.
 *
 * Names are handled in two forms:
 *  - wire: uncompressed label sequence ending with the root label, at most
 *    DNS_NAME_WIRE_MAX (255) bytes;
 *  - text: presentation form without the trailing dot ("" is the root);
 *    bytes that are not printable, space, '.' and '\' inside a label are
 *    escaped as \DDD, \. and \\ so that no two wire names share a text. */
#ifndef SPROXY_DNS_H
#define SPROXY_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

#define DNS_HDR_LEN        12
#define DNS_MSG_MAX        65535
#define DNS_UDP_MIN        512   /* payload every client accepts */
#define DNS_NAME_WIRE_MAX  255
#define DNS_LABEL_MAX      63
#define DNS_NAME_TEXT_MAX  1024  /* >= 255 wire bytes fully escaped */
/* Compression pointers followed for one name: each hop of a real name
 * lands on a label of at least 2 wire bytes, so 127 is never reached. */
#define DNS_NAME_HOPS_MAX  127

enum {
	DNS_RCODE_NOERROR  = 0,
	DNS_RCODE_FORMERR  = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP   = 4,
	DNS_RCODE_REFUSED  = 5,
};

enum {
	DNS_TYPE_A     = 1,
	DNS_TYPE_NS    = 2,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA   = 6,
	DNS_TYPE_PTR   = 12,
	DNS_TYPE_MX    = 15,
	DNS_TYPE_TXT   = 16,
	DNS_TYPE_AAAA  = 28,
	DNS_TYPE_SRV   = 33,
	DNS_TYPE_OPT   = 41,
	DNS_TYPE_SVCB  = 64,
	DNS_TYPE_HTTPS = 65,
	DNS_TYPE_IXFR  = 251,
	DNS_TYPE_AXFR  = 252,
	DNS_TYPE_ANY   = 255,
};

#define DNS_CLASS_IN 1

/* Header flag bits (host order of the 16-bit flags word). */
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_AA 0x0400
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_FLAG_RA 0x0080
#define DNS_FLAG_CD 0x0010
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define DNS_RCODE(flags)  ((flags) & 0xf)

/* One parsed query (or the question of a response). */
struct dns_query {
	uint16_t id;
	uint16_t flags;
	int has_question;            /* qname/qtype/qclass below are valid */
	uint16_t qtype, qclass;
	uint8_t qname_wire[DNS_NAME_WIRE_MAX];  /* case as sent (0x20 echo) */
	size_t qname_wire_len;
	char qname[DNS_NAME_TEXT_MAX];          /* text form, case as sent */
	int has_opt;                 /* an EDNS OPT record was present */
	uint16_t udp_size;           /* largest UDP reply the client takes */
};

/* Parses a query: the header and the question; the other sections are
 * stepped over (pointers not followed), only to find the OPT record.
 * Returns
 *   DNS_RCODE_NOERROR  a well-formed query (q fully set);
 *   DNS_RCODE_FORMERR / DNS_RCODE_NOTIMP  answer with that rcode
 *                      (q->id, q->flags set; question only if has_question);
 *   -1                 not even a header: drop silently.
 * *why (optional) gets a short static reason for the log. */
int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q,
		    const char **why);

/* Reads the (possibly compressed) name at *off.  Pointers must point
 * strictly backwards, below every earlier jump and past the header, which
 * rules out loops, and at most DNS_NAME_HOPS_MAX of them are followed.  On success writes the uncompressed wire name, its
 * length, advances *off past the name in place and returns 0; else -1. */
int dns_read_name(const uint8_t *msg, size_t len, size_t *off,
		  uint8_t wire[DNS_NAME_WIRE_MAX], size_t *wire_len);

/* Wire name -> text (see above).  Returns the text length or -1. */
int dns_name_to_text(const uint8_t *wire, size_t wire_len, char *text,
		     size_t cap);
/* Text name (a trailing dot is allowed, escapes understood) -> wire.
 * Returns the wire length or -1 (empty label, label > 63, name > 255). */
int dns_name_from_text(const char *text, uint8_t *wire, size_t cap);
/* Case-insensitive (ASCII) comparison of two wire names: 1 when equal. */
int dns_name_wire_equal(const uint8_t *a, size_t alen, const uint8_t *b,
			size_t blen);

/* Builders.  Each writes a complete message into out (cap bytes) and
 * returns its length, or -1 when it does not fit or the input is bad.
 * Responses echo the question of q (when q->has_question) with its exact
 * case, copy RD and the opcode, set QR and RA, and carry no OPT. */
ssize_t dns_build_error(const struct dns_query *q, int rcode, uint8_t *out,
			size_t cap);
/* One answer RR of q's qtype (A: 4 bytes, AAAA: 16 bytes of rdata). */
ssize_t dns_build_addr_answer(const struct dns_query *q, const void *rdata,
			      size_t rdlen, uint32_t ttl, uint8_t *out,
			      size_t cap);
/* One PTR answer pointing at target (text form). */
ssize_t dns_build_ptr_answer(const struct dns_query *q, const char *target,
			     uint32_t ttl, uint8_t *out, size_t cap);
/* A query: udp_size > 0 adds an OPT record advertising it. */
ssize_t dns_build_query(uint16_t id, uint16_t flags, const char *name,
			uint16_t qtype, uint16_t qclass, uint16_t udp_size,
			uint8_t *out, size_t cap);

/* Forwarded answers.  Checks that msg is a response to q sent with
 * expect_id: QR set, same ID and opcode, and the same question (name
 * compared case-insensitively); an error or truncated response without a
 * question is accepted too.  Returns 0 and sets *flags when it is, -1
 * when it is junk or meant for someone else. */
int dns_check_response(const uint8_t *msg, size_t len, uint16_t expect_id,
		       const struct dns_query *q, uint16_t *flags);
/* The address hints (ipv4hint, ipv6hint) of every SVCB and HTTPS record
 * in msg taken out, in place: the parameters after them move up and one
 * private-use parameter (key DNS_SVC_KEY_FILLER) fills the bytes freed
 * at the end, so that the keys stay in increasing order and no length or
 * offset in the message changes.  Behind FakeIP a client must get its
 * addresses from A and AAAA, which name the fake ones.  Returns how many
 * hints went; a record that does not parse is left as it is. */
#define DNS_SVC_KEY_FILLER 65534
int dns_hide_svc_hints(uint8_t *msg, size_t len);

/* Reads/rewrites the ID of a message of at least 2 bytes. */
uint16_t dns_get_id(const uint8_t *msg);
void dns_set_id(uint8_t *msg, uint16_t id);

/* Reverse names: "4.3.2.1.in-addr.arpa" and the 32-nibble ip6.arpa form
 * (text, no trailing dot).  Return the length or -1 when cap is short. */
int dns_ptr_name4(const struct in_addr *a, char *out, size_t cap);
int dns_ptr_name6(const struct in6_addr *a, char *out, size_t cap);
/* Parses a full reverse name (case-insensitive, trailing dot allowed).
 * Returns AF_INET or AF_INET6 and fills addr (4 or 16 bytes), or 0 when
 * name is not the reverse name of one whole address. */
int dns_parse_ptr_name(const char *name, void *addr);

/* Parses a text-form IP address literal (IPv4 in any inet_aton form or
 * IPv6): 1 when name is one, which must never get a fake address. */
int dns_name_is_ip_literal(const char *name);

const char *dns_type_name(uint16_t type, char *buf, size_t cap);

#endif
