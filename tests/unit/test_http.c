/* Unit tests of user/http.c and httpframe.c: exact output bytes for each
 * kind of request stream, fed whole, at every split point, and byte by
 * byte. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "check.h"
#include "http.h"

#define TAG "sproxy-bpf (comm=curl; pid=4242)"

struct result {
	char *data; /* NUL-terminated copy of the output */
	size_t len;
	uint64_t requests;
	int raw;
};

static void result_free(struct result *r)
{
	free(r->data);
	r->data = NULL;
}

static void take(struct evbuffer *out, struct http_tagger *t, struct result *r)
{
	r->len = evbuffer_get_length(out);
	r->data = malloc(r->len + 1);
	evbuffer_remove(out, r->data, r->len);
	r->data[r->len] = '\0';
	r->requests = http_tagger_requests(t);
	r->raw = http_tagger_is_raw(t);
}

/* Feeds in[] in pieces: split points at s1 and s2 (each may be 0 or len),
 * then flushes. */
static int run_split(const void *in, size_t len, size_t s1, size_t s2,
		     struct result *r)
{
	struct http_tagger *t = http_tagger_new(TAG);
	struct evbuffer *out = evbuffer_new();
	const char *p = in;
	int err = 0;

	if (!t || !out)
		abort();
	if (s1 > len)
		s1 = len;
	if (s2 < s1)
		s2 = s1;
	if (s2 > len)
		s2 = len;
	err |= http_tagger_feed(t, p, s1, out);
	err |= http_tagger_feed(t, p + s1, s2 - s1, out);
	err |= http_tagger_feed(t, p + s2, len - s2, out);
	take(out, t, r);
	http_tagger_free(t);
	evbuffer_free(out);
	return err;
}

static int run_bytes(const void *in, size_t len, struct result *r)
{
	struct http_tagger *t = http_tagger_new(TAG);
	struct evbuffer *out = evbuffer_new();
	const char *p = in;
	int err = 0;
	size_t i;

	for (i = 0; i < len; i++)
		err |= http_tagger_feed(t, p + i, 1, out);
	take(out, t, r);
	http_tagger_free(t);
	evbuffer_free(out);
	return err;
}

static int same(const struct result *a, const char *exp, size_t explen)
{
	return a->len == explen && !memcmp(a->data, exp, explen);
}

/* The output for in[] must be exp[] however the stream is cut. */
static void expect_bytes(const void *in, size_t len, const void *exp,
			 size_t explen, uint64_t requests, int raw)
{
	struct result r;
	size_t s;
	int bad = 0;

	CHECK(run_split(in, len, len, len, &r) == 0);
	if (!same(&r, exp, explen))
		printf("    got:      \"%s\"\n    expected: \"%s\"\n", r.data,
		       (const char *)exp);
	CHECK(same(&r, exp, explen));
	CHECK(r.requests == requests);
	CHECK(r.raw == raw);
	result_free(&r);

	for (s = 0; s <= len && !bad; s++) {
		CHECK(run_split(in, len, s, s, &r) == 0);
		if (!same(&r, exp, explen) || r.requests != requests ||
		    r.raw != raw) {
			printf("    differs when split at %zu\n", s);
			bad = 1;
		}
		result_free(&r);
	}
	CHECK(!bad);

	CHECK(run_bytes(in, len, &r) == 0);
	CHECK(same(&r, exp, explen));
	CHECK(r.requests == requests);
	CHECK(r.raw == raw);
	result_free(&r);
}

static void expect(const char *in, const char *exp, uint64_t requests,
		   int raw)
{
	expect_bytes(in, strlen(in), exp, strlen(exp), requests, raw);
}

static void get_with_ua(void)
{
	expect("GET / HTTP/1.1\r\nHost: example.com\r\n"
	       "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
	       "GET / HTTP/1.1\r\nHost: example.com\r\n"
	       "User-Agent: curl/7.88.1 " TAG "\r\nAccept: */*\r\n\r\n",
	       1, 0);
}

static void get_without_ua(void)
{
	expect("GET /x?y=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
	       "GET /x?y=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
	       "User-Agent: " TAG "\r\n\r\n",
	       1, 0);
	/* No fields at all. */
	expect("GET / HTTP/1.1\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent: " TAG "\r\n\r\n", 1, 0);
}

