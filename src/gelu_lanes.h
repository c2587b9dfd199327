/* gelu_lanes: the float build's GELU on 16 lanes (one AVX-512 register;
 * compilers split it on narrower machines), shared by the GELU pass in
 * nn.c and the fused epilogue of the small products in smm.c.
 *
 * In float, glibc's erff and expf are scalar calls that cost more than all
 * the matrix products together (measured: 57% of an iteration). This version
 * uses GCC/Clang vector extensions and no branches:
 *   exp by Cody-Waite reduction and a degree-7 Taylor polynomial (relative
 *   error < 1e-7; 0 below -80, so no result is denormal and GELU' is exactly
 *   1 or 0 far out, where x exp(-x^2/2) would otherwise be x e^-80),
 *   erfc(a) = t exp(-a^2) P(t), t = 1/(1 + p a), Abramowitz & Stegun 7.1.26
 *   (absolute error < 1.5e-7), sharing exp(-x^2/2) with GELU'.
 * GELU stays the exact erf form, evaluated to within ~4e-7 absolute
 * (a few float ulps; tests/test_gelu.c); the double build uses libm.
 *
 * Include it between DS_FP_CONTRACT_BEGIN and DS_FP_CONTRACT_END
 * (fp_contract.h): the polynomials are written for fused multiply-adds, one
 * rounding instead of two per term and 35% less time for a kernel bound by
 * its arithmetic (measured in cache, 0.88 -> 0.57 ns per element; a
 * reciprocal estimate in place of the division gained nothing). */
#ifndef DS_GELU_LANES_H
#define DS_GELU_LANES_H

#include <stdint.h>

#define DS_LANES 16
typedef float ds_vf __attribute__((vector_size(4 * DS_LANES)));
typedef int32_t ds_vi __attribute__((vector_size(4 * DS_LANES)));

static inline ds_vf ds_vsel(ds_vi mask, ds_vf a, ds_vf b) { return (ds_vf)((mask & (ds_vi)a) | (~mask & (ds_vi)b)); }

static inline ds_vf ds_vexp(ds_vf x)
{
    const ds_vf lo = (ds_vf){0} - 80.0f; /* -80 in every lane */
    const ds_vi under = x < lo; /* exp underflows: 0 (also where x*x overflowed to -inf) */
    x = ds_vsel(under, lo, x);
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    ds_vf k = (x * 1.44269504088896341f + shifter) - shifter;
    ds_vf r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
    ds_vf p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    ds_vi e = (__builtin_convertvector(k, ds_vi) + 127) << 23;
    const ds_vf zero = {0}; /* every lane */
    return ds_vsel(under, zero, p * (ds_vf)e);
}

/* *o = GELU(v), *g = GELU'(v), lane by lane */
static inline void ds_vgelu(ds_vf v, ds_vf *o, ds_vf *g)
{
    ds_vf az = ds_vsel(v < 0, -v, v) * 0.70710678118654752440f;
    ds_vf E = ds_vexp(-0.5f * v * v);
    ds_vf t = 1.0f / (1.0f + 0.3275911f * az);
    ds_vf q = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    ds_vf h = 0.5f * q * E;  /* 0.5 erfc(|x|/sqrt 2) */
    ds_vf cdf = ds_vsel(v < 0, h, 1.0f - h);
    *o = v * cdf;
    *g = cdf + v * 0.39894228040143267794f * E;
}

#endif
