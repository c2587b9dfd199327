/* rng: Philox4x32-10 and the distributions diffsamp draws from it. */
#include "diffsamp/rng.h"
#include "fp_contract.h"

#include <math.h>
#include <string.h>
#if !defined(DS_REAL_DOUBLE) && defined(__AVX__)
#include <immintrin.h>
#endif

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

void ds_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

ds_rng ds_rng_make(uint64_t seed, ds_rng_purpose purpose)
{
    ds_rng r;
    r.key[0] = (uint32_t)seed;
    r.key[1] = (uint32_t)(seed >> 32);
    r.purpose = (uint32_t)purpose;
    return r;
}

/* Two uniforms in (0,1) with 53 bits each from one Philox block. */
static void block_uniforms(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step,
                           uint32_t j, double u[2])
{
    uint32_t ctr[4] = {j, (uint32_t)sample, (step & 0xFFFFu) | (r.purpose << 16), (uint32_t)iteration};
    uint32_t o[4];
    ds_philox4x32_10(ctr, r.key, o);
    for (int k = 0; k < 2; k++) {
        uint64_t bits = ((uint64_t)o[2 * k] << 21) ^ (uint64_t)(o[2 * k + 1] >> 11);
        bits &= (UINT64_C(1) << 53) - 1;
        u[k] = ((double)bits + 0.5) * 0x1p-53;  /* never 0 or 1 */
    }
}

void ds_rng_uniform_d(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, int n, double *out)
{
    for (int i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(r, iteration, sample, step, (uint32_t)(i / 2), u);
        out[i] = u[0];
        if (i + 1 < n) out[i + 1] = u[1];
    }
}

void ds_rng_normal_d(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, int n, double *out)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (int i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(r, iteration, sample, step, (uint32_t)(i / 2), u);
        double rad = sqrt(-2.0 * log(u[0]));
        out[i] = rad * cos(two_pi * u[1]);
        if (i + 1 < n) out[i + 1] = rad * sin(two_pi * u[1]);
    }
}

#if !defined(DS_REAL_DOUBLE)
/* The float kernels below are bound by their arithmetic: they contract
 * multiply-adds into FMAs, take square roots as one vector instruction,
 * and multiply by reciprocals
 * of the series' constants instead of dividing; the Philox products are
 * one vpmuludq with AVX-512. Measured (build/rng_bench, d = 32): 9.7 ns
 * per normal before, 4.4 after. The float normals stay within 2e-6 of the
 * double ones (tests/test_rng.c). */
DS_FP_CONTRACT_BEGIN
typedef uint32_t v8u32 __attribute__((vector_size(32)));
typedef uint64_t v8u64 __attribute__((vector_size(64)));
typedef int32_t v8i32 __attribute__((vector_size(32)));
typedef float v8f32 __attribute__((vector_size(32)));
typedef double v8f64 __attribute__((vector_size(64)));

static inline v8f32 sel(v8i32 m, v8f32 a, v8f32 b) { return (v8f32)((m & (v8i32)a) | (~m & (v8i32)b)); }

/* log x for x in (0, 1]: x = m 2^e with m in [sqrt(1/2), sqrt 2), then
 * log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its series to s^11. */
static inline v8f32 vlog(v8f32 x)
{
    v8i32 bits = (v8i32)x;
    v8i32 e = ((bits >> 23) & 0xff) - 127;
    v8f32 m = (v8f32)((bits & 0x7fffff) | 0x3f800000);
    v8i32 big = m > 1.41421356f;
    m = sel(big, m * 0.5f, m);
    e = e + (big & 1);
    v8f32 t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
    v8f32 p = 2.0f * t * (1.0f + t2 * (1.0f / 3 + t2 * (1.0f / 5 + t2 * (1.0f / 7 + t2 * (1.0f / 9 + t2 * (1.0f / 11))))));
    return __builtin_convertvector(e, v8f32) * 0.693147180559945f + p;
}

