/* Upstream proxies: the table of named upstreams (--upstream NAME=URL),
 * their URLs, and the handshakes that turn a TCP connection to one into a
 * tunnel to the target (SOCKS5 in upstream_socks5.c, HTTP CONNECT in
 * upstream_http.c).  The connector calls upstream_start for a route that
 * is not direct. */
#ifndef SPROXY_UPSTREAM_H
#define SPROXY_UPSTREAM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct daemon;
struct options;
struct target;

enum upstream_kind { UPSTREAM_DIRECT, UPSTREAM_SOCKS5, UPSTREAM_HTTP };
enum { UDP_OVER_HTTP_REJECT, UDP_OVER_HTTP_DIRECT };

#define UPSTREAM_MAX       16
#define UPSTREAM_NAME_MAX  32
#define UPSTREAM_DEFAULT   "default"   /* the name a bare --upstream URL gets */

struct upstream {
	char name[UPSTREAM_NAME_MAX];
	enum upstream_kind kind;
	char host[256];                /* as written in the URL */
	uint16_t port;
	struct sockaddr_storage addr;  /* host resolved once, at start */
	int auth;                      /* user/pass given */
	char user[256], pass[256];     /* percent-decoded */
	char label[300];               /* "NAME (host:port)": for logs, no credentials */
};

/* URL forms as curl's proxies: socks5://[user:pass@]host[:port],
 * socks5h:// (the same: names always go to the proxy), http://..., and
 * "direct".  The port defaults to 1080.  0, or -1 with err saying why
 * (never echoing the credentials). */
int upstream_parse_url(const char *url, struct upstream *u, char *err, size_t errlen);
/* NAME=URL, NAME=@FILE (the URL read from a file that others cannot
 * read), or a bare URL / @FILE for the default route.  0 or -1. */
int upstream_parse_arg(const char *arg, struct upstream *u, char *err, size_t errlen);
/* Resolves u->host into u->addr (getaddrinfo, once).  0 or -1. */
int upstream_resolve(struct upstream *u, char *err, size_t errlen);

/* The upstream of that name among the options' (as they are parsed);
 * the running daemon's are its policy set's (policyset.h). */
const struct upstream *upstream_find(const struct options *o, const char *name);
/* What the connection log shows as via= for route u and this socket type:
 * NULL when no upstream is involved, "direct" for UDP sent around an HTTP
 * upstream (--udp-over-http direct), else u's name. */
const char *upstream_via(const struct options *o, const struct upstream *u, int socktype);
/* 1 when a flow of socktype on route u is handed to upstream_start. */
int upstream_carries(const struct options *o, const struct upstream *u, int socktype);
/* 1 when route u refuses a flow of socktype (UDP over an HTTP upstream
 * with --udp-over-http reject); err says so. */
int upstream_refuses(const struct options *o, const struct upstream *u, int socktype,
		     char *err, size_t errlen);

/* A tunnel being set up: connect to the upstream, then its handshake.
 * cb gets a connected fd (TCP: the tunnel; UDP: one end of a SEQPACKET
 * pair whose packets are the flow's datagrams) or an error that names the
 * upstream, the stage and the reason.  cb always runs from the event loop,
 * before the --connect-timeout deadline at the latest. */
typedef void (*upstream_cb)(int fd, const char *err, void *arg);
struct upstream_hs;
struct upstream_hs *upstream_start(struct daemon *d, const struct upstream *u,
				   const struct target *t, int socktype,
				   upstream_cb cb, void *arg);
void upstream_cancel(struct upstream_hs *h);
/* Ends every UDP association still open (daemon teardown). */
void upstream_shutdown(void);

/* The protocol parsers, pure and bounded (unit tests and fuzz_upstream).
 * Each returns the length of the server's message once buf holds all of
 * it, 0 while more bytes are needed, -1 when it is wrong (err says why). */
int socks5_parse_choice(const uint8_t *b, size_t n, int *method, char *err, size_t errlen);
int socks5_parse_auth(const uint8_t *b, size_t n, char *err, size_t errlen);
int socks5_parse_reply(const uint8_t *b, size_t n, struct sockaddr_storage *bound,
		       char *err, size_t errlen);
/* A datagram from a SOCKS5 UDP relay: the header's length, or -1. */
int socks5_udp_header_len(const uint8_t *b, size_t n);
/* ATYP, address and port of t: its name when it has one.  Length or -1. */
int socks5_put_addr(uint8_t *out, size_t cap, const struct target *t);
/* The reply to CONNECT: *status set once the header is complete; a status
 * other than 2xx is returned as -1 with err naming it. */
#define HTTP_CONNECT_REPLY_MAX 8192
int http_parse_connect_reply(const char *b, size_t n, int *status, char *err, size_t errlen);

/* Protocol halves of a handshake, for upstream.c's loop. */
struct hs_io {
	uint8_t out[2048];
	size_t outlen;
	struct sockaddr_storage udp_local;  /* UDP ASSOCIATE: where we send from */
	int done;                      /* the tunnel is up */
	char *err;                     /* set (with errlen) to fail */
	size_t errlen;
	const char *stage;             /* "greeting", "auth", "request" */
};
int socks5_begin(struct hs_io *io, const struct upstream *u);
int socks5_input(struct hs_io *io, const struct upstream *u, const struct target *t,
		 int socktype, const uint8_t *b, size_t n, struct sockaddr_storage *bound);
int http_begin(struct hs_io *io, const struct upstream *u, const struct target *t);
int http_input(struct hs_io *io, const uint8_t *b, size_t n);
/* A SOCKS5 UDP association: ctl is the TCP connection that holds it, udp
 * the socket connected to the relay.  Returns the flow's end of the pair. */
int socks5_udp_relay(struct daemon *d, const struct upstream *u, const struct target *t,
		     int ctl, int udp, char *err, size_t errlen);

#endif
