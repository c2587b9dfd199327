/* Tests of the replay buffer: FIFO order and capacity edges, the three
 * priorities against their exact probabilities (chi-square with fixed seeds),
 * rank ties, reward-priority stability, top-n, export/import and the
 * reproducibility of draws. */
#include "diffsamp/replay.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries carry their id in x[0] (and -id in x[1]) so draws can be told apart. */
static void make_entries(int n, int dim, int id0, const double *lr, ds_real *x, ds_real *log_r)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++) x[i * dim + j] = (ds_real)(j == 0 ? id0 + i : -(id0 + i) - 0.5 * j);
        log_r[i] = (ds_real)lr[i];
    }
}

static int entry_id(const ds_real *x) { return (int)lround((double)x[0]); }

static ds_buffer *new_buffer(size_t cap, int dim, ds_priority prio, double beta, double rank_weight)
{
    ds_buffer *b = NULL;
    ds_status rc = ds_buffer_create(cap, dim, prio, beta, rank_weight, &b);
    ck_assert_msg(rc == DS_OK, "%s", ds_error_message());
    return b;
}

static void add_ok(ds_buffer *b, size_t n, const ds_real *x, const ds_real *lr)
{
    ds_status rc = ds_buffer_add(b, n, x, lr);
    ck_assert_msg(rc == DS_OK, "%s", ds_error_message());
}

START_TEST(create_rejects_bad_arguments)
{
    ds_buffer *b = NULL;
    ck_assert_int_eq(ds_buffer_create(0, 2, DS_PRIO_UNIFORM, 1, 0.01, &b), DS_ERR_INVALID);
    ck_assert_int_eq(ds_buffer_create(10, 0, DS_PRIO_UNIFORM, 1, 0.01, &b), DS_ERR_INVALID);
    ck_assert_int_eq(ds_buffer_create(10, 2, DS_PRIO_REWARD, -1.0, 0.01, &b), DS_ERR_INVALID);
    ck_assert_int_eq(ds_buffer_create(10, 2, DS_PRIO_REWARD, NAN, 0.01, &b), DS_ERR_INVALID);
    ck_assert_int_eq(ds_buffer_create(10, 2, DS_PRIO_RANK, 1.0, 0.0, &b), DS_ERR_INVALID);
    ck_assert_int_eq(ds_buffer_create(10, 2, (ds_priority)7, 1.0, 0.01, &b), DS_ERR_INVALID);
    ck_assert_ptr_null(b);
    /* settings a priority does not use are not checked */
    ck_assert_int_eq(ds_buffer_create(10, 2, DS_PRIO_UNIFORM, -1.0, 0.0, &b), DS_OK);
    ck_assert_uint_eq(ds_buffer_capacity(b), 10);
    ck_assert_int_eq(ds_buffer_dim(b), 2);
    ck_assert_uint_eq(ds_buffer_size(b), 0);
    ck_assert_int_eq(ds_buffer_priority(b), DS_PRIO_UNIFORM);
    ds_buffer_destroy(&b);
    ck_assert_ptr_null(b);
    ds_buffer_destroy(&b);  /* NULL is fine */
}
END_TEST

START_TEST(fifo_eviction_order)
{
    for (int prio = 0; prio < 3; prio++) {
        ds_buffer *b = new_buffer(5, 2, (ds_priority)prio, 1.0, 0.01);
        ds_real x[14], lr[7];
        double v[7] = {3, 1, 4, 1, 5, 9, 2};
        make_entries(7, 2, 0, v, x, lr);
        add_ok(b, 3, x, lr);
        ck_assert_uint_eq(ds_buffer_size(b), 3);
        add_ok(b, 4, x + 6, lr + 3);  /* evicts ids 0 and 1 */
        ck_assert_uint_eq(ds_buffer_size(b), 5);
        for (int i = 0; i < 5; i++) {
            ds_real xi[2], li;
            ck_assert_int_eq(ds_buffer_get(b, (size_t)i, xi, &li), DS_OK);
            ck_assert_int_eq(entry_id(xi), i + 2);
            ck_assert(li == lr[i + 2]);
            ck_assert(xi[1] == x[(i + 2) * 2 + 1]);
        }
        ck_assert_int_eq(ds_buffer_get(b, 5, NULL, NULL), DS_ERR_INVALID);
        /* one at a time keeps evicting the oldest */
        for (int k = 0; k < 3; k++) add_ok(b, 1, x + 2 * k, lr + k);
        int want[5] = {5, 6, 0, 1, 2};
        for (int i = 0; i < 5; i++) {
            ds_real xi[2];
            ck_assert_int_eq(ds_buffer_get(b, (size_t)i, xi, NULL), DS_OK);
            ck_assert_int_eq(entry_id(xi), want[i]);
        }
        ds_buffer_destroy(&b);
    }
}
END_TEST

