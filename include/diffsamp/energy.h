/* energy: target distributions known through an unnormalised density
 * R(x) = exp(-E(x)) on R^d, behind one vtable and a registry by name.
 *
 * Each energies/<family>.c exposes only its ds_energy_vtable(s); the registry
 * (energies/registry.c) maps names to tables. Every function is batched over
 * n points stored row-major (n, dim). Energies compute in double internally
 * and read/write ds_real arrays. */
#ifndef DS_ENERGY_H
#define DS_ENERGY_H

#include "diffsamp/core.h"
#include "diffsamp/rng.h"

#include <stdio.h>

typedef struct ds_energy ds_energy;

/* One target family. Optional entries are NULL when unsupported. */
typedef struct ds_energy_vtable {
    const char *name;  /* registry name, e.g. "25gmm" */
    const char *doc;   /* one line for `diffsamp energies` */
    int default_dim;
    /* Returns DS_OK when dim is allowed, DS_ERR_CONFIG with a message when not. */
    ds_status (*check_dim)(int dim);
    /* Builds the family's private state for dim (may set *state = NULL). */
    ds_status (*create)(int dim, void **state);
    void (*destroy)(void *state);
    /* log R at x (n, dim) into log_r (n); when grad != NULL also grad log R (n, dim). */
    ds_status (*log_reward)(const void *state, int dim, int n, const ds_real *x, ds_real *log_r,
                            ds_real *grad);
    /* Optional: hv (n, dim) = Hessian of log R at x_k times v_k, for each point k. */
    ds_status (*hvp)(const void *state, int dim, int n, const ds_real *x, const ds_real *v,
                     ds_real *hv);
    /* Optional: n exact samples into x (n, dim). Sample k uses stream r at
     * (iteration = 0, sample = first + k), so any slice of a sample set can be
     * drawn independently (and on any rank). */
    ds_status (*sample)(const void *state, int dim, ds_rng r, uint64_t first, int n, ds_real *x);
    /* Optional: the exact log Z = log int R(x) dx for dim. */
    ds_status (*log_z)(const void *state, int dim, double *log_z);
    /* Optional (2-D mixtures on a grid): grid_per_axis^2 modes spaced
     * grid_spacing apart, centred on 0, for the mode-coverage metric; 0 = none. */
    int grid_per_axis;
    double grid_spacing;
} ds_energy_vtable;

/* An instance: a family at a dimension. Fields are read-only for callers. */
struct ds_energy {
    const ds_energy_vtable *vt;
    int dim;
    int has_log_z;  /* 1 when log_z is exact */
    double log_z;
    void *state;
};

/* Looks name up in the registry and builds it at dim (0 = the family's
 * default). An unknown name fails with DS_ERR_CONFIG and a message that lists
 * every registered name; a bad dim fails with the family's own message.
 * The caller owns *out and frees it with ds_energy_destroy. */
ds_status ds_energy_create(const char *name, int dim, ds_energy **out);
/* Frees *e (NULL allowed) and sets it to NULL. */
void ds_energy_destroy(ds_energy **e);

/* Batched log R (and gradient when grad != NULL); see the vtable. Fails with
 * DS_ERR_INVALID on bad arguments. Non-finite values are returned as they are:
 * callers decide (LP uses nan_to_num, training checks the loss). */
ds_status ds_energy_log_reward(const ds_energy *e, int n, const ds_real *x, ds_real *log_r, ds_real *grad);
/* Hessian-vector products; DS_ERR_INVALID when the family has none. */
ds_status ds_energy_hvp(const ds_energy *e, int n, const ds_real *x, const ds_real *v, ds_real *hv);
/* Exact samples; DS_ERR_INVALID when the family has no sampler. */
ds_status ds_energy_sample(const ds_energy *e, ds_rng r, uint64_t first, int n, ds_real *x);
int ds_energy_has_sampler(const ds_energy *e);

/* Registry access: the number of families and the i-th table. */
int ds_energy_registry_count(void);
const ds_energy_vtable *ds_energy_registry_get(int i);
/* Writes "name dim log_z doc" lines for `diffsamp energies`. */
void ds_energy_list(FILE *out);

#endif
