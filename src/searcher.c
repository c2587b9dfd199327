/* searcher: persistent MALA chains feeding a replay buffer (searcher.h). */
#include "diffsamp/searcher.h"

#include "diffsamp/mpicheck.h"
#include "diffsamp/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ds_searcher {
    MPI_Comm comm;
    const ds_energy *e;
    ds_searcher_config c;
    int n;          /* this rank's chains */
    long first;     /* global index of its first chain */
    ds_real *x;     /* (n, dim) */
    double step;    /* the adapted step, carried across rounds */
    long rounds;
};

static ds_status reduce_counts(void *ctx, double counts[2])
{
    ds_searcher *s = ctx;
    DS_MPI(MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_DOUBLE, MPI_SUM, s->comm));
    return DS_OK;
}

ds_status ds_searcher_create(MPI_Comm comm, const ds_energy *e, const ds_searcher_config *c, ds_searcher **out)
{
    DS_CHECK(out && e && c, DS_ERR_INVALID, "searcher: NULL argument");
    *out = NULL;
    DS_CHECK(c->chains >= 1 && c->steps >= 2 && c->keep >= 1 && c->keep < c->steps && c->init_var > 0 &&
                 isfinite(c->init_var),
             DS_ERR_INVALID, "searcher: need chains >= 1, 2 <= steps, 1 <= keep < steps, init_var > 0; got %ld, %d, "
             "%d, %g", c->chains, c->steps, c->keep, c->init_var);
    int rank, size;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    ds_searcher *s = calloc(1, sizeof *s);
    DS_ALLOC_CHECK(s);
    s->comm = comm;
    s->e = e;
    s->c = *c;
    const long base = c->chains / size, rem = c->chains % size;
    s->n = (int)(base + (rank < rem ? 1 : 0));
    s->first = rank * base + (rank < rem ? rank : rem);
    s->step = c->step;
    const int d = e->dim;
    s->x = ds_calloc((size_t)(s->n > 0 ? s->n : 1) * d, sizeof(ds_real));
    ds_status rc = s->x ? DS_OK : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                               "out of memory for %d searcher chains of dim %d", s->n, d);
    if (rc != DS_OK) {
        ds_searcher_destroy(&s);
        return rc;
    }
    /* the start: chain k's normals at (iteration 0, sample k, step 0) */
    const double sd = sqrt(c->init_var);
    const ds_rng r = ds_rng_make(c->seed, DS_RNG_SEARCHER);
    for (int k = 0; k < s->n; k++) {
        ds_real *xk = s->x + (size_t)k * d;
        ds_rng_normal(r, 0, (uint64_t)(s->first + k), 0, d, xk);
        for (int j = 0; j < d; j++) xk[j] = (ds_real)(sd * (double)xk[j]);
    }
    *out = s;
    return DS_OK;
}

void ds_searcher_destroy(ds_searcher **sp)
{
    if (!sp || !*sp) return;
    ds_searcher *s = *sp;
    ds_free(s->x);
    free(s);
    *sp = NULL;
}

ds_status ds_searcher_round(ds_searcher *s, uint64_t key, ds_buffer *out, ds_ls_stats *stats)
{
    DS_CHECK(key >= 1, DS_ERR_INVALID, "searcher round key must be >= 1 (0 keys the chain starts)");
    ds_ls_params p;
    ds_ls_params_init(&p);
    p.max_iter = s->c.steps;
    p.burn_in = s->c.steps - 1 - s->c.keep;  /* steps s > burn_in: the last `keep` */
    p.step = s->step;
    p.target_acceptance = s->c.target_acceptance;
    p.adapt_up = s->c.adapt_up;
    p.adapt_down = s->c.adapt_down;
    p.store_states = 1;
    p.reduce = reduce_counts;
    p.reduce_ctx = s;
    ds_ls_stats st;
    memset(&st, 0, sizeof st);
    DS_TRY(ds_ls_run(s->e, &p, ds_rng_make(s->c.seed, DS_RNG_SEARCHER), key, (uint64_t)s->first, s->n, s->x, out,
                     &st));
    s->step = st.final_step; /* the next round goes on from the step of this one's last step */
    s->rounds++;
    if (stats) *stats = st;
    return DS_OK;
}

double ds_searcher_step(const ds_searcher *s) { return s->step; }
long ds_searcher_rounds(const ds_searcher *s) { return s->rounds; }
const ds_real *ds_searcher_states(const ds_searcher *s, int *n)
{
    if (n) *n = s->n;
    return s->x;
}

ds_status ds_searcher_write(ds_ckpt_file *f, const ds_searcher *s)
{
    DS_TRY(ds_ckpt_write_group(f, "/searcher"));
    DS_TRY(ds_ckpt_write_rows(f, "/searcher/x", DS_H5_REAL, s->e->dim, (size_t)s->n, s->x,
                              "Searcher chain states (chains, dim), in global chain order."));
    DS_TRY(ds_ckpt_write_scalar(f, "/searcher/step", DS_H5_F64, &s->step, "Current (adapted) searcher MALA step."));
    int64_t rounds = s->rounds;
    return ds_ckpt_write_scalar(f, "/searcher/rounds", DS_H5_I64, &rounds, "Searcher rounds run so far.");
}

ds_status ds_searcher_read(ds_ckpt_file *f, ds_searcher *s)
{
    int nd = 0;
    size_t dims[2] = {0, 0};
    DS_TRY(ds_ckpt_shape(f, "/searcher/x", &nd, dims));
    DS_CHECK(nd == 2 && dims[0] == (size_t)s->c.chains && dims[1] == (size_t)s->e->dim, DS_ERR_FORMAT,
             "checkpoint %s: /searcher/x has shape (%zu, %zu), expected (%ld, %d): searcher.chains and the energy's "
             "dim must be those of the run that wrote it", ds_ckpt_path(f), dims[0], dims[1], s->c.chains,
             s->e->dim);
    DS_TRY(ds_ckpt_read_rows(f, "/searcher/x", DS_H5_REAL, s->e->dim, (size_t)s->first, (size_t)s->n, s->x));
    DS_TRY(ds_ckpt_read_scalar(f, "/searcher/step", DS_H5_F64, &s->step));
    int64_t rounds = 0;
    DS_TRY(ds_ckpt_read_scalar(f, "/searcher/rounds", DS_H5_I64, &rounds));
    s->rounds = (long)rounds;
    return DS_OK;
}
