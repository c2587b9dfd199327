/* onpolicy: the simulation-based objectives (PIS, DDS, DIS): the KL
 * divergence of the policy's path measure from the reference's backward
 * path measure, estimated on reparametrised forward trajectories and
 * differentiated through the whole simulated path (DESIGN.md 1).
 *
 * Per trajectory, with x_{i+1} = a_i x_i + h_i mean(x_i, t_i) + sqrt(s_i
 * var(x_i, t_i)) eps_i and the noise eps held fixed,
 *   loss_b = (sum_i log p_F + log mu_0(x_0) - sum_i log p_B - log R(x_T)) / d
 * and the loss is the mean over the (global) batch: PIS (Zhang and Chen
 * 2022; gfn-diffusion's gflownet_losses.pis) under the Brownian reference,
 * DDS (Vargas et al. 2023) under the variance-preserving one with the
 * exponential integrator, DIS (Berner et al. 2024) under the same process
 * discretised by Euler-Maruyama (reference.h). The reverse pass carries the
 * adjoint dL/dx_i back through every step: through the policy's dependence
 * on the state (ds_policy_backward's dx), through the learned log-variance,
 * through log p_F and log p_B, and through log R(x_T) by the energy's
 * gradient. With LP, the term scale(t) * grad log R(x_i) of the drift is
 * differentiated through the scale network but grad log R is a constant, as
 * in the reference (gfn-diffusion's predict_next_state detaches it in every
 * mode, PIS included); lp_through_grad also differentiates grad log R(x_i)
 * with respect to x_i, by the energy's Hessian-vector product (a different,
 * costlier gradient estimator of the same loss).
 *
 * Memory: the reverse pass needs every state (T+1, B, d) and the policy's
 * activations of all B x T rows (about (2 joint_layers + 3) H floats per
 * row). With checkpoint_every = k > 0 only the activations of one segment
 * of k steps are needed at a time: the forward pass keeps the states, and
 * the reverse pass re-evaluates the policy on each segment before
 * differentiating it (bitwise the same gradient; k = 0 keeps everything). */
#ifndef DS_ONPOLICY_H
#define DS_ONPOLICY_H

#include "diffsamp/core.h"
#include "diffsamp/rng.h"
#include "diffsamp/sampler.h"

typedef struct ds_onpolicy ds_onpolicy;

/* Workspace for batches of up to B trajectories of s (which must outlive
 * it); lp_through_grad: see above. With it and an energy that has no HVP,
 * Hessian-vector products are central differences of its gradient (see
 * ds_onpolicy_uses_fd_hvp: the caller announces it). */
ds_status ds_onpolicy_create(const ds_sim *s, int B, int lp_through_grad, ds_onpolicy **out);
void ds_onpolicy_destroy(ds_onpolicy **o);
/* 1 when LP's Hessian-vector products are finite differences. */
int ds_onpolicy_uses_fd_hvp(const ds_onpolicy *o);

/* Simulates B reparametrised trajectories into tr (noise from stream r at
 * (iteration, first + b), or noise (T, B, d) when not NULL), sets *loss to
 * this batch's sum of loss_b divided by norm (the global batch size; 0
 * means B), and ADDS d loss / d parameters into the policy arena's grads.
 * checkpoint_every: see above. A non-finite loss is returned as it is (DS_OK)
 * with no gradient added: the caller reduces the loss over the ranks and
 * refuses it on all of them. */
ds_status ds_onpolicy_loss_grad(ds_onpolicy *o, ds_traj *tr, int B, double norm, int checkpoint_every, ds_rng r,
                                uint64_t iteration, uint64_t first, const ds_real *noise, double *loss);

#endif
