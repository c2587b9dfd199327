/* registry: maps energy names to their family tables and wraps the vtable
 * calls with argument checks (see include/diffsamp/energy.h). Adding a
 * family is one extern line and one table entry here. */
#include "diffsamp/energy.h"

#include <stdlib.h>
#include <string.h>

extern const ds_energy_vtable ds_energy_9gmm;
extern const ds_energy_vtable ds_energy_25gmm;
extern const ds_energy_vtable ds_energy_easy_funnel;
extern const ds_energy_vtable ds_energy_hard_funnel;
extern const ds_energy_vtable ds_energy_many_well;
extern const ds_energy_vtable ds_energy_gaussian;

static const ds_energy_vtable *const registry[] = {
    &ds_energy_9gmm,        &ds_energy_25gmm,     &ds_energy_easy_funnel,
    &ds_energy_hard_funnel, &ds_energy_many_well, &ds_energy_gaussian,
};
#define REGISTRY_COUNT ((int)(sizeof registry / sizeof registry[0]))

int ds_energy_registry_count(void) { return REGISTRY_COUNT; }

const ds_energy_vtable *ds_energy_registry_get(int i)
{
    return i >= 0 && i < REGISTRY_COUNT ? registry[i] : NULL;
}

/* "9gmm, 25gmm, ..." into buf (truncated with "..." if it does not fit). */
static const char *registry_names(char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < REGISTRY_COUNT; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", registry[i]->name);
        if (w < 0 || (size_t)w >= size - len) {
            if (size >= 4) memcpy(buf + size - 4, "...", 4);
            break;
        }
        len += (size_t)w;
    }
    return buf;
}

ds_status ds_energy_create(const char *name, int dim, ds_energy **out)
{
    DS_CHECK(out != NULL, DS_ERR_INVALID, "ds_energy_create: out is NULL");
    *out = NULL;
    DS_CHECK(name != NULL, DS_ERR_INVALID, "ds_energy_create: name is NULL");
    const ds_energy_vtable *vt = NULL;
    for (int i = 0; i < REGISTRY_COUNT; i++)
        if (strcmp(registry[i]->name, name) == 0) vt = registry[i];
    char names[512];
    DS_CHECK(vt != NULL, DS_ERR_CONFIG, "unknown energy '%s'; registered energies are: %s", name,
             registry_names(names, sizeof names));
    DS_CHECK(dim >= 0, DS_ERR_CONFIG,
             "energy '%s': dim must be positive (or 0 for the default %d); got %d", name,
             vt->default_dim, dim);
    if (dim == 0) dim = vt->default_dim;
    DS_TRY(vt->check_dim(dim));

    ds_energy *e = calloc(1, sizeof *e);
    DS_ALLOC_CHECK(e);
    e->vt = vt;
    e->dim = dim;
    ds_status rc;
    DS_TRY_GOTO(rc, vt->create(dim, &e->state), fail);
    if (vt->log_z) {
        DS_TRY_GOTO(rc, vt->log_z(e->state, dim, &e->log_z), fail);
        e->has_log_z = 1;
    }
    *out = e;
    return DS_OK;
fail:
    if (e->state) vt->destroy(e->state);
    free(e);
    return rc;
}

void ds_energy_destroy(ds_energy **e)
{
    if (!e || !*e) return;
    if ((*e)->vt && (*e)->vt->destroy) (*e)->vt->destroy((*e)->state);
    free(*e);
    *e = NULL;
}

ds_status ds_energy_log_reward(const ds_energy *e, int n, const ds_real *x, ds_real *log_r, ds_real *grad)
{
    DS_CHECK(e != NULL, DS_ERR_INVALID, "ds_energy_log_reward: energy is NULL");
    DS_CHECK(n >= 0, DS_ERR_INVALID, "ds_energy_log_reward(%s): n = %d < 0", e->vt->name, n);
    if (n == 0) return DS_OK;
    DS_CHECK(x != NULL && log_r != NULL, DS_ERR_INVALID,
             "ds_energy_log_reward(%s): x and log_r must not be NULL", e->vt->name);
    DS_TRY(e->vt->log_reward(e->state, e->dim, n, x, log_r, grad));
    return DS_OK;
}

ds_status ds_energy_hvp(const ds_energy *e, int n, const ds_real *x, const ds_real *v, ds_real *hv)
{
    DS_CHECK(e != NULL, DS_ERR_INVALID, "ds_energy_hvp: energy is NULL");
    DS_CHECK(e->vt->hvp != NULL, DS_ERR_INVALID,
             "energy '%s' has no Hessian-vector product (needed by PIS/DDS with the Langevin "
             "parametrisation)", e->vt->name);
    DS_CHECK(n >= 0, DS_ERR_INVALID, "ds_energy_hvp(%s): n = %d < 0", e->vt->name, n);
    if (n == 0) return DS_OK;
    DS_CHECK(x != NULL && v != NULL && hv != NULL, DS_ERR_INVALID,
             "ds_energy_hvp(%s): x, v and hv must not be NULL", e->vt->name);
    DS_TRY(e->vt->hvp(e->state, e->dim, n, x, v, hv));
    return DS_OK;
}

ds_status ds_energy_sample(const ds_energy *e, ds_rng r, uint64_t first, int n, ds_real *x)
{
    DS_CHECK(e != NULL, DS_ERR_INVALID, "ds_energy_sample: energy is NULL");
    DS_CHECK(e->vt->sample != NULL, DS_ERR_INVALID,
             "energy '%s' has no exact sampler (ground-truth metrics need one)", e->vt->name);
    DS_CHECK(n >= 0, DS_ERR_INVALID, "ds_energy_sample(%s): n = %d < 0", e->vt->name, n);
    if (n == 0) return DS_OK;
    DS_CHECK(x != NULL, DS_ERR_INVALID, "ds_energy_sample(%s): x is NULL", e->vt->name);
    DS_TRY(e->vt->sample(e->state, e->dim, r, first, n, x));
    return DS_OK;
}

int ds_energy_has_sampler(const ds_energy *e) { return e != NULL && e->vt->sample != NULL; }

void ds_energy_list(FILE *out)
{
    for (int i = 0; i < REGISTRY_COUNT; i++) {
        const ds_energy_vtable *vt = registry[i];
        char lz[32] = "unknown";
        ds_energy *e = NULL;
        if (ds_energy_create(vt->name, 0, &e) == DS_OK && e->has_log_z)
            snprintf(lz, sizeof lz, "%.13g", e->log_z);
        else
            ds_error_clear();
        ds_energy_destroy(&e);
        fprintf(out, "%-12s %5d %20s  %s\n", vt->name, vt->default_dim, lz, vt->doc);
    }
}