START_TEST(capacity_edges)
{
    for (int prio = 0; prio < 3; prio++) {
        /* capacity 1 */
        ds_buffer *b = new_buffer(1, 2, (ds_priority)prio, 1.0, 0.01);
        ds_real x[20], lr[10], out[8], olr[4];
        double v[10] = {0.5, -2, 7, 1, 1, 3, -1, 0, 2, 6};
        make_entries(10, 2, 100, v, x, lr);
        ds_rng r = ds_rng_make(1, DS_RNG_BUFFER);
        ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 4, out, olr), DS_ERR_INVALID);  /* empty */
        ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 0, out, olr), DS_OK);
        ck_assert_int_eq(ds_buffer_top(b, 1, out, olr), DS_ERR_INVALID);
        add_ok(b, 3, x, lr);
        ck_assert_uint_eq(ds_buffer_size(b), 1);
        ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 4, out, olr), DS_OK);
        for (int k = 0; k < 4; k++) {
            ck_assert_int_eq(entry_id(out + 2 * k), 102);
            ck_assert(olr[k] == lr[2]);
        }
        add_ok(b, 1, x + 2, lr + 1);
        ck_assert_int_eq(ds_buffer_top(b, 1, out, olr), DS_OK);
        ck_assert_int_eq(entry_id(out), 101);
        ds_buffer_destroy(&b);

        /* a batch larger than the capacity keeps its tail, in order */
        b = new_buffer(4, 2, (ds_priority)prio, 1.0, 0.01);
        add_ok(b, 2, x, lr);
        add_ok(b, 10, x, lr);
        ck_assert_uint_eq(ds_buffer_size(b), 4);
        for (int i = 0; i < 4; i++) {
            ds_real xi[2];
            ck_assert_int_eq(ds_buffer_get(b, (size_t)i, xi, NULL), DS_OK);
            ck_assert_int_eq(entry_id(xi), 106 + i);
        }
        ck_assert_int_eq(ds_buffer_top(b, 4, out, olr), DS_OK);
        int want[4] = {109, 108, 107, 106};  /* log R 6, 2, 0, -1 */
        for (int i = 0; i < 4; i++) ck_assert_int_eq(entry_id(out + 2 * i), want[i]);
        ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 4, out, NULL), DS_OK);
        for (int k = 0; k < 4; k++) ck_assert(entry_id(out + 2 * k) >= 106);
        ck_assert_int_eq(ds_buffer_top(b, 5, out, olr), DS_ERR_INVALID);
        ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, -1, out, olr), DS_ERR_INVALID);

        /* clear empties it; sampling is refused again */
        ds_buffer_clear(b);
        ck_assert_uint_eq(ds_buffer_size(b), 0);
        ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 1, out, olr), DS_ERR_INVALID);
        add_ok(b, 1, x, lr);
        ck_assert_int_eq(ds_buffer_top(b, 1, out, NULL), DS_OK);
        ck_assert_int_eq(entry_id(out), 100);
        ds_buffer_destroy(&b);
    }
}
END_TEST

