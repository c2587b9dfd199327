/* searcher: persistent MALA chains feeding a replay buffer (searcher.h). */
#include "diffsamp/searcher.h"

#include "diffsamp/mpicheck.h"
#include "diffsamp/rng.h"
#include "diffsamp/smc.h"

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

static MPI_Datatype real_type(void) { return sizeof(ds_real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT; }

/* The SMC start: SMC with one particle per chain (the same split over the
 * ranks), then systematic resampling of the gathered final particles (one
 * uniform at (iteration 0, sample = chains, step 1) of the searcher's
 * stream) so that every chain starts from an equally weighted particle. */
static ds_status smc_start(ds_searcher *s)
{
    const int d = s->e->dim;
    int size;
    DS_MPI(MPI_Comm_size(s->comm, &size));
    ds_smc_config sc;
    ds_smc_config_defaults(&sc);
    sc.particles = s->c.chains;
    sc.levels = s->c.smc_levels;
    sc.init_var = s->c.init_var;
    sc.seed = s->c.seed;
    const long N = s->c.chains;
    double *lw = malloc(sizeof(double) * (size_t)(s->n > 0 ? s->n : 1));
    double *all_lw = malloc(sizeof(double) * (size_t)N);
    ds_real *all_x = ds_calloc((size_t)N * d, sizeof(ds_real));
    int *cnt = malloc(sizeof(int) * 4 * (size_t)size);
    ds_status rc = lw && all_lw && all_x && cnt ? DS_OK
                                               : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                                              "out of memory for the SMC start of %ld chains", N);
    /* every rank takes the same path: a local failure here is reported after the collectives would hang */
    int bad = rc != DS_OK, any = 0;
    DS_MPI_GOTO(rc, done, MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, s->comm));
    if (any && rc == DS_OK) rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "another rank ran out of memory");
    ds_smc_result res;
    if (rc == DS_OK) rc = ds_smc_run(s->comm, s->e, &sc, s->x, lw, &res);
    if (rc == DS_OK) {
        int *cd = cnt + size, *dp = cnt + 2 * size, *dd = cnt + 3 * size, mine = s->n;
        DS_MPI_GOTO(rc, done, MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, s->comm));
        dp[0] = 0;
        for (int q = 1; q < size; q++) dp[q] = dp[q - 1] + cnt[q - 1];
        for (int q = 0; q < size; q++) {
            cd[q] = cnt[q] * d;
            dd[q] = dp[q] * d;
        }
        DS_MPI_GOTO(rc, done, MPI_Allgatherv(s->x, s->n * d, real_type(), all_x, cd, dd, real_type(), s->comm));
        DS_MPI_GOTO(rc, done, MPI_Allgatherv(lw, s->n, MPI_DOUBLE, all_lw, cnt, dp, MPI_DOUBLE, s->comm));
        double mx = -INFINITY, tot = 0;
        for (long i = 0; i < N; i++) mx = all_lw[i] > mx ? all_lw[i] : mx;
        for (long i = 0; i < N; i++) tot += exp(all_lw[i] - mx);
        double u;
        ds_rng_uniform_d(ds_rng_make(s->c.seed, DS_RNG_SEARCHER), 0, (uint64_t)N, 1, 1, &u);
        long anc = 0;
        double cum = exp(all_lw[0] - mx) / tot;
        for (long k = 0; k < s->first + s->n; k++) {
            const double point = (u + (double)k) / (double)N;
            while (cum < point && anc + 1 < N) cum += exp(all_lw[++anc] - mx) / tot;
            if (k >= s->first)
                memcpy(s->x + (size_t)(k - s->first) * d, all_x + (size_t)anc * d, sizeof(ds_real) * (size_t)d);
        }
    }
done:
    free(lw);
    free(all_lw);
    ds_free(all_x);
    free(cnt);
    return rc;
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
    if (c->smc_levels > 0) {
        rc = smc_start(s);
        if (rc != DS_OK) {
            ds_searcher_destroy(&s);
            return rc;
        }
        *out = s;
        return DS_OK;
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
