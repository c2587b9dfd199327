/* fuzz_checkpoint: the checkpoint reader on any bytes, twice: as they are
 * (the completion record must refuse every damaged file before HDF5 opens
 * it), then resealed (fuzz_reseal.h) so that a mutation reaches HDF5 and the
 * checks of every dataset a resumed run reads. A crash, a sanitizer report
 * or a hang is a finding; a refusal is the expected answer. */
#include "fuzz_common.h"
#include "fuzz_reseal.h"

#include "diffsamp/h5io.h"
#include "diffsamp/metrics.h"
#include "diffsamp/nn.h"
#include "diffsamp/replay.h"
#include "diffsamp/restart.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mpi_init();
    return 0;
}

/* What ds_trainer_resume reads, through the same module readers. */
static ds_status load_all(ds_ckpt_file *f, void *ctx)
{
    (void)ctx;
    int nd = 0;
    size_t dims[2] = {0, 0};
    DS_TRY(ds_ckpt_shape(f, "/model/params", &nd, dims));
    if (nd != 1 || dims[0] > (1u << 22)) return DS_ERR_FORMAT;
    ds_arena a;
    memset(&a, 0, sizeof a);
    a.n = dims[0];
    a.params = ds_calloc(a.n + 1, sizeof(ds_real));
    a.m = ds_calloc(a.n + 1, sizeof(ds_real));
    a.v = ds_calloc(a.n + 1, sizeof(ds_real));
    ds_adam adam;
    memset(&adam, 0, sizeof adam);
    ds_status rc = a.params && a.m && a.v ? ds_arena_read(f, &a, &adam) : DS_ERR_NOMEM;
    ds_free(a.params);
    ds_free(a.m);
    ds_free(a.v);
    DS_TRY(rc);
    int64_t i64 = 0;
    int32_t i32 = 0;
    double f64 = 0;
    uint64_t u64 = 0;
    DS_TRY(ds_ckpt_read_scalar(f, "/state/iteration", DS_H5_I64, &i64));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/world_size", DS_H5_I32, &i32));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/ls_step", DS_H5_F64, &f64));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/rng_seed", DS_H5_U64, &u64));
    const char *tables[2] = {"/state/run", "/state/energy_calls"};
    for (int k = 0; k < 2; k++) {
        if (!ds_ckpt_has(f, tables[k])) continue;
        ds_ckpt_table t;
        DS_TRY(ds_ckpt_read_table(f, tables[k], 1, &t));
        ds_ckpt_table_free(&t);
    }
    ds_metrics_history h;
    ds_metrics_history_init(&h, ds_metrics_columns, ds_metrics_ncolumns);
    rc = ds_metrics_history_read(f, &h);
    ds_metrics_history_free(&h);
    DS_TRY(rc);
    const int dim = ds_ckpt_header(f)->dim;
    const char *names[2] = {"buffer", "buffer_ls"};
    for (int k = 0; k < 2 && dim <= 64; k++) {
        char group[64];
        snprintf(group, sizeof group, "/replay/%s", names[k]);
        if (!ds_ckpt_has(f, group)) continue;
        ds_buffer *b = NULL;
        DS_TRY(ds_buffer_create(1u << 15, dim, DS_PRIO_RANK, 1.0, 0.01, &b));
        ds_buffer_share sh;
        rc = ds_buffer_read(f, names[k], b, &sh);
        ds_buffer_destroy(&b);
        DS_TRY(rc);
    }
    return DS_OK;
}

static void read_checkpoint(const char *path)
{
    char found[600], warning[4096];
    ds_ckpt_data hdr;
    ds_status rc = ds_ckpt_find_load(MPI_COMM_WORLD, path, NULL, load_all, NULL, found, sizeof found, &hdr, warning,
                                     sizeof warning);
    fuzz_report(rc);
    fuzz_hdf5_census();
    if (rc == DS_OK) ds_ckpt_data_free(&hdr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 22)) return 0;
    const char *path = fuzz_write_file("ckpt", data, size);
    read_checkpoint(path);
    if (!getenv("DS_FUZZ_RAW_ONLY") && fuzz_reseal(path) == 0) read_checkpoint(path);
    unlink(path);
    return 0;
}
