/* restart: the checkpoint groups of the parameter arena with Adam and of the
 * replay buffers (layout in restart.h). */
#include "diffsamp/restart.h"
#include "diffsamp/mpicheck.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FAIL_RC(rc, label, code, ...)                                              \
    do {                                                                        \
        (rc) = ds_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__); \
        goto label;                                                             \
    } while (0)

ds_status ds_arena_write(ds_ckpt_file *f, const ds_arena *a, const ds_adam *adam)
{
    DS_TRY(ds_ckpt_write_array(f, "/model/params", DS_H5_REAL, a->n, a->params,
                               "Flat parameter array of the sampler (policy, log Z or flow, Langevin scaling) in arena "
                               "order."));
    DS_TRY(ds_ckpt_write_array(f, "/optimizer/m", DS_H5_REAL, a->n, a->m, "Adam first moment, same layout as "
                               "/model/params."));
    DS_TRY(ds_ckpt_write_array(f, "/optimizer/v", DS_H5_REAL, a->n, a->v, "Adam second moment, same layout as "
                               "/model/params."));
    int64_t step = (int64_t)adam->step;
    DS_TRY(ds_ckpt_write_scalar(f, "/optimizer/step", DS_H5_I64, &step, "Number of Adam steps taken (bias "
                                "correction)."));
    return DS_OK;
}

ds_status ds_arena_read(ds_ckpt_file *f, ds_arena *a, ds_adam *adam)
{
    int nd = 0;
    size_t dims[2] = {0, 0};
    DS_TRY(ds_ckpt_shape(f, "/model/params", &nd, dims));
    DS_CHECK(nd == 1, DS_ERR_FORMAT, "checkpoint %s: /model/params has %d dimensions, expected 1", ds_ckpt_path(f), nd);
    DS_CHECK(dims[0] == a->n, DS_ERR_CONFIG,
             "checkpoint %s: /model/params has shape (%zu) but this model has shape (%zu): the checkpoint was "
             "written by a differently configured network (sampler.* settings)",
             ds_ckpt_path(f), dims[0], a->n);
    DS_TRY(ds_ckpt_read_array(f, "/model/params", DS_H5_REAL, a->n, a->params));
    DS_TRY(ds_ckpt_read_array(f, "/optimizer/m", DS_H5_REAL, a->n, a->m));
    DS_TRY(ds_ckpt_read_array(f, "/optimizer/v", DS_H5_REAL, a->n, a->v));
    int64_t step = 0;
    DS_TRY(ds_ckpt_read_scalar(f, "/optimizer/step", DS_H5_I64, &step));
    adam->step = (long)step;
    return DS_OK;
}

/* "/replay/<name>" and its datasets. */
typedef struct replay_names {
    char group[DS_NAME_MAX + 16], x[DS_NAME_MAX + 32], log_r[DS_NAME_MAX + 32], counts[DS_NAME_MAX + 32];
} replay_names;

static void names_of(const char *name, replay_names *n)
{
    snprintf(n->group, sizeof n->group, "/replay/%s", name);
    snprintf(n->x, sizeof n->x, "%s/x", n->group);
    snprintf(n->log_r, sizeof n->log_r, "%s/log_r", n->group);
    snprintf(n->counts, sizeof n->counts, "%s/counts", n->group);
}

static int plain_name(const char *s)
{
    if (!s || !*s || strlen(s) >= DS_NAME_MAX) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

ds_status ds_buffer_write(ds_ckpt_file *f, const char *name, const ds_buffer *b)
{
    MPI_Comm comm = ds_ckpt_comm(f);
    int size;
    DS_MPI(MPI_Comm_size(comm, &size));
    /* The name must be plain (one link under /replay) and the same on every
     * rank; rank 0's is compared with everyone's. */
    char mine[DS_NAME_MAX] = "", root[DS_NAME_MAX] = "";
    ds_status rc = DS_OK;
    if (!plain_name(name) || !b)
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                          "checkpoint %s: buffer name '%s' must be 1-%d letters, digits or '_'%s", ds_ckpt_path(f),
                          name ? name : "(null)", DS_NAME_MAX - 1, b ? "" : " (and the buffer not NULL)");
    else
        snprintf(mine, sizeof mine, "%s", name);
    memcpy(root, mine, sizeof root);
    DS_MPI(MPI_Bcast(root, DS_NAME_MAX, MPI_CHAR, 0, comm));
    if (rc == DS_OK && strcmp(root, mine) != 0)
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                          "checkpoint %s: buffer '%s' is named '%s' on rank 0", ds_ckpt_path(f), mine, root);
    DS_TRY(ds_ckpt_agree(f, rc));
    replay_names nm;
    names_of(name, &nm);
    const int d = ds_buffer_dim(b);
    const size_t n = ds_buffer_size(b);
    ds_real *x = ds_calloc((n ? n : 1) * (size_t)d, sizeof(ds_real)), *lr = ds_calloc(n ? n : 1, sizeof(ds_real));
    int64_t *counts = ds_calloc((size_t)size, sizeof *counts);
    rc = x && lr && counts ? DS_OK
                           : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory exporting buffer %s",
                                          name);
    if (rc == DS_OK && n) rc = ds_buffer_export(b, x, lr);
    DS_TRY_GOTO(rc, ds_ckpt_agree(f, rc), done);
    int64_t n64 = (int64_t)n, capacity = (int64_t)ds_buffer_capacity(b);
    DS_MPI_GOTO(rc, done, MPI_Allgather(&n64, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, comm));
    DS_TRY_GOTO(rc, ds_ckpt_write_group(f, nm.group), done);
    DS_TRY_GOTO(rc, ds_ckpt_write_attr(f, nm.group, "capacity", DS_H5_I64, &capacity), done);
    DS_TRY_GOTO(rc, ds_ckpt_write_rows(f, nm.x, DS_H5_REAL, d, n, x,
                                       "Replay-buffer states of every writer rank in rank order, each shard oldest "
                                       "first."), done);
    DS_TRY_GOTO(rc, ds_ckpt_write_rows(f, nm.log_r, DS_H5_REAL, 0, n, lr, "Log reward log R(x) of each row of x."),
                done);
    DS_TRY_GOTO(rc, ds_ckpt_write_array(f, nm.counts, DS_H5_I64, (size_t)size, counts,
                                        "Rows of x contributed by each writer rank, in rank order."), done);
