/* conditional: what a sampler of a conditional target (an energy with
 * cond_dim > 0, e.g. the VAE posterior p(z | x)) needs beyond the
 * unconditional one: the per-condition VarGrad objective and the per-image
 * evaluation metrics. The trainer's conditional path is src/train_cond.c.
 *
 * Batches of a conditional run are condition-major: trajectory b belongs to
 * condition b / K, K = condition.repeats (the same image for its K rows). */
#ifndef DS_CONDITIONAL_H
#define DS_CONDITIONAL_H

#include "diffsamp/config.h"
#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/local_search.h"
#include "diffsamp/objectives.h"
#include "diffsamp/replay.h"

#include <stdint.h>

/* Conditional VarGrad (gfn-diffusion's cond-tb-avg): the baseline is the
 * mean log-weight of each condition's K trajectories,
 *   delta_b = mean_{b' in c(b)} lw_b' - lw_b,  lw = log R + sum log p_B - sum log p_F,
 *   loss = 0.5 sum_b delta_b^2 / norm  (norm = in->batch_norm, or B),
 * d loss / d log p_F[i, b] = delta_b / norm (the baseline's own gradient
 * cancels within each condition), d loss / d log F = 0. in->B must be a
 * multiple of K. */
ds_status ds_cond_vargrad(const ds_obj_input *in, int K, double *loss, ds_real *d_log_pf, ds_real *d_log_f);

/* The idx file of the evaluation images: condition.eval_images, or
 * condition.images when that is empty (the pointer is one of the two fields). */
const char *ds_cond_eval_file(const ds_settings *s);

/* Per-image metrics of n_img images with K log-weights each (lw image-major,
 * (n_img, K)): sums over the images of the ELBO (mean log w), of the
 * importance-weighted log p(x) (log mean exp log w) and of the effective
 * sample size of the image's own weights, (sum w)^2 / (K sum w^2) in
 * [1/K, 1]; and the running log-sum-exp of all weights (the reference's
 * cross-image "RW" number when divided by the count). */
void ds_cond_image_metrics(const double *lw, int n_img, int K, double *sum_elbo, double *sum_is, double *sum_ess,
                           double *lse_max, double *lse_sum);

/* Local search on a conditional target: ds_ls_run_cond (local_search.h),
 * ds_ls_run's MALA chains where chain k targets log R(. | cond[k]) and the
 * collected rows are [z, idx[k]], so buffers keep (condition, z, log R). */

#endif