START_TEST(non_finite_log_r_refused)
{
    ds_buffer *b = new_buffer(8, 1, DS_PRIO_RANK, 1.0, 0.01);
    ds_real x[3] = {0, 1, 2}, lr[3] = {0, (ds_real)NAN, 1};
    ck_assert_int_eq(ds_buffer_add(b, 3, x, lr), DS_ERR_NUMERIC);
    ck_assert_uint_eq(ds_buffer_size(b), 0);
    lr[1] = (ds_real)INFINITY;
    ck_assert_int_eq(ds_buffer_add(b, 3, x, lr), DS_ERR_NUMERIC);
    ck_assert_int_eq(ds_buffer_add(b, 3, NULL, lr), DS_ERR_INVALID);
    lr[1] = (ds_real)-INFINITY;  /* allowed: the lowest rank */
    add_ok(b, 3, x, lr);
    ds_real top[3];
    ck_assert_int_eq(ds_buffer_top(b, 3, top, NULL), DS_OK);
    ck_assert(top[0] == 2 && top[1] == 0 && top[2] == 1);
    ds_buffer_destroy(&b);

    /* reward priority: -inf is never drawn; all -inf cannot be drawn from */
    b = new_buffer(8, 1, DS_PRIO_REWARD, 1.0, 0.01);
    ds_real ninf[2] = {(ds_real)-INFINITY, (ds_real)-INFINITY};
    add_ok(b, 2, x, ninf);
    ds_rng r = ds_rng_make(3, DS_RNG_BUFFER);
    ds_real out[64];
    ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 4, out, NULL), DS_ERR_NUMERIC);
    add_ok(b, 3, x, lr);
    ck_assert_int_eq(ds_buffer_sample(b, r, 0, 0, 64, out, NULL), DS_OK);
    for (int k = 0; k < 64; k++) ck_assert(out[k] == 0 || out[k] == 2);
    ds_buffer_destroy(&b);
}
END_TEST

/* Draws `draws` entries in chunks of varying size and returns the
 * chi-square statistic of the counts against p (cells with p = 0 must stay
 * empty). Entry ids are 0..m-1 in x[0]. */
