/* The table of named upstreams and their URLs: parsing, reading one from
 * a file, resolving, and which route carries what.  The handshakes are in
 * upstream_hs.c (the shared loop), upstream_socks5.c and upstream_http.c. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "privhelper.h"
#include "upstream.h"

/* --- URLs ------------------------------------------------------------- */

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out.  -1 on a bad escape, %00, or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			if (unhex(s[i + 1]) < 0 || unhex(s[i + 2]) < 0)
				return -1;
			c = unhex(s[i + 1]) * 16 + unhex(s[i + 2]);
			if (c == 0)
				return -1;
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

static void set_label(struct upstream *u)
{
	if (u->kind == UPSTREAM_DIRECT)
		snprintf(u->label, sizeof(u->label), "%s (direct)", u->name);
	else
		snprintf(u->label, sizeof(u->label), strchr(u->host, ':') ? "%s ([%s]:%u)"
			 : "%s (%s:%u)", u->name, u->host, u->port);
}

int upstream_parse_url(const char *url, struct upstream *u, char *err, size_t errlen)
{
	const char *p, *at, *end, *colon, *hend;
	unsigned long port = 1080;

	memset(&u->kind, 0, sizeof(*u) - offsetof(struct upstream, kind));
	if (strcmp(url, "direct") == 0) {
		u->kind = UPSTREAM_DIRECT;
		set_label(u);
		return 0;
	}
	if (strncmp(url, "socks5://", 9) == 0 || strncmp(url, "socks5h://", 10) == 0) {
		u->kind = UPSTREAM_SOCKS5;
		p = strstr(url, "://") + 3;
	} else if (strncmp(url, "http://", 7) == 0) {
		u->kind = UPSTREAM_HTTP;
		p = url + 7;
	} else {
		snprintf(err, errlen, "an upstream URL starts with socks5://, socks5h:// "
			 "or http://, or is 'direct'");
		return -1;
	}
	end = p + strcspn(p, "/?#");
	if (*end && strcmp(end, "/") != 0) {
		snprintf(err, errlen, "an upstream URL has no path, query or fragment");
		return -1;
	}
	at = memrchr(p, '@', (size_t)(end - p));
	if (at) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (!colon || pct_decode(p, (size_t)(colon - p), u->user, sizeof(u->user)) < 0 ||
		    pct_decode(colon + 1, (size_t)(at - colon - 1), u->pass, sizeof(u->pass)) < 0 ||
		    !u->user[0]) {
			snprintf(err, errlen, "the credentials in an upstream URL are "
				 "USER:PASSWORD@ (percent-encoded, at most 255 bytes each)");
			return -1;
		}
		u->auth = 1;
		p = at + 1;
	}
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			goto bad_host;
		colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
		if (hend + 1 != end && !colon)
			goto bad_host;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hend = colon ? colon : end;
	}
	if (hend == p || (size_t)(hend - p) >= sizeof(u->host))
		goto bad_host;
	memcpy(u->host, p, (size_t)(hend - p));
	u->host[hend - p] = 0;
	if (strspn(u->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789.-_:") != strlen(u->host))
		goto bad_host;
	if (colon) {
		char num[8];
		size_t len = (size_t)(end - colon - 1);

		if (len == 0 || len >= sizeof(num))
			goto bad_port;
		memcpy(num, colon + 1, len);
		num[len] = 0;
		if (strspn(num, "0123456789") != len)
			goto bad_port;
		port = strtoul(num, NULL, 10);
		if (port < 1 || port > 65535)
			goto bad_port;
	}
	u->port = (uint16_t)port;
	set_label(u);
	return 0;
bad_host:
	snprintf(err, errlen, "an upstream URL needs a host: a name, an IPv4 address "
		 "or an [IPv6] address");
	return -1;
bad_port:
	snprintf(err, errlen, "the port of an upstream URL is a number from 1 to 65535");
	return -1;
}

/* A URL kept out of argv (and so out of ps): the first line of a file that
 * only its owner and group may read. */
static int read_url_file(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = privhelper_open(path, PH_READ);    /* root's file, after the drop */

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_mode & S_IROTH) {
		snprintf(err, errlen, "%s is readable by every user; it may hold a "
			 "password: chmod o-rwx it", path);
		close(fd);
		return -1;
	}
	n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	out[n] = 0;
	out[strcspn(out, "\r\n")] = 0;
	while (*out && isspace((unsigned char)out[strlen(out) - 1]))
		out[strlen(out) - 1] = 0;
	return 0;
}

int upstream_parse_arg(const char *arg, struct upstream *u, char *err, size_t errlen)
{
	size_t nlen = strcspn(arg, "=:/@");
	const char *val = arg;
	char url[2048], why[200];

	memset(u->name, 0, sizeof(u->name));
	if (arg[nlen] == '=') {
		if (nlen == 0 || nlen >= sizeof(u->name) ||
		    strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789_.-") < nlen) {
			snprintf(err, errlen, "an upstream NAME is 1 to %d letters, digits, "
				 "'_', '.' or '-'", UPSTREAM_NAME_MAX - 1);
			return -1;
		}
		memcpy(u->name, arg, nlen);
		val = arg + nlen + 1;
	} else {
		snprintf(u->name, sizeof(u->name), "%s", UPSTREAM_DEFAULT);
	}
	if (*val == '@') {
		if (read_url_file(val + 1, url, sizeof(url), err, errlen) < 0)
			return -1;
		val = url;
	}
	if (upstream_parse_url(val, u, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", u->name, why);
		return -1;
	}
	return 0;
}

int upstream_resolve(struct upstream *u, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char port[8];
	int rc;

	if (u->kind == UPSTREAM_DIRECT)
		return 0;
	snprintf(port, sizeof(port), "%u", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "upstream %s: cannot resolve %s: %s", u->label,
			 u->host, gai_strerror(rc));
		return -1;
	}
	memset(&u->addr, 0, sizeof(u->addr));
	memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	addr_unmap(&u->addr);
	return 0;
}

const struct upstream *upstream_find(const struct options *o, const char *name)
{
	for (int i = 0; i < o->n_upstream; i++)
		if (strcmp(o->upstream[i].name, name) == 0)
			return &o->upstream[i];
	return NULL;
}

int upstream_carries(const struct options *o, const struct upstream *u, int socktype)
{
	(void)o;
	if (!u || u->kind == UPSTREAM_DIRECT)
		return 0;
	return u->kind == UPSTREAM_SOCKS5 || socktype == SOCK_STREAM;
}

int upstream_refuses(const struct options *o, const struct upstream *u, int socktype,
		     char *err, size_t errlen)
{
	if (!u || u->kind != UPSTREAM_HTTP || socktype != SOCK_DGRAM ||
	    o->udp_over_http != UDP_OVER_HTTP_REJECT)
		return 0;
	snprintf(err, errlen, "upstream %s is an HTTP proxy, which cannot carry UDP: "
		 "rejected (--udp-over-http direct sends UDP around it)", u->label);
	return 1;
}

const char *upstream_via(const struct options *o, const struct upstream *u, int socktype)
{
	static int said;

	if (!u)
		return NULL;
	if (u->kind == UPSTREAM_HTTP && socktype == SOCK_DGRAM &&
	    o->udp_over_http == UDP_OVER_HTTP_DIRECT) {
		if (!said++)
			log_info("UDP flows go direct, around upstream %s: an HTTP proxy "
				 "cannot carry UDP (--udp-over-http direct)", u->label);
		return "direct";
	}
	return u->name;
}
