/* integrity_cost: what the checksums of issue 21 cost at the paper's buffer
 * size: a checkpoint with two replay buffers of N manywell states (default
 * 600000 of dimension 32 over all ranks) and a parameter arena, written
 * (CRC-32C of every dataset + the completion record) and read back
 * (the record verified before HDF5 opens the file, then every dataset).
 * Prints the time of each part and the share the checksums take.
 * Usage: [mpirun -np R] integrity_cost [N] [DIM] [PATH] */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/h5io.h"
#include "diffsamp/metrics.h"
#include "diffsamp/nn.h"
#include "diffsamp/replay.h"
#include "diffsamp/restart.h"
#include "../src/h5io_impl.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(expr)                                                                          \
    do {                                                                                  \
        ds_status rc_ = (expr);                                                           \
        if (rc_ != DS_OK) {                                                               \
            fprintf(stderr, "integrity_cost: %s: %s\n", #expr, ds_error_message());        \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                 \
        }                                                                                 \
    } while (0)

static double now(MPI_Comm c)
{
    MPI_Barrier(c);
    return MPI_Wtime();
}

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const long N = argc > 1 ? atol(argv[1]) : 600000;
    const int dim = argc > 2 ? atoi(argv[2]) : 32;
    const char *path = argc > 3 ? argv[3] : "/tmp/ds_integrity_cost.h5";
    const size_t first = (size_t)(N * rank / size), n = (size_t)(N * (rank + 1) / size) - first;
    ds_buffer *buf[2] = {NULL, NULL};
    ds_real *x = malloc(sizeof *x * n * (size_t)dim), *lr = malloc(sizeof *lr * n);
    if (!x || !lr) MPI_Abort(MPI_COMM_WORLD, 1);
    uint64_t z = 0x9E3779B97F4A7C15ull + (uint64_t)rank;
    for (size_t i = 0; i < n * (size_t)dim; i++) {
        z ^= z << 13, z ^= z >> 7, z ^= z << 17;
        x[i] = (ds_real)((double)(z >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    for (size_t i = 0; i < n; i++) lr[i] = (ds_real)(-(double)(first + i) * 1e-3);
    for (int b = 0; b < 2; b++) {
        OK(ds_buffer_create(n ? n : 1, dim, DS_PRIO_RANK, 1.0, 0.01, &buf[b]));
        OK(ds_buffer_add(buf[b], n, x, lr));
    }
    ds_arena a;
    ds_arena_init(&a);
    OK(ds_arena_add(&a, "w", 1, 100000, 0, NULL));
    OK(ds_arena_alloc(&a));
    ds_adam adam;
    ds_adam_init(&adam, 1e-3, 1e-1);
    ds_metrics_history h;
    ds_metrics_history_init(&h, ds_metrics_columns, ds_metrics_ncolumns);
    ds_eval_result r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < 50; i++) OK(ds_metrics_history_add(&h, &r));
    ds_h5_meta meta = {"many_well", dim, "energy:\n  name: many_well\n"};
    const char *names[2] = {"buffer", "buffer_ls"};
    enum { REPS = 3 };
    double t_write = 1e30, t_read = 1e30, t_verify = 1e30, t_heaps = 1e30, t_crc = 1e30;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = now(MPI_COMM_WORLD);
        ds_ckpt_file *f = NULL;
        OK(ds_ckpt_create(MPI_COMM_WORLD, path, &meta, &f));
        OK(ds_arena_write(f, &a, &adam));
        OK(ds_metrics_history_write(f, &h));
        OK(ds_ckpt_write_group(f, "/replay"));
        for (int b = 0; b < 2; b++) OK(ds_buffer_write(f, names[b], buf[b]));
        OK(ds_ckpt_commit(&f));
        double t1 = now(MPI_COMM_WORLD);
        /* the checksums the writer computes: every rank's rows of both buffers, and the arena */
        uint32_t c = 0;
        for (int b = 0; b < 2; b++) {
            c ^= ds_crc32c(0, x, sizeof *x * n * (size_t)dim);
            c ^= ds_crc32c(0, lr, sizeof *lr * n);
        }
        for (int k = 0; k < 3; k++) c ^= ds_crc32c(0, a.params, sizeof(ds_real) * a.n);
        double t2 = now(MPI_COMM_WORLD);
        int sealed = 0;
        ds_h5_index ix = {0, 0, NULL};
        OK(ds_h5_verify_file(MPI_COMM_WORLD, path, "checkpoint", &sealed, &ix));
        double t3 = now(MPI_COMM_WORLD);
        OK(ds_h5_check_heaps(MPI_COMM_WORLD, path, "checkpoint", &ix));
        double t4 = now(MPI_COMM_WORLD);
        ds_h5_index_free(&ix);
        OK(ds_ckpt_open(MPI_COMM_WORLD, path, NULL, &f));
        OK(ds_arena_read(f, &a, &adam));
        for (int b = 0; b < 2; b++) OK(ds_buffer_read(f, names[b], buf[b], NULL));
        OK(ds_ckpt_close(&f));
        double t5 = now(MPI_COMM_WORLD);
        if (!sealed || c == 0x12345678u) fprintf(stderr, "(unsealed?)\n");
        if (t1 - t0 < t_write) t_write = t1 - t0;
        if (t2 - t1 < t_crc) t_crc = t2 - t1;
        if (t3 - t2 < t_verify) t_verify = t3 - t2;
        if (t4 - t3 < t_heaps) t_heaps = t4 - t3;
        if (t5 - t4 < t_read) t_read = t5 - t4;
    }
    if (rank == 0) {
        FILE *fp = fopen(path, "rb");
        long bytes = 0;
        if (fp && fseek(fp, 0, SEEK_END) == 0) bytes = ftell(fp);
        if (fp) fclose(fp);
        printf("checkpoint: 2 buffers x %ld states of dim %d + %zu parameters, %.1f MB, %d rank(s); best of %d\n",
               N, dim, a.n, bytes / 1e6, size, REPS);
        printf("  write (ds_ckpt_create .. commit, checksums and record included) %8.1f ms\n", 1e3 * t_write);
        printf("    of which the in-memory CRC-32C of the data (same bytes again)  %8.1f ms (%.1f%%)\n",
               1e3 * t_crc, 100 * t_crc / t_write);
        printf("  read (ds_ckpt_open .. close: record, heaps, every dataset)       %8.1f ms\n", 1e3 * t_read);
        printf("    of which the completion record (every byte read and CRC'd)   %8.1f ms (%.1f%%)\n",
               1e3 * t_verify, 100 * t_verify / t_read);
        printf("    and the global-heap check                                    %8.1f ms (%.1f%%)\n",
               1e3 * t_heaps, 100 * t_heaps / t_read);
    }
    remove(path);
    ds_metrics_history_free(&h);
    ds_arena_free(&a);
    for (int b = 0; b < 2; b++) ds_buffer_destroy(&buf[b]);
    free(x);
    free(lr);
    MPI_Finalize();
    return 0;
}
