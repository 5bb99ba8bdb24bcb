/* SipHash-2-4 against the reference test vectors (key 00..0f, message
 * 00..len-1). */
#include "check.h"
#include "siphash.h"

static void test_vectors(void)
{
	uint8_t key[16], msg[64];

	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	CHECK(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
	CHECK(siphash24(key, msg, 1) == 0x74f839c593dc67fdull);
	CHECK(siphash24(key, msg, 2) == 0x0d6c8009d9a94f5aull);
	CHECK(siphash24(key, msg, 15) == 0xa129ca6149be45e5ull); /* the paper's */
	CHECK(siphash24(key, msg, 63) == 0x958a324ceb064572ull);
	/* another key, another hash */
	key[0] ^= 1;
	CHECK(siphash24(key, msg, 15) != 0xa129ca6149be45e5ull);
}

int main(void)
{
	RUN("siphash", test_vectors);
	CHECK_EXIT();
}
