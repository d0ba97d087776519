/* Self-contained SHA-256 (FIPS 180-4) for the state-tree extension.
 *
 * Two compression functions: the x86 SHA extensions (SHA-NI, chosen at run time
 * by CPUID) and a portable C one.  Both are checked against hashlib by
 * tests/zapdb/test_native.py on every length from 0 to 300 bytes. */
#ifndef ZAP_SHA256_H
#define ZAP_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const uint32_t zsha_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t zsha_IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ZROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void zsha_compress_c(uint32_t st[8], const uint8_t *p, size_t blocks) {
    uint32_t w[64];
    while (blocks--) {
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                   (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = ZROR(w[i - 15], 7) ^ ZROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = ZROR(w[i - 2], 17) ^ ZROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6],
                 h = st[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + (ZROR(e, 6) ^ ZROR(e, 11) ^ ZROR(e, 25)) + ((e & f) ^ (~e & g)) +
                          zsha_K[i] + w[i];
            uint32_t t2 = (ZROR(a, 2) ^ ZROR(a, 13) ^ ZROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        st[0] += a;
        st[1] += b;
        st[2] += c;
        st[3] += d;
        st[4] += e;
        st[5] += f;
        st[6] += g;
        st[7] += h;
        p += 64;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define ZSHA_HAVE_NI 1

__attribute__((target("sha,sse4.1,ssse3"))) static void zsha_compress_ni(uint32_t st[8],
                                                                         const uint8_t *p,
                                                                         size_t blocks) {
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&st[0]);
    __m128i s1 = _mm_loadu_si128((const __m128i *)&st[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);
    s1 = _mm_shuffle_epi32(s1, 0x1B);
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);
    while (blocks--) {
        __m128i abef = s0, cdgh = s1, w[4], msg;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            if (g < 4)
                w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), MASK);
            msg = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&zsha_K[4 * g]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            if (g >= 3 && g <= 14) {
                __m128i t = _mm_alignr_epi8(w[g & 3], w[(g + 3) & 3], 4);
                w[(g + 1) & 3] = _mm_add_epi32(w[(g + 1) & 3], t);
                w[(g + 1) & 3] = _mm_sha256msg2_epu32(w[(g + 1) & 3], w[g & 3]);
            }
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
            if (g >= 1 && g <= 12) w[(g + 3) & 3] = _mm_sha256msg1_epu32(w[(g + 3) & 3], w[g & 3]);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
        p += 64;
    }
    tmp = _mm_shuffle_epi32(s0, 0x1B);
    s1 = _mm_shuffle_epi32(s1, 0xB1);
    s0 = _mm_blend_epi16(tmp, s1, 0xF0);
    s1 = _mm_alignr_epi8(s1, tmp, 8);
    _mm_storeu_si128((__m128i *)&st[0], s0);
    _mm_storeu_si128((__m128i *)&st[4], s1);
}

static int zsha_cpu_has_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0; /* SSE4.1, SSSE3 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1; /* SHA */
}
#else
#define ZSHA_HAVE_NI 0
#endif

typedef void (*zsha_compress_fn)(uint32_t *, const uint8_t *, size_t);
static zsha_compress_fn zsha_compress = zsha_compress_c;

/* Pick the compression function; force_portable=1 keeps the C one (tests). */
static const char *zsha_select(int force_portable) {
#if ZSHA_HAVE_NI
    if (!force_portable && zsha_cpu_has_ni()) {
        zsha_compress = zsha_compress_ni;
        return "sha-ni";
    }
#endif
    (void)force_portable;
    zsha_compress = zsha_compress_c;
    return "portable";
}

static void zsha_out(const uint32_t st[8], uint8_t out[32]) {
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st[i] >> 8);
        out[4 * i + 3] = (uint8_t)st[i];
    }
}

/* sha256 of an arbitrary message. */
static void zsha256(const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint32_t st[8];
    uint8_t tail[128];
    memcpy(st, zsha_IV, sizeof st);
    size_t full = len / 64;
    if (full) zsha_compress(st, msg, full);
    size_t rest = len - full * 64;
    memcpy(tail, msg + full * 64, rest);
    tail[rest] = 0x80;
    size_t tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    memset(tail + rest + 1, 0, tlen - rest - 1);
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
    zsha_compress(st, tail, tlen / 64);
    zsha_out(st, out);
}

/* sha256(tag || a || b) for two 32-byte inputs: the leaf and node hashes (65 bytes). */
static void zsha256_tagged(uint8_t tag, const uint8_t a[32], const uint8_t b[32], uint8_t out[32]) {
    uint32_t st[8];
    uint8_t blk[128];
    memcpy(st, zsha_IV, sizeof st);
    blk[0] = tag;
    memcpy(blk + 1, a, 32);
    memcpy(blk + 33, b, 32);
    blk[65] = 0x80;
    memset(blk + 66, 0, 60);
    blk[126] = 0x02; /* 520 bits = 0x0208 */
    blk[127] = 0x08;
    zsha_compress(st, blk, 2);
    zsha_out(st, out);
}

#endif
