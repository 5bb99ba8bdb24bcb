/* --tag templates: what they accept, and what they expand to. */
#include <string.h>

#include "check.h"
#include "tag.h"

#define TAG "sproxy-bpf (comm=curl; pid=4242)"

static void templates(void)
{
	char buf[TAG_BUF], err[200];

	CHECK_STREQ(tag_format(buf, sizeof(buf), TAG_DEFAULT,
					     "curl", 4242, 1000, 100), TAG);
	CHECK_STREQ(tag_format(buf, sizeof(buf),
					     "app/%c uid=%u gid=%g pid=%p 100%%",
					     "a(b)\r", 7, 1000, 100),
		    "app/a_b__ uid=1000 gid=100 pid=7 100%");
	CHECK_STREQ(tag_format(buf, sizeof(buf), "fixed", "x", 1, 2, 3),
		    "fixed");
	CHECK_STREQ(tag_format(buf, 6, "%c-%p", "curl", 4242, 0, 0),
		    "curl-");
	CHECK(tag_template_check(TAG_DEFAULT, err, sizeof(err)) == 0);
	CHECK(tag_template_check("x %c %p %u %g %%", err, sizeof(err)) == 0);
	CHECK(tag_template_check("x %q", err, sizeof(err)) < 0);
	CHECK(strstr(err, "%q") != NULL);
	CHECK(tag_template_check("x %", err, sizeof(err)) < 0);
	CHECK(tag_template_check("a\r\nX-Injected: 1", err, sizeof(err)) < 0);
	CHECK(strstr(err, "0x0d") != NULL);
	CHECK(tag_template_check("caf\xc3\xa9", err, sizeof(err)) < 0);
	CHECK(tag_template_check("", err, sizeof(err)) < 0);
	memset(buf, 'a', TAG_TEMPLATE_MAX + 1);
	buf[TAG_TEMPLATE_MAX + 1] = 0;
	CHECK(tag_template_check(buf, err, sizeof(err)) < 0);
	/* The longest expansion of the longest template still fits. */
	for (int i = 0; i < TAG_TEMPLATE_MAX; i += 2)
		memcpy(buf + i, "%c", 2);
	buf[TAG_TEMPLATE_MAX] = 0;
	CHECK(tag_template_check(buf, err, sizeof(err)) == 0);
	{
		char out[TAG_BUF];

		tag_format(out, sizeof(out), buf, "0123456789abcde",
					 1, 2, 3);
		CHECK(strlen(out) == 15 * TAG_TEMPLATE_MAX / 2);
	}
}

int main(void)
{
	RUN("tag", templates);
	CHECK_EXIT();
}
