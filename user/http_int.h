/* The HTTP tagger's insides, shared by http.c (the request line, the header
 * block and tagging) and httpframe.c (the message framing that passes
 * bodies through).  Not for other modules: see http.h. */
#ifndef SPROXY_HTTP_INT_H
#define SPROXY_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

enum state {
	ST_IDLE,	  /* between requests; stray CR/LF pass */
	ST_REQLINE,	  /* request line, held */
	ST_HEADERS,	  /* header fields, held */
	ST_BODY,	  /* Content-Length body, remain bytes left */
	ST_CHUNK_SIZE,	  /* hex digits of a chunk-size line */
	ST_CHUNK_EXT,	  /* rest of a chunk-size line */
	ST_CHUNK_SIZE_LF, /* LF after the chunk-size line's CR */
	ST_CHUNK_DATA,	  /* chunk data, remain bytes left */
	ST_CHUNK_END,	  /* CRLF after chunk data */
	ST_CHUNK_END_LF,
	ST_TRAILER,	  /* trailer fields up to the blank line */
	ST_RAW,		  /* verbatim for good */
};

enum rl_phase { RL_METHOD, RL_TARGET, RL_VERSION, RL_LF };

enum field { F_OTHER, F_UA, F_CLEN, F_TE, F_CONNECTION, F_UPGRADE };

struct http_tagger {
	size_t tag_len;
	enum state state;
	uint64_t requests;

	/* The header block being collected: held[0..held_len). */
	char *held;
	size_t held_len, held_cap;
	size_t line_start;	/* offset of the header line not yet ended */
	enum rl_phase rl_phase;
	size_t rl_n;		/* bytes in the current request-line part */

	/* What the header block said so far. */
	size_t ua_pos;		/* where the tag goes; 0: no User-Agent yet */
	int64_t clen;		/* -1: no Content-Length */
	bool te_seen, te_chunked, upgrade, connect, seen_field;
	enum field last_field;

	/* Body framing. */
	uint64_t remain;	/* body or chunk bytes left */
	size_t line_len;	/* chunk-size or trailer line length so far */
	bool cr;		/* trailer line: last byte was CR */
	char tag[];		/* one allocation with the state */
};

static inline bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* http.c: the next byte starts a request line. */
void http_begin_request(struct http_tagger *t);

/* httpframe.c.  After a header block: the state its body framing starts
 * in (a Content-Length body, chunks, the next request, or raw). */
void http_frame_begin(struct http_tagger *t);
/* Content-Length or chunk data bytes, passed verbatim.  Returns how many
 * of p[] were taken, (size_t)-1 on ENOMEM. */
size_t http_feed_body(struct http_tagger *t, const unsigned char *p,
		      size_t len, struct evbuffer *out);
/* Framing bytes up to the first one that belongs to another state; they
 * pass unchanged. */
size_t http_scan_frame(struct http_tagger *t, const unsigned char *p,
		       size_t len);

#endif
