/* exact: exact-sample and SMC sample sets (see include/diffsamp/exact.h). */
#include "diffsamp/exact.h"
#include "diffsamp/h5io.h"
#include "diffsamp/mpicheck.h"
#include "diffsamp/rng.h"

#include <math.h>
#include <stdlib.h>

#define CHUNK 65536 /* samples per rank per append: bounds the memory of any N */

static const ds_samples_column exact_columns[] = {
    {"x", DS_H5_REAL, 1, "Exact samples of the target from its own sampler (diffsamp ground-truth)."},
    {"log_reward", DS_H5_F64, 0, "Log reward log R(x) = -E(x) of each sample."},
};

static const ds_samples_column smc_columns[] = {
    {"x", DS_H5_REAL, 1, "Final particles of the SMC baseline (diffsamp smc)."},
    {"log_reward", DS_H5_F64, 0, "Log reward log R(x) = -E(x) of each particle."},
    {"log_weight", DS_H5_F64, 0, "Normalised log-weight of each particle: log(N W_i), so exp averages to 1."},
};

static ds_status local_share(MPI_Comm comm, long total, long *n, long *first)
{
    int rank, size;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    const long base = total / size, extra = total % size;
    *n = base + (rank < extra);
    *first = rank * base + (rank < extra ? rank : extra);
    return DS_OK;
}

ds_status ds_exact_write(MPI_Comm comm, const ds_energy *e, long n_total, uint64_t seed, const char *config_yaml,
                         const char *path)
{
    DS_CHECK(e && path, DS_ERR_INVALID, "ds_exact_write: NULL argument");
    DS_CHECK(n_total >= 1, DS_ERR_CONFIG, "the number of samples must be positive, got %ld", n_total);
    DS_CHECK(ds_energy_has_sampler(e), DS_ERR_CONFIG, "energy '%s' has no exact sampler, so it has no ground truth",
             e->vt->name);
    long n_local = 0, first = 0;
    DS_TRY(local_share(comm, n_total, &n_local, &first));
    int size;
    DS_MPI(MPI_Comm_size(comm, &size));
    const int d = e->dim;
    ds_real *x = ds_calloc((size_t)CHUNK * d, sizeof(ds_real)), *lr = ds_calloc(CHUNK, sizeof(ds_real));
    double *lr64 = malloc(sizeof(double) * CHUNK);
    ds_samples_writer *w = NULL;
    const ds_h5_meta meta = {.energy = e->vt->name, .dim = d, .config_yaml = config_yaml};
    ds_status rc = x && lr && lr64 ? DS_OK
                                   : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                                  "out of memory for %d exact samples in d = %d", CHUNK, d);
    if (rc == DS_OK) rc = ds_samples_open_columns(comm, path, &meta, exact_columns, 2, (size_t)n_total, &w);
    /* every rank takes part in every append: as many rounds as the largest share */
    const long rounds = (n_total / size + (n_total % size ? 1 : 0) + CHUNK - 1) / CHUNK;
    const ds_rng r = ds_rng_make(seed, DS_RNG_GROUND_TRUTH);
    for (long k = 0; k < rounds && rc == DS_OK; k++) {
        const long c0 = k * CHUNK;
        const int n = c0 < n_local ? (int)(n_local - c0 < CHUNK ? n_local - c0 : CHUNK) : 0;
        if (n > 0) {
            rc = ds_energy_sample(e, r, (uint64_t)(first + c0), n, x);
            if (rc == DS_OK) rc = ds_energy_log_reward(e, n, x, lr, NULL);
            for (int i = 0; i < n; i++) lr64[i] = (double)lr[i];
        }
        if (rc == DS_OK) {
            const void *cols[2] = {x, lr64};
            rc = ds_samples_append_columns(w, (size_t)n, cols);
        }
    }
    if (rc == DS_OK) {
        ds_h5_metric m[1] = {{"log_z_true", e->log_z}};
        rc = ds_samples_close(&w, m, e->has_log_z ? 1 : 0);
    } else {
        ds_samples_abort(&w);
    }
    ds_free(x);
    ds_free(lr);
    free(lr64);
    return rc;
}

ds_status ds_smc_write(MPI_Comm comm, const ds_energy *e, const ds_smc_config *c, const char *config_yaml,
                       const char *path, ds_smc_result *res)
{
    DS_CHECK(e && c && path && res, DS_ERR_INVALID, "ds_smc_write: NULL argument");
    long n, first;
    DS_TRY(ds_smc_local(comm, c->particles, &n, &first));
    const int d = e->dim;
    const size_t m = (size_t)(n > 0 ? n : 1);
    ds_real *x = ds_calloc(m * d, sizeof(ds_real)), *lr = ds_calloc(m, sizeof(ds_real));
    double *lw = malloc(sizeof(double) * m), *lr64 = malloc(sizeof(double) * m);
    ds_status rc = x && lr && lw && lr64 ? DS_OK
                                         : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                                        "out of memory for %ld SMC particles", n);
    if (rc == DS_OK) rc = ds_smc_run(comm, e, c, x, lw, res);
    /* log R of the final particles for the file (the run keeps no copy) */
    if (rc == DS_OK && n > 0) rc = ds_energy_log_reward(e, (int)n, x, lr, NULL);
    for (long i = 0; i < n && rc == DS_OK; i++) lr64[i] = (double)lr[i];
    const ds_h5_meta meta = {.energy = e->vt->name, .dim = d, .config_yaml = config_yaml};
    ds_samples_writer *w = NULL;
    if (rc == DS_OK) rc = ds_samples_open_columns(comm, path, &meta, smc_columns, 3, (size_t)c->particles, &w);
    if (rc == DS_OK) {
        const void *cols[3] = {x, lr64, lw};
        rc = ds_samples_append_columns(w, (size_t)n, cols);
    }
    if (rc == DS_OK) {
        ds_h5_metric mt[7] = {{"log_z_smc", res->log_z},         {"ess", res->ess},
                              {"acceptance", res->acceptance},    {"resamplings", (double)res->resamplings},
                              {"energy_evals", (double)res->energy_evals}, {"log_z_true", e->log_z},
                              {"delta_log_z", fabs(e->log_z - res->log_z)}};
        rc = ds_samples_close(&w, mt, e->has_log_z ? 7 : 5);
    } else {
        ds_samples_abort(&w);
    }
    ds_free(x);
    ds_free(lr);
    free(lw);
    free(lr64);
    return rc;
}