static double chi_square(const ds_buffer *b, const double *p, int m, int draws, uint64_t seed)
{
    const int dim = ds_buffer_dim(b);
    long *count = calloc((size_t)m, sizeof(long));
    ds_real *x = malloc(sizeof(ds_real) * 997 * (size_t)dim);
    ds_real *lr = malloc(sizeof(ds_real) * 997);
    ds_rng r = ds_rng_make(seed, DS_RNG_BUFFER);
    int done = 0, chunk = 1;
    while (done < draws) {
        int n = draws - done < chunk ? draws - done : chunk;
        ck_assert_int_eq(ds_buffer_sample(b, r, 5, (uint64_t)done, n, x, lr), DS_OK);
        for (int k = 0; k < n; k++) {
            int id = entry_id(x + (size_t)k * dim);
            ck_assert(id >= 0 && id < m);
            count[id]++;
        }
        done += n;
        chunk = (chunk + 13) % 997 + 1;  /* 1..997 */
    }
    double chi2 = 0.0;
    for (int i = 0; i < m; i++) {
        if (p[i] == 0.0) {
            ck_assert_int_eq(count[i], 0);
            continue;
        }
        double e = p[i] * draws;
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    free(count);
    free(x);
    free(lr);
    return chi2;
}

/* A buffer of 12 distinct-id entries reached through wrap-around and
 * eviction: ids 0..11 end up live, ids 100.. are evicted. */
static ds_buffer *priority_buffer(ds_priority prio, double beta, double rank_weight, const double *v)
{
    ds_buffer *b = new_buffer(12, 3, prio, beta, rank_weight);
    ds_real x[3 * 12], lr[12];
    double junk[7] = {50, -50, 3, 1e3, 2, 0, 60};
    make_entries(7, 3, 100, junk, x, lr);
    add_ok(b, 7, x, lr);
    make_entries(5, 3, 0, v, x, lr);
    add_ok(b, 5, x, lr);
    make_entries(7, 3, 5, v + 5, x, lr);  /* evicts the 7 junk entries */
    add_ok(b, 7, x, lr);
    ck_assert_uint_eq(ds_buffer_size(b), 12);
    return b;
}

START_TEST(priorities_match_exact_probabilities)
{
    /* 11 degrees of freedom: the 0.999 quantile is 31.3; 45 is generous and
     * the seed is fixed, so this is deterministic. */
    const double limit = 45.0;
    const int draws = 200000;
    double v[12] = {0.3, -1.2, 2.5, 0.0, 1.7, -0.4, 3.1, 0.9, -2.2, 1.1, 2.0, -0.8};
    double p[12];

    /* uniform */
    ds_buffer *b = priority_buffer(DS_PRIO_UNIFORM, 1.0, 0.01, v);
    for (int i = 0; i < 12; i++) p[i] = 1.0 / 12;
    double chi2 = chi_square(b, p, 12, draws, 11);
    printf("uniform chi2 = %.2f\n", chi2);
    ck_assert_double_lt(chi2, limit);
    ds_buffer_destroy(&b);

    /* reward, with log R offset by 5000 so that a naive exp overflows */
    const double beta = 0.8;
    double vo[12];
    for (int i = 0; i < 12; i++) vo[i] = 5000.0 + v[i];
    b = priority_buffer(DS_PRIO_REWARD, beta, 0.01, vo);
    double z = 0.0;
    for (int i = 0; i < 12; i++) z += exp(beta * v[i]);
    for (int i = 0; i < 12; i++) p[i] = exp(beta * v[i]) / z;
    chi2 = chi_square(b, p, 12, draws, 12);
    printf("reward chi2 = %.2f\n", chi2);
    ck_assert_double_lt(chi2, limit);
    ds_buffer_destroy(&b);

    /* rank, two settings of rank_weight */
    double rws[2] = {0.01, 0.5};
    for (int t = 0; t < 2; t++) {
        b = priority_buffer(DS_PRIO_RANK, 1.0, rws[t], v);
        double c = rws[t] * 12, s = 0.0;
        for (int i = 0; i < 12; i++) {
            int rank = 0;
            for (int j = 0; j < 12; j++) rank += v[j] > v[i];
            p[i] = 1.0 / (c + rank);
            s += p[i];
        }
        for (int i = 0; i < 12; i++) p[i] /= s;
        chi2 = chi_square(b, p, 12, draws, 13 + (uint64_t)t);
        printf("rank (rank_weight %.2f) chi2 = %.2f\n", rws[t], chi2);
        ck_assert_double_lt(chi2, limit);
        ds_buffer_destroy(&b);
    }
}
END_TEST

START_TEST(rank_ties_are_ranked_oldest_first)
{
    /* ids 0..7; ties: {1, 4, 6} at 2.0 (the top value) and {2, 7} at -1.0 */
    double v[8] = {0.5, 2.0, -1.0, 1.0, 2.0, 0.0, 2.0, -1.0};
    int want_order[8] = {1, 4, 6, 3, 0, 5, 2, 7};
    ds_buffer *b = new_buffer(8, 1, DS_PRIO_RANK, 1.0, 0.5);
    ds_real x[8], lr[8];
    make_entries(8, 1, 0, v, x, lr);
    add_ok(b, 3, x, lr);  /* added in three batches: ties straddle merges */
    add_ok(b, 2, x + 3, lr + 3);
    add_ok(b, 3, x + 5, lr + 5);
    ds_real top[8];
    ck_assert_int_eq(ds_buffer_top(b, 8, top, NULL), DS_OK);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(entry_id(top + i), want_order[i]);
    /* draws follow the rank of each tied entry, not their shared value */
    double p[8], s = 0.0;
    for (int rank = 0; rank < 8; rank++) {
        p[want_order[rank]] = 1.0 / (0.5 * 8 + rank);
        s += p[want_order[rank]];
    }
    for (int i = 0; i < 8; i++) p[i] /= s;
    double chi2 = chi_square(b, p, 8, 200000, 21);
    printf("rank ties chi2 = %.2f (7 dof)\n", chi2);
    ck_assert_double_lt(chi2, 35.0);  /* 0.999 quantile 24.3 */
    ds_buffer_destroy(&b);
}
END_TEST

START_TEST(reward_shift_survives_eviction_of_the_max)
{
    ds_buffer *b = new_buffer(2, 1, DS_PRIO_REWARD, 1.0, 0.01);
    ds_real x[3] = {0, 1, 2}, lr[3] = {2000, 1000, 1001};
    add_ok(b, 1, x, lr);       /* shift 2000 */
    add_ok(b, 1, x + 1, lr + 1); /* weight exp(-1000) underflows to 0 */
    add_ok(b, 1, x + 2, lr + 2); /* evicts the max: weights must be rebuilt */
    double p[3] = {0.0, exp(-1.0) / (1.0 + exp(-1.0)), 1.0 / (1.0 + exp(-1.0))};
    double chi2 = chi_square(b, p, 3, 50000, 31);
    printf("reward after eviction of the max chi2 = %.2f (1 dof)\n", chi2);
    ck_assert_double_lt(chi2, 20.0);
    /* growing log R by more than the rebuild margin keeps the weights finite */
    ds_real x2[2] = {0, 1}, lr2[2] = {10000, 10001};
    add_ok(b, 2, x2, lr2);
    p[0] = exp(-1.0) / (1.0 + exp(-1.0));
    p[1] = 1.0 / (1.0 + exp(-1.0));
    p[2] = 0.0;
    chi2 = chi_square(b, p, 3, 50000, 32);
    ck_assert_double_lt(chi2, 20.0);
    ds_buffer_destroy(&b);
}
END_TEST

/* Brute-force top: ids sorted by (log R desc, insertion asc). */
static void brute_top(const ds_buffer *b, int *ids)
{
    size_t m = ds_buffer_size(b);
    const int dim = ds_buffer_dim(b);
    ds_real *x = malloc(sizeof(ds_real) * m * (size_t)dim), *lr = malloc(sizeof(ds_real) * m);
    ck_assert_int_eq(ds_buffer_export(b, x, lr), DS_OK);
    int *ord = malloc(sizeof(int) * m);
    for (size_t i = 0; i < m; i++) ord[i] = (int)i;
    /* insertion sort, stable */
    for (size_t i = 1; i < m; i++) {
        int t = ord[i];
        size_t j = i;
        while (j > 0 && lr[ord[j - 1]] < lr[t]) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = t;
    }
    for (size_t i = 0; i < m; i++) ids[i] = entry_id(x + (size_t)ord[i] * dim);
    free(x);
    free(lr);
    free(ord);
}

START_TEST(top_n_and_rank_index_under_random_adds)
{
    /* random batch sizes (some larger than the capacity), values on a coarse
     * grid so ties are common; the rank index after every add must equal a
     * brute-force stable sort, and all priorities must agree on top-n */
    const int cap = 97, dim = 2;
    ds_buffer *bs[3];
    for (int prio = 0; prio < 3; prio++) bs[prio] = new_buffer(cap, dim, (ds_priority)prio, 0.3, 0.01);
    ds_rng r = ds_rng_make(99, DS_RNG_TEST);
    int next_id = 0;
    ds_real *x = malloc(sizeof(ds_real) * 300 * dim), *lr = malloc(sizeof(ds_real) * 300);
    int *want = malloc(sizeof(int) * cap);
    ds_real *tx = malloc(sizeof(ds_real) * cap * dim), *tlr = malloc(sizeof(ds_real) * cap);
    for (int it = 0; it < 200; it++) {
        double u[2];
        ds_rng_uniform_d(r, (uint64_t)it, 0, 0, 2, u);
        int n = u[0] < 0.05 ? 100 + (int)(u[1] * 150) : (int)(u[1] * 30);
        double v[300];
        for (int i = 0; i < n; i++) {
            double w;
            ds_rng_uniform_d(r, (uint64_t)it, (uint64_t)i + 1, 0, 1, &w);
            v[i] = floor(w * 20.0) / 4.0 - 2.0;
        }
        make_entries(n, dim, next_id, v, x, lr);
        next_id += n;
        for (int prio = 0; prio < 3; prio++) add_ok(bs[prio], (size_t)n, x, lr);
        size_t m = ds_buffer_size(bs[0]);
        if (m == 0) continue;
        brute_top(bs[0], want);
        int nt = (it % 3 == 0) ? (int)m : (int)(m < 10 ? m : 10);
        for (int prio = 0; prio < 3; prio++) {
            ck_assert_int_eq(ds_buffer_top(bs[prio], nt, tx, tlr), DS_OK);
            for (int i = 0; i < nt; i++) ck_assert_int_eq(entry_id(tx + (size_t)i * dim), want[i]);
        }
    }
    free(x);
    free(lr);
    free(want);
    free(tx);
    free(tlr);
    for (int prio = 0; prio < 3; prio++) ds_buffer_destroy(&bs[prio]);
}
END_TEST

START_TEST(export_import_round_trip)
{
    const int cap = 50, dim = 3;
    ds_rng r = ds_rng_make(5, DS_RNG_BUFFER);
    for (int prio = 0; prio < 3; prio++) {
        ds_buffer *a = new_buffer(cap, dim, (ds_priority)prio, 1.5, 0.05);
        ds_buffer *c = new_buffer(cap, dim, (ds_priority)prio, 1.5, 0.05);
        ds_real x[80 * 3], lr[80];
        double v[80];
        for (int i = 0; i < 80; i++) v[i] = sin(1.7 * i) * 3.0;
        make_entries(80, dim, 0, v, x, lr);
        add_ok(a, 30, x, lr);
        add_ok(a, 50, x + 30 * dim, lr + 30);  /* wraps and evicts */
        add_ok(c, 7, x, lr);                   /* import must replace this */
        ds_real ex[50 * 3], elr[50];
        ck_assert_int_eq(ds_buffer_export(a, ex, elr), DS_OK);
        ck_assert_int_eq(ds_buffer_import(c, ds_buffer_size(a), ex, elr), DS_OK);
        ck_assert_uint_eq(ds_buffer_size(c), 50);
        for (size_t i = 0; i < 50; i++) {
            ds_real xa[3], xc[3], la, lc;
            ck_assert_int_eq(ds_buffer_get(a, i, xa, &la), DS_OK);
            ck_assert_int_eq(ds_buffer_get(c, i, xc, &lc), DS_OK);
            ck_assert(memcmp(xa, xc, sizeof(xa)) == 0 && la == lc);
            ck_assert_int_eq(entry_id(xa), 30 + (int)i);
        }
        /* the same draws */
        ds_real da[40 * 3], dc[40 * 3], dla[40], dlc[40];
        ck_assert_int_eq(ds_buffer_sample(a, r, 3, 100, 40, da, dla), DS_OK);
        ck_assert_int_eq(ds_buffer_sample(c, r, 3, 100, 40, dc, dlc), DS_OK);
        ck_assert(memcmp(da, dc, sizeof(da)) == 0 && memcmp(dla, dlc, sizeof(dla)) == 0);
        /* importing nothing empties */
        ck_assert_int_eq(ds_buffer_import(c, 0, NULL, NULL), DS_OK);
        ck_assert_uint_eq(ds_buffer_size(c), 0);
        ds_buffer_destroy(&a);
        ds_buffer_destroy(&c);
    }
}
END_TEST

START_TEST(draws_do_not_depend_on_batching)
{
    double v[12] = {0.3, -1.2, 2.5, 0.0, 1.7, -0.4, 3.1, 0.9, -2.2, 1.1, 2.0, -0.8};
    ds_rng r = ds_rng_make(77, DS_RNG_BUFFER);
    for (int prio = 0; prio < 3; prio++) {
        ds_buffer *b = priority_buffer((ds_priority)prio, 1.0, 0.01, v);
        ds_real all[50 * 3], part[50 * 3], la[50], lp[50];
        ck_assert_int_eq(ds_buffer_sample(b, r, 9, 1000, 50, all, la), DS_OK);
        ck_assert_int_eq(ds_buffer_sample(b, r, 9, 1000, 20, part, lp), DS_OK);
        ck_assert_int_eq(ds_buffer_sample(b, r, 9, 1020, 30, part + 20 * 3, lp + 20), DS_OK);
        ck_assert(memcmp(all, part, sizeof(all)) == 0 && memcmp(la, lp, sizeof(la)) == 0);
        /* another iteration gives other draws */
        ck_assert_int_eq(ds_buffer_sample(b, r, 10, 1000, 50, part, lp), DS_OK);
        ck_assert(memcmp(all, part, sizeof(all)) != 0);
        ds_buffer_destroy(&b);
    }
}
END_TEST

START_TEST(large_buffer_timing)
{
    /* Not asserted: prints the cost of add and sample at the paper's buffer
     * size (600k entries, d = 32, batches of 300). bench/bench_replay does
     * the same in float. */
    const size_t cap = 600000;
    const int dim = 32, batch = 300;
    ds_real *x = malloc(sizeof(ds_real) * (size_t)batch * dim), *lr = malloc(sizeof(ds_real) * batch);
    const char *names[3] = {"uniform", "reward", "rank"};
    for (int prio = 0; prio < 3; prio++) {
        ds_buffer *b = new_buffer(cap, dim, (ds_priority)prio, 1.0, 0.01);
        ds_rng r = ds_rng_make(1, DS_RNG_TEST);
        double t0 = ds_wtime();
        int adds = (int)(cap / batch) + 200;
        double t_full = 0.0;
        for (int it = 0; it < adds; it++) {
            if (it == (int)(cap / batch)) t_full = ds_wtime();
            ds_rng_normal(r, (uint64_t)it, 0, 0, batch * dim, x);
            ds_rng_normal(r, (uint64_t)it, 1, 0, batch, lr);
            add_ok(b, (size_t)batch, x, lr);
        }
        double t1 = ds_wtime();
        ds_real *sx = malloc(sizeof(ds_real) * (size_t)batch * dim), *slr = malloc(sizeof(ds_real) * batch);
        ds_rng rb = ds_rng_make(2, DS_RNG_BUFFER);
        for (int it = 0; it < 200; it++)
            ck_assert_int_eq(ds_buffer_sample(b, rb, (uint64_t)it, 0, batch, sx, slr), DS_OK);
        double t2 = ds_wtime();
        printf("timing %-7s: fill %d adds %.3f s; add of %d when full %.3f ms; sample of %d %.3f ms "
               "(600k x 32, double build, includes RNG of the test data)\n",
               names[prio], (int)(cap / batch), t_full - t0, batch, (t1 - t_full) / 200 * 1e3, batch,
               (t2 - t1) / 200 * 1e3);
        free(sx);
        free(slr);
        ds_buffer_destroy(&b);
    }
    free(x);
    free(lr);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, create_rejects_bad_arguments);
    tcase_add_test(tc, fifo_eviction_order);
    tcase_add_test(tc, capacity_edges);
    tcase_add_test(tc, non_finite_log_r_refused);
    tcase_add_test(tc, priorities_match_exact_probabilities);
    tcase_add_test(tc, rank_ties_are_ranked_oldest_first);
    tcase_add_test(tc, reward_shift_survives_eviction_of_the_max);
    tcase_add_test(tc, top_n_and_rank_index_under_random_adds);
    tcase_add_test(tc, export_import_round_trip);
    tcase_add_test(tc, draws_do_not_depend_on_batching);
    suite_add_tcase(s, tc);
    if (getenv("DS_TEST_TIMING")) {
        TCase *tt = tcase_create("timing");
        tcase_set_timeout(tt, 600);
        tcase_add_test(tt, large_buffer_timing);
        suite_add_tcase(s, tt);
    }
    return ds_test_run(s);
}
