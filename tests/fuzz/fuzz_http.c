/* Fuzzer for user/http.c and httpframe.c.  The first byte picks a split
 * point and a feed step; the rest is the client->server stream.  Invariants:
 *  - the output does not depend on how the stream is cut: fed whole, in two
 *    parts, byte by byte, or through the verbatim/skip (splice) path;
 *  - the output is the input plus, per tagged request, exactly one
 *    insertion of " TAG" or "User-Agent: TAG<eol>" in a User-Agent line,
 *    and nothing else changes (so untagged streams pass byte for byte);
 *  - never more than HTTP_MAX_HEADER bytes are held.
 * When the first byte is 0xc0 or more, the rest is instead a recipe for a
 * stream of well-formed requests (keep-alive, Content-Length and chunked
 * bodies, trailers, LF or CRLF), built together with the exact output
 * expected: every request must be tagged, none may be missed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "http.h"
#include "fuzz.h"

struct run {
	unsigned char *out;
	size_t len;
	uint64_t requests;
	int raw;
};

enum mode { WHOLE, SPLIT, BYTES, SPLICE };

static void run(enum mode mode, const char *tag, const uint8_t *in,
		size_t len, size_t split, size_t step, struct run *r)
{
	struct http_tagger *t = http_tagger_new(tag);
	struct evbuffer *out = evbuffer_new();
	size_t pos, n;

	ASSERT(t && out);
	switch (mode) {
	case WHOLE:
		ASSERT(!http_tagger_feed(t, in, len, out));
		break;
	case SPLIT:
		ASSERT(!http_tagger_feed(t, in, split, out));
		ASSERT(!http_tagger_feed(t, in + split, len - split, out));
		break;
	case BYTES:
		for (pos = 0; pos < len; pos++) {
			ASSERT(!http_tagger_feed(t, in + pos, 1, out));
			ASSERT(http_tagger_held(t) <= HTTP_MAX_HEADER);
		}
		break;
	case SPLICE:
		for (pos = 0; pos < len; pos += n) {
			uint64_t v = http_tagger_verbatim(t);

			n = len - pos;
			if (v) {
				/* Partial skips too, not only whole bodies. */
				if (n > step * 3)
					n = step * 3;
				if (n > v)
					n = v;
				ASSERT(!evbuffer_add(out, in + pos, n));
				http_tagger_skip(t, n);
			} else {
				if (n > step)
					n = step;
				ASSERT(!http_tagger_feed(t, in + pos, n, out));
			}
		}
		break;
	}
	ASSERT(!http_tagger_flush(t, out));
	ASSERT(http_tagger_held(t) == 0);
	r->len = evbuffer_get_length(out);
	r->out = malloc(r->len + 1);
	ASSERT(r->out);
	ASSERT(evbuffer_remove(out, r->out, r->len) == (int)r->len);
	r->requests = http_tagger_requests(t);
	r->raw = http_tagger_is_raw(t);
	http_tagger_free(t);
	evbuffer_free(out);
}

/* Takes every insertion of the tag back out of the output and checks that
 * what is left is the input; returns the number of insertions.  The tag
 * does not occur in the input, so each occurrence in the output is ours. */
static uint64_t untag(const struct run *r, const char *tag,
		      const uint8_t *in, size_t len)
{
	static const char ua[] = "User-Agent: ";
	const unsigned char *out = r->out, *q, *ls;
	size_t o = 0, i = 0, tl = strlen(tag), s, e, eol, ni;
	uint64_t count = 0;

	while ((q = memmem(out + o, r->len - o, tag, tl))) {
		size_t at = q - out;

		/* A whole inserted line, when the input there is the blank
		 * line that ended the header block; otherwise " TAG" after
		 * an existing User-Agent value. */
		ni = (at >= o + 12) ? i + (at - 12 - o) : len;
		if (ni < len && !memcmp(q - 12, ua, 12) &&
		    (in[ni] == '\r' || in[ni] == '\n')) {
			s = at - 12;
			eol = (at + tl < r->len && out[at + tl] == '\r') ? 2 : 1;
			ASSERT(at + tl + eol <= r->len);
			ASSERT(!memcmp(out + at + tl, eol == 2 ? "\r\n" : "\n",
				       eol));
			/* The blank line follows, ending the same way. */
			ASSERT(ni + eol <= len && !memcmp(in + ni, out + at + tl,
							  eol));
			e = at + tl + eol;
			ls = out + s;
		} else {
			ASSERT(at >= o + 1 && out[at - 1] == ' ');
			s = at - 1;
			e = at + tl;
			for (ls = out + s; ls > out && ls[-1] != '\n'; ls--)
				;
		}
		ASSERT(!strncasecmp((const char *)ls, "user-agent:", 11));
		ASSERT(i + (s - o) <= len);
		ASSERT(!memcmp(out + o, in + i, s - o));
		i += s - o;
		o = e;
		count++;
	}
	ASSERT(r->len - o == len - i);
	ASSERT(!memcmp(out + o, in + i, len - i));
	return count;
}

