/* HTTP/1.x User-Agent tagging: an incremental parser of the request side of
 * a connection that rewrites one header line per request and leaves every
 * other byte alone.  Anything it is unsure about sends the stream to raw
 * pass-through for good: an untagged request is harmless, a corrupted
 * stream is not.  Bodies and their framing are httpframe.c's. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "http_int.h"
#include "tag.h"

#define MAX_METHOD	 24	/* longest registered method is 17 bytes */

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

struct http_tagger *http_tagger_new(const char *tag)
{
	struct http_tagger *t;
	const char *c;

	for (c = tag; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			errno = EINVAL;
			return NULL;
		}
	}
	t = calloc(1, sizeof(*t) + strlen(tag) + 1);
	if (!t)
		return NULL;
	t->tag_len = strlen(tag);
	memcpy(t->tag, tag, t->tag_len + 1);
	t->state = ST_IDLE;
	return t;
}

void http_tagger_free(struct http_tagger *t)
{
	if (!t)
		return;
	free(t->held);
	free(t);
}

void http_begin_request(struct http_tagger *t)
{
	t->state = ST_REQLINE;
	t->held_len = 0;
	t->line_start = 0;
	t->rl_phase = RL_METHOD;
	t->rl_n = 0;
	t->ua_pos = 0;
	t->clen = -1;
	t->te_seen = t->te_chunked = t->upgrade = t->connect = false;
	t->seen_field = false;
	t->last_field = F_OTHER;
}

/* Emits what is held verbatim and stops parsing for good.  The buffer
 * goes too: a raw stream never holds anything again. */
static int go_raw(struct http_tagger *t, struct evbuffer *out)
{
	t->state = ST_RAW;
	if (t->held_len && evbuffer_add(out, t->held, t->held_len))
		return -1;
	t->held_len = 0;
	free(t->held);
	t->held = NULL;
	t->held_cap = 0;
	return 0;
}

/* Appends to the held block; false when the block would outgrow the
 * limit (the caller goes raw) or on ENOMEM (*err set). */
static bool hold(struct http_tagger *t, const void *p, size_t n, bool *err)
{
	size_t need = t->held_len + n, cap;
	char *nb;

	if (need > HTTP_MAX_HEADER)
		return false;
	if (need > t->held_cap) {
		cap = t->held_cap ? t->held_cap : 512;
		while (cap < need)
			cap *= 2;
		if (cap > HTTP_MAX_HEADER)
			cap = HTTP_MAX_HEADER;
		nb = realloc(t->held, cap);
		if (!nb) {
			*err = true;
			return false;
		}
		t->held = nb;
		t->held_cap = cap;
	}
	memcpy(t->held + t->held_len, p, n);
	t->held_len = need;
	return true;
}

/* One request-line byte: 1 keep going, 2 line complete, 0 not HTTP/1.x.
 * Checked byte by byte so that TLS, SSH and binary protocols go raw at
 * once instead of being held while waiting for a newline. */
static int reqline_step(struct http_tagger *t, unsigned char c)
{
	static const char version[] = "HTTP/1.";

	switch (t->rl_phase) {
	case RL_METHOD:
		if (c == ' ' && t->rl_n) {
			t->rl_phase = RL_TARGET;
			t->rl_n = 0;
			return 1;
		}
		/* Methods are uppercase in practice; anything else is
		 * more likely another protocol than an odd client. */
		if (!((c >= 'A' && c <= 'Z') || c == '-' || c == '_') ||
		    ++t->rl_n > MAX_METHOD)
			return 0;
		return 1;
	case RL_TARGET:
		if (c == ' ' && t->rl_n) {
			t->rl_phase = RL_VERSION;
			t->rl_n = 0;
			return 1;
		}
		if (c <= ' ' || c == 0x7f)
			return 0;
		t->rl_n++;
		return 1;
	case RL_VERSION:
		if (t->rl_n < sizeof(version) - 1)
			return c == version[t->rl_n++];
		if (t->rl_n == sizeof(version) - 1) {
			t->rl_n++;
			return c >= '0' && c <= '9';
		}
		if (c == '\n')
			return 2;
		if (c != '\r')
			return 0;
		t->rl_phase = RL_LF;
		return 1;
	case RL_LF:
		return c == '\n' ? 2 : 0;
	}
	return 0;
}

