/* The status client's pieces: the JSON reader that takes the daemon's
 * answer apart (and refuses what is not JSON), the registry of live
 * connections, control socket paths, and the printing helpers. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "control.h"
#include "json.h"
#include "live.h"
#include "status.h"

static struct json *parse(const char *s)
{
	char err[160];

	return json_parse(s, strlen(s), err, sizeof(err));
}

static void reads_documents(void)
{
	struct json *j = parse(" {\"a\":1,\"b\":[true,false,null,-2.5e1],"
			       "\"c\":{\"d\":\"x\\\"y\\\\z\\n\\u00e9\\ud83d\\ude00\"}} \n");
	const struct json *b, *e;

	CHECK(j != NULL);
	CHECK(json_num(j, "a", 0) == 1);
	b = json_get(j, "b");
	CHECK(b && b->type == JSON_ARR);
	e = b ? b->child : NULL;
	CHECK(e && e->type == JSON_BOOL && e->num == 1);
	CHECK(e && e->next && e->next->type == JSON_BOOL && e->next->num == 0);
	CHECK(e && e->next && e->next->next && e->next->next->type == JSON_NULL);
	CHECK(e && e->next && e->next->next && e->next->next->next->num == -25);
	CHECK_STREQ(json_str(json_get(j, "c"), "d", NULL), "x\"y\\z\n\xc3\xa9\xf0\x9f\x98\x80");
	CHECK(json_get(j, "missing") == NULL);
	CHECK(json_num(j, "c", 7) == 7);            /* an object, not a number */
	CHECK_STREQ(json_str(j, "a", "dflt"), "dflt");
	json_free(j);
	j = parse("[]");
	CHECK(j && j->type == JSON_ARR && !j->child);
	json_free(j);
	j = parse("{}");
	CHECK(j && j->type == JSON_OBJ && !j->child);
	json_free(j);
	/* NUL cannot live in a C string. */
	j = parse("\"a\\u0000b\"");
	CHECK(j && strcmp(j->str, "a\xef\xbf\xbd" "b") == 0);
	json_free(j);
}

static void refuses_garbage(void)
{
	static const char *const bad[] = {
		"", "{", "[1,", "{\"a\" 1}", "{\"a\":1,}", "[1 2]", "\"abc", "\"\\x\"",
		"\"\\u12\"", "tru", "{} x", "{1:2}", "\"a\nb\"", "-", "1e", "[\"\\ud800\\u0041\"]",
	};
	char deep[200], err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json *j = parse(bad[i]);

		if (j)
			printf("  accepted: %s\n", bad[i]);
		CHECK(j == NULL);
		json_free(j);
	}
	memset(deep, '[', sizeof(deep));
	CHECK(json_parse(deep, sizeof(deep), err, sizeof(err)) == NULL);
	CHECK(strstr(err, "deep") != NULL);
	/* Only n bytes are read: a document cut short is refused. */
	CHECK(json_parse("{\"a\":12}", 6, err, sizeof(err)) == NULL);
}

static void registry(void)
{
	struct live_list l = { 0 };
	struct live a = { 0 }, b = { 0 }, c = { 0 };

	live_add(&l, &a);
	live_add(&l, &b);
	live_add(&l, &c);
	live_add(&l, &b);           /* twice: still once */
	CHECK(l.n == 3 && l.head == &c && c.next == &b && b.next == &a);
	CHECK(a.id != b.id && b.id != c.id && a.id);
	live_del(&b);
	live_del(&b);               /* not linked: nothing */
	CHECK(l.n == 2 && l.head == &c && c.next == &a && a.prev == &c);
	live_del(&c);
	live_del(&a);
	CHECK(l.n == 0 && l.head == NULL);
	live_add(&l, &a);
	CHECK(a.id > c.id);         /* ids are never reused */
	live_del(&a);
}

static void paths(void)
{
	char buf[200], longdir[120];

	CHECK(control_path(buf, sizeof(buf), "/run/sproxy-bpf", 4242) == 0);
	CHECK_STREQ(buf, "/run/sproxy-bpf/4242.sock");
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = 0;
	CHECK(control_path(buf, sizeof(buf), longdir, 1) < 0);   /* past sun_path */
	CHECK_STREQ(control_dir("/x"), "/x");
	setenv(CONTROL_DIR_ENV, "/env", 1);
	CHECK_STREQ(control_dir(NULL), "/env");
	CHECK_STREQ(control_dir("/x"), "/x");
	setenv(CONTROL_DIR_ENV, "", 1);
	CHECK_STREQ(control_dir(NULL), CONTROL_DIR_DEFAULT);
	unsetenv(CONTROL_DIR_ENV);
	CHECK_STREQ(control_dir(NULL), CONTROL_DIR_DEFAULT);
}

static void printing(void)
{
	char buf[400];
	struct json *c;

	CHECK_STREQ(fmt_bytes(buf, sizeof(buf), 12), "12 B");
	CHECK_STREQ(fmt_bytes(buf, sizeof(buf), 1536), "1.5 KiB");
	CHECK_STREQ(fmt_bytes(buf, sizeof(buf), 3.0 * 1024 * 1024 * 1024), "3.0 GiB");
	CHECK_STREQ(fmt_age(buf, sizeof(buf), 1.25), "1.2s");
	CHECK_STREQ(fmt_age(buf, sizeof(buf), 125), "2m05s");
	CHECK_STREQ(fmt_age(buf, sizeof(buf), 7322), "2h02m");
	CHECK_STREQ(fmt_age(buf, sizeof(buf), 90000), "1d01h");
	c = parse("{\"dst\":\"[2001:db8::1]:443\",\"host\":\"ex\\u001bample.test\"}");
	CHECK_STREQ(fmt_dest(buf, sizeof(buf), c), "ex\\x1bample.test:443 ([2001:db8::1]:443)");
	json_free(c);
	c = parse("{\"dst\":\"203.0.113.10:7\"}");
	CHECK_STREQ(fmt_dest(buf, sizeof(buf), c), "203.0.113.10:7");
	json_free(c);
}

int main(void)
{
	RUN("status", reads_documents);
	RUN("status", refuses_garbage);
	RUN("status", registry);
	RUN("status", paths);
	RUN("status", printing);
	CHECK_EXIT();
}
