/* dist: MPI reductions and the local-search sample exchange. */
#include "diffsamp/dist.h"
#include "diffsamp/mpicheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ds_status ds_mpi_fail(int err, const char *file, int line, const char *func, const char *call)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error code %d", err);
    return ds_error_set(DS_ERR_MPI, file, line, func, "%s failed: %s", call, s);
}

static MPI_Datatype real_type(void) { return sizeof(ds_real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT; }

ds_status ds_dist_exchange(MPI_Comm comm, ds_buffer *ls, int count, ds_exchange mode, ds_rng r,
                           uint64_t iteration, long *received)
{
    int rank, size;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    if (received) *received = 0;
    DS_CHECK(count >= 0, DS_ERR_INVALID, "exchange count %d < 0", count);
    const int d = ds_buffer_dim(ls);
    size_t have = ds_buffer_size(ls);
    int n = count < (long)have ? count : (int)have;
    ds_real *x = ds_calloc((size_t)(n > 0 ? n : 1) * d, sizeof(ds_real));
    ds_real *lr = ds_calloc((size_t)(n > 0 ? n : 1), sizeof(ds_real));
    int *counts = calloc((size_t)size * 2, sizeof(int));
    ds_real *all_x = NULL, *all_lr = NULL;
    int *displs = counts ? counts + size : NULL;
    ds_status rc = DS_OK;
    if (!x || !lr || !counts) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for the exchange");
        goto done;
    }
    if (n > 0) {
        if (mode == DS_EXCH_BEST) {
            DS_TRY_GOTO(rc, ds_buffer_top(ls, n, x, lr), done);
        } else {
            /* uniform indices, with replacement, keyed by (iteration, rank) */
            for (int k = 0; k < n; k++) {
                double u;
                ds_rng_uniform_d(r, iteration, (uint64_t)rank * 1000003u + (uint64_t)k, 0, 1, &u);
                size_t i = (size_t)(u * (double)have);
                if (i >= have) i = have - 1;
                DS_TRY_GOTO(rc, ds_buffer_get(ls, i, x + (size_t)k * d, lr + k), done);
            }
        }
    }
    DS_MPI_GOTO(rc, done, MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, comm));
    long total = 0;
    for (int q = 0; q < size; q++) total += counts[q];
    all_x = ds_calloc((size_t)(total > 0 ? total : 1) * d, sizeof(ds_real));
    all_lr = ds_calloc((size_t)(total > 0 ? total : 1), sizeof(ds_real));
    if (!all_x || !all_lr) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for %ld exchanged samples", total);
        goto done;
    }
    /* log R first (counts in samples), then x (counts in reals). */
    displs[0] = 0;
    for (int q = 1; q < size; q++) displs[q] = displs[q - 1] + counts[q - 1];
    DS_MPI_GOTO(rc, done, MPI_Allgatherv(lr, n, real_type(), all_lr, counts, displs, real_type(), comm));
    for (int q = 0; q < size; q++) {
        counts[q] *= d;
        displs[q] *= d;
    }
    DS_MPI_GOTO(rc, done, MPI_Allgatherv(x, n * d, real_type(), all_x, counts, displs, real_type(), comm));
    for (int q = 0; q < size; q++) {
        counts[q] /= d;
        displs[q] /= d;
    }
    long added = 0;
    for (int q = 0; q < size; q++) {
        if (q == rank || counts[q] == 0) continue;
        DS_TRY_GOTO(rc, ds_buffer_add(ls, (size_t)counts[q], all_x + (size_t)displs[q] * d, all_lr + displs[q]), done);
        added += counts[q];
    }
    if (received) *received = added;
done:
    ds_free(x);
    ds_free(lr);
    ds_free(all_x);
    ds_free(all_lr);
    free(counts);
    return rc;
}

ds_status ds_dist_any(MPI_Comm comm, int flag, int *any)
{
    int in = flag != 0, out = 0;
    DS_MPI(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, comm));
    *any = out;
    return DS_OK;
}

/* (max, sum) pairs merged by a user-defined reduction. */
static void lse_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    ds_lse *a = inout;
    const ds_lse *b = in;
    for (int i = 0; i < *len; i++) ds_lse_merge(&a[i], &b[i]);
}

static ds_status dist_lse(MPI_Comm comm, ds_lse *a, int count)
{
    MPI_Op op;
    MPI_Datatype pair;
    DS_MPI(MPI_Type_contiguous(2, MPI_DOUBLE, &pair));
    DS_MPI(MPI_Type_commit(&pair));
    DS_MPI(MPI_Op_create(lse_op, 1, &op));
    ds_status rc = DS_OK;
    DS_MPI_GOTO(rc, done, MPI_Allreduce(MPI_IN_PLACE, a, count, pair, op, comm));
done:
    MPI_Op_free(&op);       /* cleanup: nothing to report beyond the first failure */
    MPI_Type_free(&pair);
    return rc;
}

ds_status ds_dist_logsumexp(MPI_Comm comm, const double *v, long n, double *out)
{
    ds_lse a;
    ds_lse_init(&a);
    for (long i = 0; i < n; i++) ds_lse_add(&a, v[i]);
    DS_TRY(dist_lse(comm, &a, 1));
    *out = ds_lse_value(&a);
    return DS_OK;
}

ds_status ds_dist_eval_weights(MPI_Comm comm, const double *log_w, long n, ds_eval_result *r)
{
    ds_lse a[2];
    ds_lse_init(&a[0]);
    ds_lse_init(&a[1]);
    double sums[2] = {0, (double)n};
    for (long i = 0; i < n; i++) {
        ds_lse_add(&a[0], log_w[i]);
        ds_lse_add(&a[1], 2.0 * log_w[i]);
        sums[0] += log_w[i];
    }
    DS_TRY(dist_lse(comm, a, 2));
    DS_MPI(MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, comm));
    const double N = sums[1], lse = ds_lse_value(&a[0]);
    r->elbo = sums[0] / N;
    r->log_z_is = lse - log(N);
    r->ess = exp(2.0 * lse - ds_lse_value(&a[1]) - log(N));
    if (r->has_log_z) {
        r->delta_log_z = fabs(r->log_z_true - r->elbo);
        r->delta_log_z_is = fabs(r->log_z_true - r->log_z_is);
    } else {
        r->delta_log_z = r->delta_log_z_is = NAN;
    }
    return DS_OK;
}

ds_status ds_dist_check_params(MPI_Comm comm, const ds_arena *a)
{
    /* FNV-1a over the bytes of the parameter array. */
    uint64_t h = UINT64_C(1469598103934665603);
    const unsigned char *p = (const unsigned char *)a->params;
    for (size_t i = 0; i < a->n * sizeof(ds_real); i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    unsigned long long mine = (unsigned long long)h, lo = 0, hi = 0;
    DS_MPI(MPI_Allreduce(&mine, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm));
    DS_MPI(MPI_Allreduce(&mine, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm));
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_CHECK(lo == hi, DS_ERR_NUMERIC,
             "parameters differ across ranks (checksums %016llx .. %016llx; this rank %d has %016llx): the ranks "
             "no longer run the same model", lo, hi, rank, mine);
    return DS_OK;
}
