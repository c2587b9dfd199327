/* policy_impl.h: the hooks of the conditional networks (policy_cond.c) into
 * the policy passes (policy.c). Not a public header. */
#ifndef DS_POLICY_IMPL_H
#define DS_POLICY_IMPL_H

#include "diffsamp/policy.h"

/* Registers the conditional state encoder s_model.x_model.* (in place of
 * the unconditional s_model.x_model.{weight,bias}). */
ds_status ds_pcond_register(ds_policy *p);
/* Allocates p->cond's workspace (after the arena). */
ds_status ds_pcond_alloc(ds_policy *p);
void ds_pcond_free(ds_policy *p);
/* semb (n, H) of the rows of slots [slot0, slot1) from their states X (n, d)
 * and the pass's condition, into out; keeps GELU(semb) of slot 0 for the
 * flow network. */
ds_status ds_pcond_embed(ds_policy *p, int slot0, int slot1, const ds_real *X, ds_real *out);
/* log Z(c) into p->logf for slot 0's rows (when slot0 = 0), 0 for the others. */
ds_status ds_pcond_flow_forward(ds_policy *p, int slot0, int slot1);
/* Back-propagates dsemb = dh0 (n, H) (plus slot 0's flow term from
 * p->d_logf) through the encoder; dx (n, d) when not NULL. */
ds_status ds_pcond_backward(ds_policy *p, int slot0, int slot1, const ds_real *dh0, ds_real *dx);

#endif