/* Recipe bytes; zeros once it runs out. */
struct recipe {
	const uint8_t *p;
	size_t n;
};

static unsigned next(struct recipe *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

/* Appends to both the input and the expected output. */
static void both(struct evbuffer *in, struct evbuffer *exp, const void *p,
		 size_t n)
{
	ASSERT(!evbuffer_add(in, p, n));
	ASSERT(!evbuffer_add(exp, p, n));
}

static void visible(struct recipe *r, char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = 0x21 + next(r) % 94;
	buf[n] = '\0';
}

static void gen_body(struct recipe *r, int kind, unsigned clen,
		     const char *eol, struct evbuffer *in, struct evbuffer *exp)
{
	static const char ext[] = " ;ext=\"a b\";e";
	unsigned char data[64];
	char line[64];
	unsigned i, n, chunks;

	if (kind == 1) {
		for (i = 0; i < clen; i++)
			data[i] = next(r);
		both(in, exp, data, clen);
		return;
	}
	chunks = next(r) % 4;
	for (;;) {
		n = chunks ? next(r) % 40 + 1 : 0;
		i = next(r);
		snprintf(line, sizeof(line), i & 1 ? "%0*X" : "%0*x",
			 (int)(i >> 1 & 3), n);
		both(in, exp, line, strlen(line));
		if (i & 8)
			both(in, exp, ext, strlen(ext));
		both(in, exp, eol, strlen(eol));
		if (!n)
			break;
		for (i = 0; i < n; i++)
			data[i] = next(r);
		both(in, exp, data, n);
		both(in, exp, eol, strlen(eol));
		chunks--;
	}
	for (n = next(r) % 3; n; n--) {
		visible(r, line, next(r) % 8);
		both(in, exp, "Trailer: ", 9);
		both(in, exp, line, strlen(line));
		both(in, exp, eol, strlen(eol));
	}
	both(in, exp, eol, strlen(eol));
}

static void gen_request(struct recipe *r, const char *tag,
			struct evbuffer *in, struct evbuffer *exp)
{
	static const char *methods[] = { "GET", "POST", "PUT", "OPTIONS" };
	static const char *names[] = { "User-Agent", "user-agent",
				       "USER-AGENT", "uSeR-aGeNt" };
	unsigned b = next(r), nh = next(r) % 4, ua_at = next(r) % 5, i;
	const char *eol = b & 1 ? "\r\n" : "\n";
	int body = b >> 5 & 3;
	unsigned clen = next(r) % 64;
	char value[16], target[16];

	visible(r, target, next(r) % 8);
	evbuffer_add_printf(in, "%s /%s HTTP/1.%u%s", methods[b >> 1 & 3],
			    target, b >> 7, eol);
	evbuffer_add_printf(exp, "%s /%s HTTP/1.%u%s", methods[b >> 1 & 3],
			    target, b >> 7, eol);
	if (body == 1) {
		evbuffer_add_printf(in, "Content-Length: %u%s", clen, eol);
		evbuffer_add_printf(exp, "Content-Length: %u%s", clen, eol);
	} else if (body == 2) {
		evbuffer_add_printf(in, "Transfer-Encoding: chunked%s", eol);
		evbuffer_add_printf(exp, "Transfer-Encoding: chunked%s", eol);
	}
	for (i = 0; i <= nh; i++) {
		if (i == ua_at) {
			/* The UA: value, then maybe trailing OWS. */
			unsigned u = next(r);
			const char *ows = u & 4 ? " \t" : "";

			visible(r, value, u >> 3 & 15);
			evbuffer_add_printf(in, "%s: %s%s%s", names[u & 3],
					    value, ows, eol);
			if (*value)
				evbuffer_add_printf(exp, "%s: %s %s%s%s",
						    names[u & 3], value, tag,
						    ows, eol);
			else
				evbuffer_add_printf(exp, "%s: %s %s%s",
						    names[u & 3], tag, ows,
						    eol);
		}
		if (i < nh) {
			visible(r, value, next(r) % 12);
			evbuffer_add_printf(in, "X-F%u: %s%s", i, value, eol);
			evbuffer_add_printf(exp, "X-F%u: %s%s", i, value, eol);
		}
	}
	if (ua_at > nh)
		evbuffer_add_printf(exp, "User-Agent: %s%s", tag, eol);
	both(in, exp, eol, strlen(eol));
	if (body == 1 || body == 2)
		gen_body(r, body, clen, eol, in, exp);
}

/* Builds the stream and what the tagger must make of it; returns the
 * number of requests. */
static unsigned gen(struct recipe r, const char *tag, struct evbuffer *in,
		    struct evbuffer *exp)
{
	unsigned n = 0;

	while (r.n && n < 64) {
		gen_request(&r, tag, in, exp);
		n++;
	}
	return n;
}

static void same(const struct run *a, const struct run *b)
{
	ASSERT(a->len == b->len);
	ASSERT(!memcmp(a->out, b->out, a->len));
	ASSERT(a->requests == b->requests);
	ASSERT(a->raw == b->raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *gin = NULL, *gexp = NULL;
	struct recipe recipe = { data + 1, size ? size - 1 : 0 };
	unsigned generated = 0;
	char tag[HTTP_TAG_MAX];
	struct run r[4];
	size_t split, step, i;
	unsigned pid = 0;
	uint8_t ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	data++;
	size--;
	if (ctl >= 0xc0) {
		gin = evbuffer_new();
		gexp = evbuffer_new();
		ASSERT(gin && gexp);
		generated = gen(recipe, "", gin, gexp);
		size = evbuffer_get_length(gin);
		data = size ? evbuffer_pullup(gin, -1) : (const uint8_t *)"";
	}
	split = size * ctl / 255;
	step = (ctl % 13) + 1;

	/* A tag that does not occur in the input, so insertions can be
	 * found again in the output. */
	do
		http_format_tag(tag, sizeof(tag), "fz", pid++);
	while (memmem(data, size, tag, strlen(tag)));

	run(WHOLE, tag, data, size, split, step, &r[0]);
	run(SPLIT, tag, data, size, split, step, &r[1]);
	run(BYTES, tag, data, size, split, step, &r[2]);
	run(SPLICE, tag, data, size, split, step, &r[3]);
	for (i = 1; i < 4; i++)
		same(&r[0], &r[i]);

	ASSERT(r[0].len >= size);
	ASSERT(untag(&r[0], tag, data, size) == r[0].requests);
	if (!r[0].requests)
		ASSERT(r[0].len == size && !memcmp(r[0].out, data, size));

	/* Raw from the first byte means nothing was ever changed. */
	if (size) {
		struct http_tagger *t = http_tagger_new(tag);
		struct evbuffer *out = evbuffer_new();

		ASSERT(!http_tagger_feed(t, data, 1, out));
		if (http_tagger_is_raw(t))
			ASSERT(r[0].requests == 0 && r[0].raw);
		http_tagger_free(t);
		evbuffer_free(out);
	}

	if (gin) {
		/* Again with the tag chosen, for the expected output. */
		struct evbuffer *in2 = evbuffer_new();

		ASSERT(in2);
		evbuffer_drain(gexp, -1);
		gen(recipe, tag, in2, gexp);
		ASSERT(evbuffer_get_length(in2) == size);
		ASSERT(r[0].requests == generated && !r[0].raw);
		ASSERT(r[0].len == evbuffer_get_length(gexp));
		if (size) {
			ASSERT(!memcmp(evbuffer_pullup(in2, -1), data, size));
			ASSERT(!memcmp(r[0].out, evbuffer_pullup(gexp, -1),
				       r[0].len));
		}
		evbuffer_free(in2);
		evbuffer_free(gin);
		evbuffer_free(gexp);
	}
	for (i = 0; i < 4; i++)
		free(r[i].out);
	return 0;
}