/* Field values: visible ASCII, SP, HTAB, obs-text.  Bare CR, NUL and other
 * controls are where request smuggling lives; leave such streams alone. */
static bool value_ok(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = v[i];

		if ((c < ' ' && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static bool name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && !strncasecmp(name, want, n);
}

static enum field field_kind(const char *name, size_t n)
{
	if (name_is(name, n, "user-agent"))
		return F_UA;
	if (name_is(name, n, "content-length"))
		return F_CLEN;
	if (name_is(name, n, "transfer-encoding"))
		return F_TE;
	if (name_is(name, n, "connection"))
		return F_CONNECTION;
	if (name_is(name, n, "upgrade"))
		return F_UPGRADE;
	return F_OTHER;
}

/* Next element of a comma-separated list in [*p, end): its leading token
 * (parameters after ';' dropped), OWS trimmed.  False at the end. */
static bool list_next(const char **p, const char *end, const char **tok,
		      size_t *len)
{
	const char *s, *e;

	while (*p < end) {
		s = *p;
		e = memchr(s, ',', end - s);
		if (!e)
			e = end;
		*p = e < end ? e + 1 : end;
		while (s < e && is_ows(*s))
			s++;
		*tok = s;
		while (s < e && *s != ';' && !is_ows(*s))
			s++;
		*len = s - *tok;
		if (*len)
			return true;
	}
	return false;
}

static int parse_clen(const char *v, size_t n, int64_t *out)
{
	int64_t x = 0;
	size_t i;

	if (!n || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

/* Records what one field says about tagging and framing; -1 if the field
 * is malformed or makes the framing uncertain. */
static int header_field(struct http_tagger *t, size_t off, size_t n)
{
	const char *l = t->held + off, *v, *ve, *tok;
	size_t colon, tl;
	enum field kind;
	int64_t clen;

	if (is_ows(l[0])) {
		/* obs-fold: only harmless on a field we do not interpret. */
		if (!t->seen_field ||
		    (t->last_field != F_OTHER && t->last_field != F_UA))
			return -1;
		return value_ok(l, n) ? 0 : -1;
	}
	for (colon = 0; colon < n && is_tchar(l[colon]); colon++)
		;
	if (!colon || colon == n || l[colon] != ':')
		return -1;
	if (!value_ok(l + colon + 1, n - colon - 1))
		return -1;
	v = l + colon + 1;
	ve = l + n;
	while (v < ve && is_ows(*v))
		v++;
	while (ve > v && is_ows(ve[-1]))
		ve--;

	kind = field_kind(l, colon);
	switch (kind) {
	case F_UA:
		/* The tag goes after the value, before trailing OWS; right
		 * after the colon when the value is empty. */
		if (!t->ua_pos)
			t->ua_pos = v < ve ? (size_t)(ve - t->held)
					   : off + colon + 1;
		break;
	case F_CLEN:
		if (parse_clen(v, ve - v, &clen) ||
		    (t->clen >= 0 && t->clen != clen))
			return -1;
		t->clen = clen;
		break;
	case F_TE:
		/* Only a final "chunked" frames a request body. */
		t->te_seen = true;
		while (list_next(&v, ve, &tok, &tl))
			t->te_chunked = name_is(tok, tl, "chunked");
		break;
	case F_CONNECTION:
		while (list_next(&v, ve, &tok, &tl))
			if (name_is(tok, tl, "upgrade"))
				t->upgrade = true;
		break;
	case F_UPGRADE:
		t->upgrade = true;
		break;
	case F_OTHER:
		break;
	}
	t->seen_field = true;
	t->last_field = kind;
	return 0;
}

/* The blank line at line_start ended the block: send it tagged and pick
 * the body framing. */
static int headers_done(struct http_tagger *t, struct evbuffer *out)
{
	size_t at = t->ua_pos ? t->ua_pos : t->line_start;
	int err = 0;

	err |= evbuffer_add(out, t->held, at);
	if (t->ua_pos) {
		err |= evbuffer_add(out, " ", 1);
		err |= evbuffer_add(out, t->tag, t->tag_len);
	} else {
		err |= evbuffer_add(out, "User-Agent: ", 12);
		err |= evbuffer_add(out, t->tag, t->tag_len);
		/* The new line ends the way the blank line does. */
		err |= evbuffer_add(out, t->held + at, t->held_len - at);
	}
	err |= evbuffer_add(out, t->held + at, t->held_len - at);
	if (err)
		return -1;
	t->requests++;
	t->held_len = 0;
	{
		/* Idle keep-alive connections are the many: they hold no header
		 * buffer (a malloc per request is cheaper than 512 bytes each). */
		free(t->held);
		t->held = NULL;
		t->held_cap = 0;
	}

	http_frame_begin(t);
	return 0;
}

/* Request line bytes.  Returns how many of p[] were taken, (size_t)-1 on
 * ENOMEM.  When it goes raw it takes none of p[]: the raw state sends them. */
static size_t feed_reqline(struct http_tagger *t, const unsigned char *p,
			   size_t len, struct evbuffer *out)
{
	bool err = false;
	size_t i;
	int r = 1;

	for (i = 0; i < len && r == 1; i++)
		r = reqline_step(t, p[i]);
	if (r == 0) {
		if (go_raw(t, out))
			return (size_t)-1;
		return 0;
	}
	if (!hold(t, p, i, &err)) {
		if (err || go_raw(t, out))
			return (size_t)-1;
		return 0;
	}
	if (r == 2) {
		t->connect = !strncmp(t->held, "CONNECT ", 8);
		t->state = ST_HEADERS;
		t->line_start = t->held_len;
	}
	return i;
}

/* Header field bytes, up to and including the next LF. */
static size_t feed_headers(struct http_tagger *t, const unsigned char *p,
			   size_t len, struct evbuffer *out)
{
	const unsigned char *nl = memchr(p, '\n', len);
	size_t n = nl ? (size_t)(nl - p) + 1 : len, line;
	bool err = false;

	if (!hold(t, p, n, &err)) {
		if (err || go_raw(t, out))
			return (size_t)-1;
		return 0;
	}
	if (!nl)
		return n;

	line = t->held_len - 1 - t->line_start;
	if (line && t->held[t->line_start + line - 1] == '\r')
		line--;
	if (!line) {
		if (headers_done(t, out))
			return (size_t)-1;
	} else if (header_field(t, t->line_start, line)) {
		if (go_raw(t, out))
			return (size_t)-1;
	} else {
		t->line_start = t->held_len;
	}
	return n;
}

int http_tagger_feed(struct http_tagger *t, const void *data, size_t len,
		     struct evbuffer *out)
{
	const unsigned char *p = data;
	size_t n;

	while (len) {
		switch (t->state) {
		case ST_RAW:
			/* held_len is non-zero only after a bad skip. */
			if (go_raw(t, out) || evbuffer_add(out, p, len))
				return -1;
			return 0;
		case ST_BODY:
		case ST_CHUNK_DATA:
			n = http_feed_body(t, p, len, out);
			break;
		case ST_REQLINE:
			n = feed_reqline(t, p, len, out);
			break;
		case ST_HEADERS:
			n = feed_headers(t, p, len, out);
			break;
		default:
			n = http_scan_frame(t, p, len);
			if (evbuffer_add(out, p, n))
				return -1;
			break;
		}
		if (n == (size_t)-1)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int http_tagger_flush(struct http_tagger *t, struct evbuffer *out)
{
	if (!t->held_len)
		return 0;
	return go_raw(t, out);
}

size_t http_tagger_held(const struct http_tagger *t)
{
	return t->held_len;
}

size_t http_tagger_mem(const struct http_tagger *t)
{
	return t->held_cap;
}

uint64_t http_tagger_requests(const struct http_tagger *t)
{
	return t->requests;
}

int http_tagger_is_raw(const struct http_tagger *t)
{
	return t->state == ST_RAW;
}

int http_tagger_at_rest(const struct http_tagger *t)
{
	return t->state == ST_IDLE && !t->held_len;
}

char *http_format_tag(char *buf, size_t size, const char *comm, unsigned pid)
{
	return tag_format(buf, size, TAG_DEFAULT, comm, pid, 0, 0);
}
