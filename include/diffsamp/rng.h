/* rng: counter-based random numbers (Philox4x32-10, Salmon et al. SC'11).
 *
 * A draw is a pure function of (seed, purpose, iteration, sample, step, j):
 * the 64-bit seed is the Philox key and the counter is
 *   c0 = j (block index within the draw), c1 = global sample index,
 *   c2 = step | purpose << 16, c3 = iteration.
 * So a trajectory does not depend on how many ranks share the batch, and
 * restoring the generator after a restart is restoring an iteration number.
 * Normals come from Box-Muller evaluated in double, so the float and double
 * builds see the same noise. */
#ifndef DS_RNG_H
#define DS_RNG_H

#include "diffsamp/core.h"

#include <stdint.h>

/* What a stream is for: streams with different purposes never overlap. */
typedef enum ds_rng_purpose {
    DS_RNG_INIT = 1,         /* network initialisation (iteration = tensor id) */
    DS_RNG_FORWARD = 2,      /* forward-trajectory noise */
    DS_RNG_BACKWARD = 3,     /* backward-trajectory noise */
    DS_RNG_EVAL = 4,         /* evaluation trajectories */
    DS_RNG_EVAL_BACKWARD = 5,/* evaluation backward paths (log-likelihood) */
    DS_RNG_GROUND_TRUTH = 6, /* exact samples of a target */
    DS_RNG_BUFFER = 7,       /* replay-buffer draws */
    DS_RNG_LOCAL_SEARCH = 8, /* MALA proposals and accept tests */
    DS_RNG_EXCHANGE = 9,     /* random choice of exchanged samples */
    DS_RNG_SAMPLES = 10,     /* sample sets (samples.h5, diffsamp sample) */
    DS_RNG_SMC = 11,         /* SMC baseline: initial particles, MALA moves, resampling */
    DS_RNG_CONDITION = 12,   /* training conditions drawn each iteration (conditional targets) */
    DS_RNG_SEARCHER = 13,    /* MCMC searcher: chain starts (iteration 0) and MALA moves */
    DS_RNG_TEST = 15         /* tests and tools */
} ds_rng_purpose;

/* The raw bijection: out = Philox4x32-10(ctr, key). */
void ds_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A stream: a seed and a purpose. Cheap to copy; holds no state. */
typedef struct ds_rng {
    uint32_t key[2];
    uint32_t purpose;
} ds_rng;

ds_rng ds_rng_make(uint64_t seed, ds_rng_purpose purpose);

/* n standard normals for (iteration, sample, step), written to out[0..n-1]. */
void ds_rng_normal(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, int n, ds_real *out);
/* d normals for each of count samples first .. first+count-1 at
 * (iteration, step) into out (count, d): exactly what count calls of
 * ds_rng_normal would write, computed several samples at a time. */
void ds_rng_normal_batch(ds_rng r, uint64_t iteration, uint64_t first, int count, uint32_t step, int d, ds_real *out);
/* The same in double (for samplers and statistics). */
void ds_rng_normal_d(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, int n, double *out);
/* n uniforms in the open interval (0, 1), 53-bit resolution. */
void ds_rng_uniform_d(ds_rng r, uint64_t iteration, uint64_t sample, uint32_t step, int n, double *out);

#endif