static void ua_case_and_shape(void)
{
	expect("GET / HTTP/1.1\r\nuser-AGENT:wget\r\n\r\n",
	       "GET / HTTP/1.1\r\nuser-AGENT:wget " TAG "\r\n\r\n", 1, 0);
	/* Trailing OWS stays after the tag. */
	expect("GET / HTTP/1.1\r\nUser-Agent:  a b \t\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent:  a b " TAG " \t\r\n\r\n", 1, 0);
	/* Empty value. */
	expect("GET / HTTP/1.1\r\nUser-Agent:\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent: " TAG "\r\n\r\n", 1, 0);
	expect("GET / HTTP/1.1\r\nUser-Agent: \r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent: " TAG " \r\n\r\n", 1, 0);
	/* Not the User-Agent field, only a name that starts like it. */
	expect("GET / HTTP/1.1\r\nUser-Agents: x\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agents: x\r\nUser-Agent: " TAG
	       "\r\n\r\n", 1, 0);
}

static void multiple_ua_and_fold(void)
{
	expect("GET / HTTP/1.1\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent: a " TAG "\r\nUser-Agent: b\r\n"
	       "\r\n", 1, 0);
	expect("GET / HTTP/1.1\r\nUser-Agent: a\r\n  continued\r\nX: y\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent: a " TAG "\r\n  continued\r\n"
	       "X: y\r\n\r\n", 1, 0);
	/* A fold right after the request line continues nothing. */
	expect("GET / HTTP/1.1\r\n folded: x\r\n\r\n",
	       "GET / HTTP/1.1\r\n folded: x\r\n\r\n", 0, 1);
}

static void pipelined(void)
{
	expect("GET /1 HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n"
	       "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
	       "HEAD /3 HTTP/1.1\r\nUSER-AGENT: z\r\nConnection: close\r\n\r\n",
	       "GET /1 HTTP/1.1\r\nHost: a\r\nUser-Agent: x " TAG "\r\n\r\n"
	       "GET /2 HTTP/1.1\r\nHost: a\r\nUser-Agent: " TAG "\r\n\r\n"
	       "HEAD /3 HTTP/1.1\r\nUSER-AGENT: z " TAG
	       "\r\nConnection: close\r\n\r\n",
	       3, 0);
	/* Stray empty lines between requests pass and are not a request. */
	expect("GET /1 HTTP/1.1\r\n\r\n\r\n\nGET /2 HTTP/1.1\r\n\r\n",
	       "GET /1 HTTP/1.1\r\nUser-Agent: " TAG "\r\n\r\n\r\n\n"
	       "GET /2 HTTP/1.1\r\nUser-Agent: " TAG "\r\n\r\n", 2, 0);
}

static void body_not_tagged(void)
{
	const char *body = "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n";
	char in[512], exp[512];

	snprintf(in, sizeof(in),
		 "POST /up HTTP/1.1\r\nContent-Length: %zu\r\nUser-Agent: c\r\n"
		 "\r\n%sGET /next HTTP/1.1\r\n\r\n", strlen(body), body);
	snprintf(exp, sizeof(exp),
		 "POST /up HTTP/1.1\r\nContent-Length: %zu\r\nUser-Agent: c "
		 TAG "\r\n\r\n%sGET /next HTTP/1.1\r\nUser-Agent: " TAG
		 "\r\n\r\n", strlen(body), body);
	expect(in, exp, 2, 0);

	/* Same value twice is fine; zero means no body. */
	expect("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n"
	       "\r\nabcGET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
	       "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n"
	       "User-Agent: " TAG "\r\n\r\nabcGET / HTTP/1.1\r\n"
	       "Content-Length: 0\r\nUser-Agent: " TAG "\r\n\r\n", 2, 0);
}

