/* HTTP/1.x message framing for the tagger: after a header block, which bytes
 * belong to the body (a Content-Length body, chunk-size lines, chunk data,
 * trailers) and where the next request starts.  Every one of these bytes
 * passes unchanged; the framing only has to be right so that the next
 * request line is found, and anything unclear sends the stream raw. */
#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "http_int.h"

#define MAX_CHUNK_LINE	 4096	/* chunk-size line, extensions included */
#define MAX_BODY	 (UINT64_MAX >> 1) /* keeps UINT64_MAX meaning "raw" */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 9112 6.3, with every doubt resolved towards raw: a body framed by
 * both Transfer-Encoding and Content-Length, or by a coding other than a
 * final chunked, has no end this parser could trust. */
void http_frame_begin(struct http_tagger *t)
{
	if (t->connect || t->upgrade) {
		t->state = ST_RAW; /* a tunnel or another protocol follows */
	} else if (t->te_seen) {
		if (t->clen >= 0 || !t->te_chunked) {
			t->state = ST_RAW;
		} else {
			t->state = ST_CHUNK_SIZE;
			t->remain = 0;
			t->line_len = 0;
		}
	} else if (t->clen > 0) {
		t->state = ST_BODY;
		t->remain = t->clen;
	} else {
		t->state = ST_IDLE;
	}
}

static bool bad(struct http_tagger *t)
{
	t->state = ST_RAW;
	return false;
}

static void chunk_line_done(struct http_tagger *t)
{
	t->line_len = 0;
	t->cr = false;
	t->state = t->remain ? ST_CHUNK_DATA : ST_TRAILER;
}

/* One byte of framing that passes unchanged: CR/LF between requests, the
 * chunk-size line, the CRLF after chunk data, trailers.  False when the
 * byte belongs to the next state (request line, or raw). */
static bool frame_step(struct http_tagger *t, unsigned char c)
{
	int h;

	switch (t->state) {
	case ST_IDLE:
		/* RFC 9112 2.2: ignore empty lines before a request line. */
		if (c == '\r' || c == '\n')
			return true;
		http_begin_request(t);
		return false;
	case ST_CHUNK_SIZE:
		h = hexval(c);
		if (h >= 0) {
			if (t->remain > (MAX_BODY >> 4) ||
			    ++t->line_len > MAX_CHUNK_LINE)
				return bad(t);
			t->remain = t->remain << 4 | h;
			return true;
		}
		if (!t->line_len)
			return bad(t);
		if (c == ';' || is_ows(c)) {
			t->state = ST_CHUNK_EXT;
			return true;
		}
		if (c != '\r' && c != '\n')
			return bad(t);
		/* fallthrough */
	case ST_CHUNK_EXT:
		if (c == '\r') {
			t->state = ST_CHUNK_SIZE_LF;
			return true;
		}
		if (c == '\n') {
			chunk_line_done(t);
			return true;
		}
		if ((c < ' ' && c != '\t') || c == 0x7f ||
		    ++t->line_len > MAX_CHUNK_LINE)
			return bad(t);
		return true;
	case ST_CHUNK_SIZE_LF:
		if (c != '\n')
			return bad(t);
		chunk_line_done(t);
		return true;
	case ST_CHUNK_END:
		if (c == '\r') {
			t->state = ST_CHUNK_END_LF;
			return true;
		}
		/* fallthrough */
	case ST_CHUNK_END_LF:
		if (c != '\n')
			return bad(t);
		t->state = ST_CHUNK_SIZE;
		t->remain = 0;
		t->line_len = 0;
		return true;
	case ST_TRAILER:
		if (t->cr && c != '\n')
			return bad(t);
		if (c == '\r') {
			t->cr = true;
		} else if (c == '\n') {
			if (!t->line_len)
				t->state = ST_IDLE;
			t->line_len = 0;
			t->cr = false;
		} else {
			t->line_len = 1;
		}
		return true;
	default:
		return false;
	}
}

static bool is_frame_state(enum state s)
{
	return s == ST_IDLE || s == ST_CHUNK_SIZE || s == ST_CHUNK_EXT ||
	       s == ST_CHUNK_SIZE_LF || s == ST_CHUNK_END ||
	       s == ST_CHUNK_END_LF || s == ST_TRAILER;
}

/* Framing bytes up to the first one that belongs to another state; they
 * pass unchanged. */
size_t http_scan_frame(struct http_tagger *t, const unsigned char *p,
		       size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!frame_step(t, p[i]))
			return i;
		if (!is_frame_state(t->state))
			return i + 1;
	}
	return len;
}

static void body_done(struct http_tagger *t)
{
	t->state = t->state == ST_BODY ? ST_IDLE : ST_CHUNK_END;
}

size_t http_feed_body(struct http_tagger *t, const unsigned char *p,
		      size_t len, struct evbuffer *out)
{
	size_t n = len < t->remain ? len : t->remain;

	if (evbuffer_add(out, p, n))
		return (size_t)-1;
	t->remain -= n;
	if (!t->remain)
		body_done(t);
	return n;
}

uint64_t http_tagger_verbatim(const struct http_tagger *t)
{
	if (t->held_len)
		return 0;
	switch (t->state) {
	case ST_RAW:
		return UINT64_MAX;
	case ST_BODY:
	case ST_CHUNK_DATA:
		return t->remain;
	default:
		return 0;
	}
}

void http_tagger_skip(struct http_tagger *t, uint64_t n)
{
	if (!n || t->state == ST_RAW)
		return;
	if ((t->state != ST_BODY && t->state != ST_CHUNK_DATA) ||
	    n > t->remain || t->held_len) {
		/* The caller sent bytes we did not vouch for: framing lost. */
		t->state = ST_RAW;
		return;
	}
	t->remain -= n;
	if (!t->remain)
		body_done(t);
}
