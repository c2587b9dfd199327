/* bench_replay: cost of ds_buffer_add and ds_buffer_sample at the paper's
 * buffer size (default 600,000 entries of d = 32, batches of 300) for each
 * priority, in the float build the program runs.
 * Usage: bench_replay [capacity] [dim] [batch] */
#include "diffsamp/replay.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    size_t cap = argc > 1 ? (size_t)atol(argv[1]) : 600000;
    int dim = argc > 2 ? atoi(argv[2]) : 32;
    int batch = argc > 3 ? atoi(argv[3]) : 300;
    if (cap == 0 || dim < 1 || batch < 1) {
        fprintf(stderr, "usage: bench_replay [capacity] [dim] [batch]\n");
        return 2;
    }
    const int nbatches = 64, reps = 500;
    /* pre-drawn data so that only the buffer is timed */
    ds_real *x = malloc(sizeof(ds_real) * (size_t)nbatches * batch * dim);
    ds_real *lr = malloc(sizeof(ds_real) * (size_t)nbatches * batch);
    ds_real *sx = malloc(sizeof(ds_real) * (size_t)batch * dim);
    ds_real *slr = malloc(sizeof(ds_real) * (size_t)batch);
    if (!x || !lr || !sx || !slr) return 1;
    ds_rng r = ds_rng_make(1, DS_RNG_TEST);
    ds_rng_normal(r, 0, 0, 0, nbatches * batch * dim, x);
    ds_rng_normal(r, 0, 1, 0, nbatches * batch, lr);
    const char *names[3] = {"uniform", "reward", "rank"};
    printf("replay buffer, %s build: capacity %zu, dim %d, batch %d\n", DS_REAL_NAME, cap, dim, batch);
    for (int prio = 0; prio < 3; prio++) {
        ds_buffer *b = NULL;
        if (ds_buffer_create(cap, dim, (ds_priority)prio, 1.0, 0.01, &b) != DS_OK) {
            fprintf(stderr, "%s\n", ds_error_message());
            return 1;
        }
        size_t nfill = (cap + (size_t)batch - 1) / (size_t)batch;
        double t0 = ds_wtime();
        for (size_t it = 0; it < nfill; it++) {
            size_t k = it % nbatches;
            if (ds_buffer_add(b, (size_t)batch, x + k * batch * dim, lr + k * batch) != DS_OK) return 1;
        }
        double t1 = ds_wtime();
        for (int it = 0; it < reps; it++) {
            size_t k = (size_t)it % nbatches;
            if (ds_buffer_add(b, (size_t)batch, x + k * batch * dim, lr + k * batch) != DS_OK) return 1;
        }
        double t2 = ds_wtime();
        ds_rng rb = ds_rng_make(2, DS_RNG_BUFFER);
        for (int it = 0; it < reps; it++)
            if (ds_buffer_sample(b, rb, (uint64_t)it, 0, batch, sx, slr) != DS_OK) return 1;
        double t3 = ds_wtime();
        ds_real *tx = malloc(sizeof(ds_real) * 100 * (size_t)dim);
        double t4 = ds_wtime();
        if (tx == NULL || ds_buffer_top(b, 100, tx, NULL) != DS_OK) return 1;
        double t5 = ds_wtime();
        printf("%-7s fill (%zu adds) %8.3f s | add when full %8.3f ms | sample %8.3f ms | top-100 %8.3f ms\n",
               names[prio], nfill, t1 - t0, (t2 - t1) / reps * 1e3, (t3 - t2) / reps * 1e3, (t5 - t4) * 1e3);
        free(tx);
        ds_buffer_destroy(&b);
    }
    free(x);
    free(lr);
    free(sx);
    free(slr);
    return 0;
}