static void chunked(void)
{
	expect("POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n"
	       "User-Agent: u\r\n\r\n"
	       "5;name=val;x=\"q r\"\r\nGET /\r\n"
	       "1A \t;ext\r\nUser-Agent: inside-chunk\r\n\r\n"
	       "0\r\nX-Trailer: GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n"
	       "GET /after HTTP/1.1\r\nUser-Agent: v\r\n\r\n",
	       "POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n"
	       "User-Agent: u " TAG "\r\n\r\n"
	       "5;name=val;x=\"q r\"\r\nGET /\r\n"
	       "1A \t;ext\r\nUser-Agent: inside-chunk\r\n\r\n"
	       "0\r\nX-Trailer: GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n"
	       "GET /after HTTP/1.1\r\nUser-Agent: v " TAG "\r\n\r\n",
	       2, 0);
	/* Without trailers, bare LF framing, leading zeros. */
	expect("PUT / HTTP/1.1\nTransfer-Encoding: chunked\n\n"
	       "003\nabc\n1\n\n\n0\n\nGET / HTTP/1.1\n\n",
	       "PUT / HTTP/1.1\nTransfer-Encoding: chunked\nUser-Agent: " TAG
	       "\n\n003\nabc\n1\n\n\n0\n\nGET / HTTP/1.1\nUser-Agent: " TAG
	       "\n\n",
	       2, 0);
	/* Bad chunk framing: raw from there on, nothing else changes. */
	expect("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "zz\r\nGET / HTTP/1.1\r\n\r\n",
	       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nUser-Agent: "
	       TAG "\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n", 1, 1);
	expect("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "2\r\nabX\r\nGET / HTTP/1.1\r\n\r\n",
	       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nUser-Agent: "
	       TAG "\r\n\r\n2\r\nabX\r\nGET / HTTP/1.1\r\n\r\n", 1, 1);
}

