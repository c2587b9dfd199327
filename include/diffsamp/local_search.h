/* local_search: Metropolis-adjusted Langevin (MALA) chains that refine
 * samples and feed a replay buffer (Sendera et al. 2024, section 3.2 "local
 * search"; reference energy_sampling/langevin.py).
 *
 * Target pi(x) ∝ exp(beta log R(x)). From x, with step eta and
 * g(x) = grad log R(x):
 *   x' = x + eta beta g(x) + sqrt(2 eta) xi,        xi ~ N(0, I)
 *   log alpha = beta (log R(x') - log R(x)) + log q(x | x') - log q(x' | x),
 *   q(a | b) = N(a; b + eta beta g(b), 2 eta I),
 * accepted when u < exp(min(0, log alpha)), u ~ U(0, 1).
 * A proposal whose log R or gradient is not finite is rejected; a chain whose
 * current log R is not finite moves to any finite proposal.
 *
 * Step size: one scalar shared by the chains, adapted as the reference code
 * does (not as the paper text says): at step s >= 1 it is multiplied by
 * adapt_up when the latest acceptance rate exceeds target_acceptance and by
 * adapt_down otherwise; the acceptance rate is measured over windows that
 * close at every s with s % adapt_every == 0 (the first window is step 0
 * alone). adapt_up = adapt_down = 1 disables adaptation (the reference
 * without --ld_schedule). The rate is a batch statistic: when the chains of
 * one batch are spread over several calls (MPI ranks), set `reduce` so that
 * every part sees the whole batch's counts and steps the same.
 *
 * Buffer: the accepted proposals of every step s > burn_in (strictly, as in
 * the reference) are added with their log R, step by step, chains in order.
 * Note that these are distributed as pi(x) a(x) (a = acceptance probability
 * from x, by detailed balance), not exactly pi; the final chain states are
 * distributed as pi. With store_states the state of every chain after every
 * step s > burn_in (accepted or not, chains in order) is added instead:
 * the chains' own empirical law, about 1/acceptance times more entries.
 *
 * Random numbers: chain k at step s draws its noise from stream r at
 * (iteration, sample = first_sample + k, step = s) and its accept uniform at
 * (iteration, first_sample + k, step = s + DS_LS_UNIFORM_STEP), so a chain
 * does not depend on how the batch is split (with a `reduce` that restores
 * the batch-wide acceptance counts, or without adaptation). */
#ifndef DS_LOCAL_SEARCH_H
#define DS_LOCAL_SEARCH_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/replay.h"
#include "diffsamp/rng.h"

#include <stdint.h>

/* Initial MALA step size: the one default of local_search.ld_step (config.c
 * stringifies it for its key table) and of ds_ls_params_init. */
#define DS_LS_DEFAULT_STEP 0.1

/* Step offset of the accept uniforms; max_iter must not exceed it. */
#define DS_LS_UNIFORM_STEP 0x8000

typedef struct ds_ls_params {
    int max_iter;             /* MALA steps (200) */
    int burn_in;              /* steps s <= burn_in add nothing to the buffer (100) */
    double step;              /* initial step size eta, ld_step (DS_LS_DEFAULT_STEP) */
    double target_acceptance; /* 0.574 (Roberts & Rosenthal 1998) */
    double adapt_up;          /* factor when acceptance > target (1.01) */
    double adapt_down;        /* factor otherwise (0.99) */
    double beta;              /* inverse temperature of the target (1.0) */
    int adapt_every;          /* acceptance window length in steps (5) */
    int store_states;         /* 1: buffer the chain states, not the accepted proposals (0) */
    /* Optional (NULL = local counts): called at every step s with
     * s % adapt_every == 0 (also with n = 0 chains) with the window's
     * counts = {accepted, proposed} of this call's chains; must replace them
     * with the totals over every part of the batch (e.g. an MPI_Allreduce
     * sum, which makes ds_ls_run collective). A non-OK status stops the run. */
    ds_status (*reduce)(void *ctx, double counts[2]);
    void *reduce_ctx;
} ds_ls_params;

typedef struct ds_ls_stats {
    /* Counts of this call's chains (not reduced). */
    double acceptance;               /* accepted / proposed over all steps */
    double acceptance_after_burn_in; /* the same over steps s > burn_in (0 when none) */
    double final_step;               /* step size used at the last step */
    long added;                      /* entries added to out_buffer */
} ds_ls_stats;

/* Sets the defaults listed above. */
void ds_ls_params_init(ds_ls_params *p);
/* DS_OK, or DS_ERR_INVALID naming the first bad field. */
ds_status ds_ls_params_check(const ds_ls_params *p);

/* Runs p->max_iter MALA steps on n chains started at x (n, dim) and leaves
 * the final states in x. When out_buffer != NULL (its dim must be e->dim) the
 * accepted proposals of the steps after burn_in are added to it; stats may be
 * NULL. Calls e->vt->log_reward directly, once per step on the proposals.
 * Allocates its workspace (about 4 n dim + n (max_iter - burn_in) dim reals).
 * Fails with DS_ERR_INVALID on bad arguments, DS_ERR_NOMEM, or whatever the
 * energy or reduce returns; x is then unspecified and the buffer unchanged. */
ds_status ds_ls_run(const ds_energy *e, const ds_ls_params *p, ds_rng r, uint64_t iteration,
                    uint64_t first_sample, int n, ds_real *x, ds_buffer *out_buffer, ds_ls_stats *stats);
/* The same chains on a conditional target: chain k targets log R(. | cond[k])
 * (cond: n rows of the energy's cond_dim), and out (width dim + 1) gets the
 * rows [z, idx[k]] (the buffers of conditional runs, train_cond.c). */
ds_status ds_ls_run_cond(const ds_energy *e, const ds_ls_params *p, ds_rng r, uint64_t iteration,
                         uint64_t first_sample, int n, ds_real *x, const ds_real *cond, const int32_t *idx,
                         ds_buffer *out, ds_ls_stats *stats);

/* The MH log acceptance ratio log alpha above for one move x -> xp (dim),
 * with log R and grad log R at both points and step eta. Returns -INFINITY
 * (reject) when log_rp or grad_p is not finite or the value would be NaN,
 * +INFINITY (accept) when log_r is not finite but the proposal is. */
double ds_ls_log_accept_ratio(int dim, double step, double beta, const ds_real *x, double log_r,
                              const ds_real *grad, const ds_real *xp, double log_rp,
                              const ds_real *grad_p);

#endif