done:
    ds_free(x);
    ds_free(lr);
    ds_free(counts);
    return rc;
}

ds_status ds_buffer_read(ds_ckpt_file *f, const char *name, ds_buffer *b, ds_buffer_share *share)
{
    MPI_Comm comm = ds_ckpt_comm(f);
    int rank, size;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    replay_names nm;
    names_of(name, &nm);
    const int d = ds_buffer_dim(b);
    int64_t cap = 0;
    DS_TRY(ds_ckpt_read_attr(f, nm.group, "capacity", DS_H5_I64, &cap));
    int nd = 0;
    size_t xd[2] = {0, 0}, cd[2] = {0, 0};
    DS_TRY(ds_ckpt_shape(f, nm.counts, &nd, cd));
    DS_CHECK(nd == 1 && cd[0] >= 1 && cd[0] < (size_t)INT32_MAX, DS_ERR_FORMAT, "checkpoint %s: %s is empty or not a "
             "vector", ds_ckpt_path(f), nm.counts);
    int64_t *counts = ds_calloc(cd[0], sizeof *counts);
    DS_ALLOC_CHECK(counts);
    ds_real *x = NULL, *lr = NULL;
    ds_status rc = DS_OK;
    DS_TRY_GOTO(rc, ds_ckpt_read_array(f, nm.counts, DS_H5_I64, cd[0], counts), done);
    DS_TRY_GOTO(rc, ds_ckpt_shape(f, nm.x, &nd, xd), done);
    int64_t sum = 0;
    for (size_t k = 0; k < cd[0]; k++) {
        if (counts[k] < 0)
            FAIL_RC(rc, done, DS_ERR_FORMAT, "checkpoint %s: %s has a negative count", ds_ckpt_path(f), nm.counts);
        sum += counts[k];
    }
    if (nd != 2 || xd[1] != (size_t)d || (size_t)sum != xd[0])
        FAIL_RC(rc, done, DS_ERR_FORMAT, "checkpoint %s: %s sums to %lld rows but %s has shape (%zu, %zu), expected "
                "(%lld, %d)", ds_ckpt_path(f), nm.counts, (long long)sum, nm.x, xd[0], xd[1], (long long)sum, d);
    ds_buffer_share sh = {xd[0], 0, 0, (int)cd[0]};
    if (sh.writer_ranks == size) {
        /* Same number of ranks: every rank gets back exactly its own shard. */
        for (int k = 0; k < rank; k++) sh.first += (size_t)counts[k];
        sh.n_local = (size_t)counts[rank];
    } else {
        const unsigned long long N = sh.n_total;
        sh.first = (size_t)(N * (unsigned long long)rank / (unsigned long long)size);
        sh.n_local = (size_t)(N * (unsigned long long)(rank + 1) / (unsigned long long)size) - sh.first;
    }
    x = ds_calloc((sh.n_local ? sh.n_local : 1) * (size_t)d, sizeof(ds_real));
    lr = ds_calloc(sh.n_local ? sh.n_local : 1, sizeof(ds_real));
    rc = x && lr ? DS_OK
                 : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for %zu rows of %s",
                                sh.n_local, nm.group);
    DS_TRY_GOTO(rc, ds_ckpt_agree(f, rc), done);
    DS_TRY_GOTO(rc, ds_ckpt_read_rows(f, nm.x, DS_H5_REAL, d, sh.first, sh.n_local, x), done);
    DS_TRY_GOTO(rc, ds_ckpt_read_rows(f, nm.log_r, DS_H5_REAL, 0, sh.first, sh.n_local, lr), done);
    rc = ds_ckpt_agree(f, ds_buffer_import(b, sh.n_local, x, lr));
    if (rc == DS_OK && share) *share = sh;
done:
    ds_free(counts);
    ds_free(x);
    ds_free(lr);
    return rc;
}