static void uncertain_framing(void)
{
	/* TE that is not finally chunked, TE with CL, conflicting CLs,
	 * odd CL syntax: the body length is a guess, so go raw. */
	expect("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nx",
	       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n"
	       "User-Agent: " TAG "\r\n\r\nx", 1, 1);
	expect("POST / HTTP/1.1\r\nContent-Length: 5\r\n"
	       "Transfer-Encoding: chunked\r\n\r\n"
	       "0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	       "POST / HTTP/1.1\r\nContent-Length: 5\r\n"
	       "Transfer-Encoding: chunked\r\nUser-Agent: " TAG "\r\n\r\n"
	       "0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, 1);
	expect("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
	       "User-Agent: a\r\n\r\nxy",
	       "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
	       "User-Agent: a\r\n\r\nxy", 0, 1);
	expect("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
	       "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", 0, 1);
	expect("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
	       "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 0, 1);
	expect("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
	       "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 0, 1);
}

/* The splice path: whatever verbatim() vouches for is sent by the caller
 * and skipped; the result must equal feeding everything. */
static void verbatim_skip(void)
{
	const char *in =
		"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
		"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
		"GET /c HTTP/1.1\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\n\r\nbinary\x01\x02";
	size_t len = strlen(in), pos, step;
	struct result whole;
	uint64_t skipped_max = 0;

	CHECK(run_split(in, len, len, len, &whole) == 0);
	CHECK(whole.requests == 3 && whole.raw);
	for (step = 1; step <= 7; step++) {
		struct http_tagger *t = http_tagger_new(TAG);
		struct evbuffer *out = evbuffer_new();
		struct result r;
		uint64_t skipped = 0;

		CHECK(http_tagger_verbatim(t) == 0);
		for (pos = 0; pos < len;) {
			uint64_t v = http_tagger_verbatim(t);
			size_t n = len - pos;

			if (v) {
				if (v < n)
					n = v;
				evbuffer_add(out, in + pos, n);
				http_tagger_skip(t, n);
				skipped += n;
			} else {
				if (step < n)
					n = step;
				CHECK(!http_tagger_feed(t, in + pos, n, out));
			}
			pos += n;
		}
		CHECK(http_tagger_flush(t, out) == 0);
		take(out, t, &r);
		CHECK(same(&r, whole.data, whole.len));
		CHECK(r.requests == 3 && r.raw);
		if (skipped > skipped_max)
			skipped_max = skipped;
		result_free(&r);
		http_tagger_free(t);
		evbuffer_free(out);
	}
	/* 10 body bytes, the chunk data, and the websocket bytes at least. */
	CHECK(skipped_max >= 10 + 7 + 8);
	result_free(&whole);

	/* Chunk data: verbatim() counts down the current chunk only. */
	{
		struct http_tagger *t = http_tagger_new(TAG);
		struct evbuffer *out = evbuffer_new();
		const char *h = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
				"\r\n\r\n1f\r\n";

		http_tagger_feed(t, h, strlen(h), out);
		CHECK(http_tagger_verbatim(t) == 31);
		http_tagger_skip(t, 30);
		CHECK(http_tagger_verbatim(t) == 1);
		http_tagger_feed(t, "x\r\n0\r\n\r\nGET", 11, out);
		CHECK(http_tagger_verbatim(t) == 0);
		CHECK(http_tagger_held(t) == 3);
		/* Skipping what it did not vouch for loses the framing. */
		http_tagger_skip(t, 1);
		CHECK(http_tagger_is_raw(t));
		http_tagger_free(t);

		/* So does skipping past the end of the chunk. */
		t = http_tagger_new(TAG);
		http_tagger_feed(t, h, strlen(h), out);
		http_tagger_skip(t, 32);
		CHECK(http_tagger_is_raw(t));
		http_tagger_free(t);
		evbuffer_free(out);
	}
}

static void tls_binary_raw(void)
{
	static const unsigned char hello[] = {
		0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03,
		0x03, 'G',  'E',  'T',  ' ',  '/',  ' ',  'H',  'T',  'T',
		'P',  '/',  '1',  '.',  '1',  '\r', '\n', '\r', '\n', 0x00,
	};
	static const char ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
				  "GET / HTTP/1.1\r\n\r\n";
	static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct http_tagger *t = http_tagger_new(TAG);
	struct evbuffer *out = evbuffer_new();

	expect_bytes(hello, sizeof(hello), hello, sizeof(hello), 0, 1);
	expect(ssh, ssh, 0, 1);
	expect(h2, h2, 0, 1);

	/* Raw is decided on the first byte: nothing is held waiting. */
	CHECK(http_tagger_feed(t, hello, 1, out) == 0);
	CHECK(http_tagger_is_raw(t));
	CHECK(evbuffer_get_length(out) == 1);
	CHECK(http_tagger_verbatim(t) == UINT64_MAX);
	http_tagger_free(t);
	evbuffer_free(out);
}

static void garbage_request_line(void)
{
	expect("get / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
	       "get / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", 0, 1);
	expect("GET /a b HTTP/1.1\r\n\r\n", "GET /a b HTTP/1.1\r\n\r\n", 0, 1);
	expect("GET / HTTP/1.1 \r\n\r\n", "GET / HTTP/1.1 \r\n\r\n", 0, 1);
	expect("GET / HTTP/0.9\r\n\r\n", "GET / HTTP/0.9\r\n\r\n", 0, 1);
	expect("GET /\r\n\r\n", "GET /\r\n\r\n", 0, 1);
	expect("GET / HTTP/1.1\rX: y\r\n\r\n", "GET / HTTP/1.1\rX: y\r\n\r\n",
	       0, 1);
	expect("GET  / HTTP/1.1\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", 0, 1);
	/* A good request, then garbage: the first stays tagged. */
	expect("GET / HTTP/1.1\r\n\r\n\x80garbage GET / HTTP/1.1\r\n\r\n",
	       "GET / HTTP/1.1\r\nUser-Agent: " TAG "\r\n\r\n"
	       "\x80garbage GET / HTTP/1.1\r\n\r\n", 1, 1);
}

static void huge_header(void)
{
	size_t len = HTTP_MAX_HEADER + 4096, i;
	char *in = malloc(len + 64);
	struct http_tagger *t = http_tagger_new(TAG);
	struct evbuffer *out = evbuffer_new();
	size_t max_held = 0, n;

	n = sprintf(in, "GET / HTTP/1.1\r\nUser-Agent: a\r\nX-Big: ");
	memset(in + n, 'b', len - n);
	memcpy(in + len, "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 22);
	len += 22;
	for (i = 0; i < len; i += 1000) {
		n = len - i < 1000 ? len - i : 1000;
		CHECK(http_tagger_feed(t, in + i, n, out) == 0);
		if (http_tagger_held(t) > max_held)
			max_held = http_tagger_held(t);
	}
	CHECK(max_held <= HTTP_MAX_HEADER);
	CHECK(http_tagger_is_raw(t));
	CHECK(http_tagger_requests(t) == 0);
	CHECK(evbuffer_get_length(out) == len);
	CHECK(!memcmp(evbuffer_pullup(out, -1), in, len));
	http_tagger_free(t);
	evbuffer_free(out);

	/* A block of exactly the limit is still tagged. */
	t = http_tagger_new(TAG);
	out = evbuffer_new();
	n = sprintf(in, "GET / HTTP/1.1\r\nX: ");
	memset(in + n, 'c', HTTP_MAX_HEADER - n - 4);
	memcpy(in + HTTP_MAX_HEADER - 4, "\r\n\r\n", 4);
	CHECK(http_tagger_feed(t, in, HTTP_MAX_HEADER, out) == 0);
	CHECK(http_tagger_requests(t) == 1 && !http_tagger_is_raw(t));
	CHECK(evbuffer_get_length(out) ==
	      HTTP_MAX_HEADER + strlen("User-Agent: " TAG "\r\n"));
	http_tagger_free(t);
	evbuffer_free(out);
	free(in);
}

static void tunnels(void)
{
	expect("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
	       "User-Agent: curl\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	       "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
	       "User-Agent: curl " TAG "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, 1);
	expect("GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n"
	       "Upgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	       "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n"
	       "Upgrade: websocket\r\nUser-Agent: " TAG "\r\n\r\n"
	       "GET / HTTP/1.1\r\n\r\n", 1, 1);
	expect("GET / HTTP/1.1\r\nconnection: UPGRADE\r\n\r\nGET / HTTP/1.1"
	       "\r\n\r\n",
	       "GET / HTTP/1.1\r\nconnection: UPGRADE\r\nUser-Agent: " TAG
	       "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, 1);
	/* "upgrade" inside another token is not an upgrade. */
	expect("GET / HTTP/1.1\r\nConnection: no-upgrade\r\n\r\n"
	       "GET / HTTP/1.1\r\n\r\n",
	       "GET / HTTP/1.1\r\nConnection: no-upgrade\r\nUser-Agent: " TAG
	       "\r\n\r\nGET / HTTP/1.1\r\nUser-Agent: " TAG "\r\n\r\n", 2, 0);
}

static void bare_lf_and_http10(void)
{
	expect("GET / HTTP/1.1\nHost: a\nUser-Agent: b\n\n"
	       "GET / HTTP/1.1\nHost: a\n\n",
	       "GET / HTTP/1.1\nHost: a\nUser-Agent: b " TAG "\n\n"
	       "GET / HTTP/1.1\nHost: a\nUser-Agent: " TAG "\n\n", 2, 0);
	/* Mixed endings: the new line ends like the blank line. */
	expect("GET / HTTP/1.1\r\nHost: a\n\r\n",
	       "GET / HTTP/1.1\r\nHost: a\nUser-Agent: " TAG "\r\n\r\n", 1, 0);
	expect("GET / HTTP/1.0\r\nUser-Agent: Wget/1.21\r\n\r\n",
	       "GET / HTTP/1.0\r\nUser-Agent: Wget/1.21 " TAG "\r\n\r\n", 1, 0);
	expect("POST /f HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
	       "POST /f HTTP/1.0\r\nContent-Length: 2\r\nUser-Agent: " TAG
	       "\r\n\r\nhi", 1, 0);
}

/* Every pair of cut points over a mixed stream gives the same bytes. */
static void all_double_splits(void)
{
	const char *in =
		"POST /a HTTP/1.1\r\nUser-Agent: x\r\nContent-Length: 4\r\n\r\n"
		"abcd\r\nPUT /b HTTP/1.1\nTransfer-Encoding: chunked\n\n"
		"2;e=1\r\nxy\r\n0\r\nT: 1\r\n\r\nGET /c HTTP/1.0\r\n\r\n";
	const char *exp =
		"POST /a HTTP/1.1\r\nUser-Agent: x " TAG "\r\n"
		"Content-Length: 4\r\n\r\nabcd\r\nPUT /b HTTP/1.1\n"
		"Transfer-Encoding: chunked\nUser-Agent: " TAG "\n\n"
		"2;e=1\r\nxy\r\n0\r\nT: 1\r\n\r\nGET /c HTTP/1.0\r\n"
		"User-Agent: " TAG "\r\n\r\n";
	size_t len = strlen(in), i, j;
	int bad = 0;

	for (i = 0; i <= len && !bad; i++) {
		for (j = i; j <= len && !bad; j++) {
			struct result r;

			run_split(in, len, i, j, &r);
			if (!same(&r, exp, strlen(exp)) || r.requests != 3) {
				printf("    differs when split at %zu, %zu\n",
				       i, j);
				bad = 1;
			}
			result_free(&r);
		}
	}
	CHECK(!bad);
}

static void flush_held(void)
{
	struct http_tagger *t = http_tagger_new(TAG);
	struct evbuffer *out = evbuffer_new();

	CHECK(http_tagger_feed(t, "GET / HTTP/1.1\r\nHo", 18, out) == 0);
	CHECK(evbuffer_get_length(out) == 0);
	CHECK(http_tagger_held(t) == 18);
	CHECK(http_tagger_mem(t) >= 18);
	CHECK(http_tagger_verbatim(t) == 0);
	CHECK(http_tagger_flush(t, out) == 0);
	CHECK(evbuffer_get_length(out) == 18);
	CHECK(http_tagger_held(t) == 0);
	/* A raw stream gives its header buffer back: a budget counts on it. */
	CHECK(http_tagger_mem(t) == 0);
	CHECK(http_tagger_is_raw(t));
	http_tagger_free(t);
	evbuffer_free(out);

	errno = 0;
	CHECK(http_tagger_new("a\r\nX-Injected: 1") == NULL);
	CHECK(errno == EINVAL);
}

static void format_tag(void)
{
	char buf[HTTP_TAG_MAX];

	CHECK_STREQ(http_format_tag(buf, sizeof(buf), "curl", 4242), TAG);
	CHECK_STREQ(http_format_tag(buf, sizeof(buf), "a(b);c\\d\r\n\x01\xff"
				    " e=f", 4294967295u),
		    "sproxy-bpf (comm=a_b__c_d____ e=f; pid=4294967295)");
	CHECK_STREQ(http_format_tag(buf, sizeof(buf), "", 0),
		    "sproxy-bpf (comm=; pid=0)");
	CHECK_STREQ(http_format_tag(buf, 12, "curl", 1), "sproxy-bpf ");
	CHECK(strlen(http_format_tag(buf, sizeof(buf), "0123456789abcdef",
				     4294967295u)) < sizeof(buf));
}

/* Between requests nothing is held, so nothing counts against a budget. */
static void mem_between_requests(void)
{
	struct http_tagger *t = http_tagger_new(TAG);
	struct evbuffer *out = evbuffer_new();
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	CHECK(http_tagger_mem(t) == 0);
	CHECK(http_tagger_feed(t, req, 10, out) == 0);
	CHECK(http_tagger_mem(t) > 0);
	CHECK(http_tagger_feed(t, req + 10, sizeof(req) - 1 - 10, out) == 0);
	CHECK(http_tagger_mem(t) == 0);
	CHECK(http_tagger_held(t) == 0);
	http_tagger_free(t);
	evbuffer_free(out);
}

int main(void)
{
	RUN("http", get_with_ua);
	RUN("http", get_without_ua);
	RUN("http", ua_case_and_shape);
	RUN("http", multiple_ua_and_fold);
	RUN("http", pipelined);
	RUN("http", body_not_tagged);
	RUN("http", chunked);
	RUN("http", uncertain_framing);
	RUN("http", verbatim_skip);
	RUN("http", tls_binary_raw);
	RUN("http", garbage_request_line);
	RUN("http", huge_header);
	RUN("http", tunnels);
	RUN("http", bare_lf_and_http10);
	RUN("http", all_double_splits);
	RUN("http", flush_held);
	RUN("http", format_tag);
	RUN("http", mem_between_requests);
	CHECK_EXIT();
}
