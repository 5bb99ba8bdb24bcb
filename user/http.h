/* HTTP/1.x User-Agent tagging of the client->server byte stream.
 *
 * Every request header block on a relayed connection gets the originating
 * process appended to its User-Agent (or a User-Agent line inserted).  The
 * tagger is a state machine over the stream: it holds only an incomplete
 * header block (at most HTTP_MAX_HEADER bytes), passes bodies and chunk
 * framing through as they come, and falls back to raw pass-through for good
 * as soon as anything does not look like HTTP/1.x.  In raw mode, and outside
 * the User-Agent line, output bytes equal input bytes. */
#ifndef SPROXY_HTTP_H
#define SPROXY_HTTP_H
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct http_tagger;

/* Largest header block (request line through the blank line) held. */
#define HTTP_MAX_HEADER 65536
/* Room http_format_tag() needs for a 16-byte comm and any pid. */
#define HTTP_TAG_MAX 64

/* tag: the text appended, e.g. "sproxy-bpf (comm=curl; pid=4242)".  Copied.
 * NULL on ENOMEM, or with errno EINVAL if tag holds control bytes (it would
 * let the caller inject header lines). */
struct http_tagger *http_tagger_new(const char *tag);
void http_tagger_free(struct http_tagger *t);

/* Consumes all len bytes of client->server stream data; appends what must
 * be sent to the server to out (rewritten headers, or bytes verbatim).
 * Bytes of an incomplete header block are held inside the tagger (bounded)
 * until more data arrives.  Returns 0, or -1 only on ENOMEM (then the
 * caller drops the connection). */
int http_tagger_feed(struct http_tagger *t, const void *data, size_t len,
		     struct evbuffer *out);

/* How many of the NEXT stream bytes are known to pass verbatim (the rest of
 * a Content-Length body, the rest of the current chunk's data), UINT64_MAX
 * once the stream is raw for good, 0 when the next bytes must be fed.
 * Returns 0 while anything is held inside the tagger. */
uint64_t http_tagger_verbatim(const struct http_tagger *t);

/* The caller forwarded n (<= http_tagger_verbatim()) bytes itself without
 * feeding them.  A larger n means the framing is lost: the tagger goes raw. */
void http_tagger_skip(struct http_tagger *t, uint64_t n);

/* Flush whatever is held (the connection is closing, or its header went
 * over a budget): appended verbatim to out.  If anything was held the
 * tagger is raw afterwards, and holds no memory.  0, or -1 on ENOMEM. */
int http_tagger_flush(struct http_tagger *t, struct evbuffer *out);

/* Bytes currently held (an incomplete header block): non-zero while a
 * request header is being collected, which is what a header deadline
 * times. */
size_t http_tagger_held(const struct http_tagger *t);
/* Bytes of memory the held block takes (its allocation), for a budget
 * over all connections; 0 between requests and once raw. */
size_t http_tagger_mem(const struct http_tagger *t);

/* Requests tagged so far; whether the stream is raw for good. */
uint64_t http_tagger_requests(const struct http_tagger *t);
int http_tagger_is_raw(const struct http_tagger *t);
/* Between requests with nothing held: a new tagger would go on the same
 * way (but for the request count), so this one may be freed until the
 * next byte comes. */
int http_tagger_at_rest(const struct http_tagger *t);

/* Builds the default tag (TAG_DEFAULT in tag.h), "sproxy-bpf (comm=COMM;
 * pid=PID)", into buf; COMM is sanitized (bytes outside printable ASCII and
 * any of "();\\\r\n" become '_').  Truncated, always NUL-terminated,
 * when size is too small (size 0 writes nothing).  Returns buf. */
char *http_format_tag(char *buf, size_t size, const char *comm, unsigned pid);

#endif