/* sin and cos of a in (-pi, pi) from those of h = a/2 (Taylor to h^12 on
 * |h| < pi/2, error < 1e-8) and the double-angle formulas. */
static inline void vsincos(v8f32 a, v8f32 *sn, v8f32 *cs)
{
    v8f32 h = 0.5f * a, h2 = h * h;
    v8f32 s = h * (1.0f - h2 * (1.0f / 6) * (1.0f - h2 * (1.0f / 20) * (1.0f - h2 * (1.0f / 42) *
                  (1.0f - h2 * (1.0f / 72) * (1.0f - h2 * (1.0f / 110) * (1.0f - h2 * (1.0f / 156)))))));
    v8f32 c = 1.0f - h2 * 0.5f * (1.0f - h2 * (1.0f / 12) * (1.0f - h2 * (1.0f / 30) * (1.0f - h2 * (1.0f / 56) *
                  (1.0f - h2 * (1.0f / 90) * (1.0f - h2 * (1.0f / 132))))));
    *sn = 2.0f * s * c;
    *cs = 1.0f - 2.0f * s * s;
}

/* The 64-bit products of 32-bit lanes (one vpmuludq with AVX-512, where the
 * generic form compiles to the 3-uop 64 x 64 vpmullq). */
static inline v8u64 mul32x32(v8u32 a, uint32_t m)
{
#if defined(__AVX512F__)
    __m256i a32;
    memcpy(&a32, &a, sizeof a32);
    __m512i p = _mm512_mul_epu32(_mm512_cvtepu32_epi64(a32), _mm512_set1_epi64((long long)m));
    v8u64 r;
    memcpy(&r, &p, sizeof r);
    return r;
#else
    return __builtin_convertvector(a, v8u64) * (uint64_t)m;
#endif
}

/* 16 normals from 8 Philox blocks: lane k is block j[k] of sample s[k] at
 * (iteration, step), giving the normals 2j and 2j+1 of that sample's draw
 * (z[2k], z[2k+1]), as in the double path. Every lane computes the same way,
 * so a normal does not depend on which lane or call computed it. */
