/* rng: Philox4x32-10 and the distributions diffsamp draws from it. */
#include "diffsamp/rng.h"

#include <math.h>

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
    /* The same uniforms, with Box-Muller in float: the double libm calls were
     * a quarter of a many_well iteration. The float and double builds
     * therefore draw normals that agree to float rounding, not bit for bit. */
    const float two_pi = 6.2831853071795864769f;
    for (int i = 0; i < n; i += 2) {
        double u[2];
        block_uniforms(r, iteration, sample, step, (uint32_t)(i / 2), u);
        float rad = sqrtf(-2.0f * logf((float)u[0]));
        float ang = two_pi * (float)u[1];
        out[i] = rad * cosf(ang);
        if (i + 1 < n) out[i + 1] = rad * sinf(ang);
    }
#endif
}
