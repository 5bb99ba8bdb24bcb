/* The text appended to User-Agents: a template (--tag) filled in with the
 * process of each connection. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tag.h"

/* A comm is whatever the process named itself: keep it from breaking
 * out of the header line or the tag's own punctuation. */
static void sanitize_comm(char *safe, size_t size, const char *comm)
{
	size_t i;

	if (!comm)
		comm = "";
	for (i = 0; comm[i] && i < size - 1; i++) {
		unsigned char c = comm[i];
		bool odd = c < 0x20 || c > 0x7e || strchr("();\\", c);

		safe[i] = odd ? '_' : c;
	}
	safe[i] = '\0';
}

int tag_template_check(const char *tpl, char *err, size_t errlen)
{
	size_t i, n = strlen(tpl);

	if (!n || n > TAG_TEMPLATE_MAX) {
		snprintf(err, errlen, "a template has 1 to %d characters, not %zu",
			 TAG_TEMPLATE_MAX, n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = tpl[i];

		if (c < 0x20 || c > 0x7e) {
			snprintf(err, errlen, "byte 0x%02x at %zu: a template is printable "
				 "ASCII", c, i);
			return -1;
		}
		if (c != '%')
			continue;
		if (!tpl[i + 1] || !strchr("cpug%", tpl[i + 1])) {
			char what[8];

			if (tpl[i + 1])
				snprintf(what, sizeof(what), "'%%%c'", tpl[i + 1]);
			else
				snprintf(what, sizeof(what), "'%%'");
			snprintf(err, errlen, "%s at %zu: a template knows %%c (comm), %%p "
				 "(pid), %%u (uid), %%g (gid) and %%%% (a '%%')", what, i);
			return -1;
		}
		i++;
	}
	return 0;
}

char *tag_format(char *buf, size_t size, const char *tpl, const char *comm,
		 unsigned pid, unsigned uid, unsigned gid)
{
	char safe[TAG_COMM_MAX], num[16];
	size_t o = 0;

	if (!size)
		return buf;
	sanitize_comm(safe, sizeof(safe), comm);
	for (; *tpl && o < size - 1; tpl++) {
		const char *add = num;
		size_t n;

		if (*tpl != '%' || !tpl[1]) {
			buf[o++] = *tpl;
			continue;
		}
		switch (*++tpl) {
		case 'c': add = safe; break;
		case 'p': snprintf(num, sizeof(num), "%u", pid); break;
		case 'u': snprintf(num, sizeof(num), "%u", uid); break;
		case 'g': snprintf(num, sizeof(num), "%u", gid); break;
		default: num[0] = *tpl; num[1] = '\0'; break;
		}
		n = strlen(add);
		if (n > size - 1 - o)
			n = size - 1 - o;
		memcpy(buf + o, add, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}
