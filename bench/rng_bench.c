/* rng_bench: ns per normal of the batched normal generator at the shapes
 * training draws (a batch of 300 states of dimension d per step), the best
 * of many repetitions, and a hash of the draws (equal hashes: equal bits).
 * Not a test; `build/rng_bench [d ...]` (default 2 32 1600). */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/core.h"
#include "diffsamp/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    const int B = 300;
    const int defaults[] = {2, 32, 1600};
    const int nd = argc > 1 ? argc - 1 : 3;
    printf("normals of ds_rng_normal_batch (%s), a batch of %d states per call, best of the repetitions\n",
           DS_REAL_NAME, B);
    for (int k = 0; k < nd; k++) {
        const int d = argc > 1 ? atoi(argv[k + 1]) : defaults[k];
        if (d < 1) {
            fprintf(stderr, "rng_bench: dimension '%s' is not a positive integer\n", argv[k + 1]);
            return 2;
        }
        ds_real *z = ds_calloc((size_t)B * d, sizeof *z);
        if (!z) return 1;
        const ds_rng r = ds_rng_make(12345, DS_RNG_FORWARD);
        const int reps = d >= 1000 ? 50 : 2000;
        double best = 1e30;
        uint32_t h = 2166136261u;
        for (int rep = 0; rep < reps; rep++) {
            double t = now();
            ds_rng_normal_batch(r, (uint64_t)rep, 0, B, 7, d, z);
            t = now() - t;
            if (t < best) best = t;
            const unsigned char *bytes = (const unsigned char *)z;
            for (size_t i = 0; i < sizeof *z * (size_t)B * d; i++) h = (h ^ bytes[i]) * 16777619u;
        }
        printf("d %5d: %8.1f us per call, %6.2f ns per normal, hash %08x\n", d, best * 1e6,
               best * 1e9 / ((double)B * d), (unsigned)h);
        ds_free(z);
    }
    return 0;
}