static void normal16_lanes(ds_rng r, uint64_t iteration, v8u32 s, uint32_t step, v8u32 j, float *z)
{
    v8u32 c0 = j;
    v8u32 c1 = s;
    v8u32 c2 = (v8u32){0} + ((step & 0xFFFFu) | (r.purpose << 16));
    v8u32 c3 = (v8u32){0} + (uint32_t)iteration;
    uint32_t k0 = r.key[0], k1 = r.key[1];
    for (int round = 0; round < 10; round++) {
        v8u64 p0 = mul32x32(c0, PHILOX_M0), p1 = mul32x32(c2, PHILOX_M1);
        v8u32 hi0 = __builtin_convertvector(p0 >> 32, v8u32), lo0 = __builtin_convertvector(p0, v8u32);
        v8u32 hi1 = __builtin_convertvector(p1 >> 32, v8u32), lo1 = __builtin_convertvector(p1, v8u32);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    /* the 53-bit uniforms of block_uniforms, in double, then to float */
    const uint64_t mask = (UINT64_C(1) << 53) - 1;
    v8u64 b0 = ((__builtin_convertvector(c0, v8u64) << 21) ^ __builtin_convertvector(c1 >> 11, v8u64)) & mask;
    v8u64 b1 = ((__builtin_convertvector(c2, v8u64) << 21) ^ __builtin_convertvector(c3 >> 11, v8u64)) & mask;
    v8f64 u0 = (__builtin_convertvector(b0, v8f64) + 0.5) * 0x1p-53;
    v8f64 u1 = (__builtin_convertvector(b1, v8f64) + 0.5) * 0x1p-53;
    v8f32 lu = vlog(__builtin_convertvector(u0, v8f32));
    v8f32 rad = -2.0f * lu;
#if defined(__AVX__)
    __m256 rr;
    memcpy(&rr, &rad, sizeof rr);
    rr = _mm256_sqrt_ps(rr);  /* correctly rounded, as sqrtf */
    memcpy(&rad, &rr, sizeof rr);
#else
    float radv[8];
    memcpy(radv, &rad, sizeof radv);
    for (int k = 0; k < 8; k++) radv[k] = sqrtf(radv[k]);
    memcpy(&rad, radv, sizeof radv);
#endif
    /* angle 2 pi u1 = pi + a, a in (-pi, pi): cos(2 pi u1) = -cos a, sin(2 pi u1) = -sin a */
    v8f32 a = __builtin_convertvector((u1 - 0.5) * 6.283185307179586, v8f32);
    v8f32 sn, cs;
    vsincos(a, &sn, &cs);
    v8f32 za = -rad * cs, zb = -rad * sn;
    float fa[8], fb[8];
    memcpy(fa, &za, sizeof fa);
    memcpy(fb, &zb, sizeof fb);
    for (int k = 0; k < 8; k++) {
        z[2 * k] = fa[k];
        z[2 * k + 1] = fb[k];
    }
}
static void normal16(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, uint32_t j0, float *z)
{
    v8u32 j = {0, 1, 2, 3, 4, 5, 6, 7};
    normal16_lanes(r, iteration, (v8u32){0} + (uint32_t)sample, step, j + j0, z);
}
DS_FP_CONTRACT_END
#endif

void ds_rng_normal_batch(ds_rng r, uint64_t iteration, uint64_t first, int count, uint32_t step, int d, ds_real *out)
{
#if defined(DS_REAL_DOUBLE)
    for (int b = 0; b < count; b++) ds_rng_normal(r, iteration, first + (uint64_t)b, step, d, out + (size_t)b * d);
#else
    if (d >= 16) {
        for (int b = 0; b < count; b++) ds_rng_normal(r, iteration, first + (uint64_t)b, step, d, out + (size_t)b * d);
        return;
    }
    /* Small d: the lanes run over (sample, block) pairs, 8 at a time. */
    const int nb = (d + 1) / 2;
    const long total = (long)count * nb;
    for (long q0 = 0; q0 < total; q0 += 8) {
        uint32_t sv[8], jv[8];
        for (int k = 0; k < 8; k++) {
            long q = q0 + k < total ? q0 + k : total - 1;
            sv[k] = (uint32_t)(first + (uint64_t)(q / nb));
            jv[k] = (uint32_t)(q % nb);
        }
        v8u32 s, j;
        memcpy(&s, sv, sizeof s);
        memcpy(&j, jv, sizeof j);
        float z[16];
        normal16_lanes(r, iteration, s, step, j, z);
        for (int k = 0; k < 8 && q0 + k < total; k++) {
            long q = q0 + k;
            ds_real *o = out + (size_t)(q / nb) * d;
            int jj = (int)(q % nb);
            o[2 * jj] = z[2 * k];
            if (2 * jj + 1 < d) o[2 * jj + 1] = z[2 * k + 1];
        }
    }
#endif
}

void ds_rng_normal(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, int n, ds_real *out)
{
#if defined(DS_REAL_DOUBLE)
    const double two_pi = 6.283185307179586476925286766559;
    for (int i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(r, iteration, sample, step, (uint32_t)(i / 2), u);
        double rad = sqrt(-2.0 * log(u[0]));
        out[i] = (ds_real)(rad * cos(two_pi * u[1]));
        if (i + 1 < n) out[i + 1] = (ds_real)(rad * sin(two_pi * u[1]));
    }
#else
    /* The same uniforms as the double path, Box-Muller in float, eight
     * Philox blocks at a time with vector extensions (the scalar libm
     * version was a fifth of a many_well iteration). A partial group runs
     * through the same lanes, so a draw never depends on n: a prefix of a
     * longer draw is the shorter draw. */
    for (int i = 0; i < n; i += 16) {
        float z[16];
        normal16(r, iteration, sample, step, (uint32_t)(i / 2), z);
        int k = n - i < 16 ? n - i : 16;
        for (int j = 0; j < k; j++) out[i + j] = z[j];
    }
#endif
}
