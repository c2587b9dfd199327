#define _POSIX_C_SOURCE 200809L
/* registry: maps energy names to their family tables and wraps the vtable
 * calls with argument checks (see include/diffsamp/energy.h): the ABI
 * version, the dimension, and the family's keys (unknown keys refused,
 * defaults filled in, bounds checked) before its create() runs. Adding a
 * family is one extern line and one table entry here. */
#include "diffsamp/energy.h"

#include "diffsamp/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const ds_energy_vtable ds_energy_9gmm;
extern const ds_energy_vtable ds_energy_25gmm;
extern const ds_energy_vtable ds_energy_easy_funnel;
extern const ds_energy_vtable ds_energy_hard_funnel;
extern const ds_energy_vtable ds_energy_many_well;
extern const ds_energy_vtable ds_energy_gaussian;
extern const ds_energy_vtable ds_energy_lgcp;
extern const ds_energy_vtable ds_energy_plugin_base;
extern const ds_energy_vtable ds_energy_vae;

static const ds_energy_vtable *const registry[] = {
    &ds_energy_9gmm,        &ds_energy_25gmm,     &ds_energy_easy_funnel,
    &ds_energy_hard_funnel, &ds_energy_many_well, &ds_energy_gaussian,
    &ds_energy_lgcp,        &ds_energy_plugin_base,
    &ds_energy_vae, /* conditional: the posterior of a VAE given an image */
};
#define REGISTRY_COUNT ((int)(sizeof registry / sizeof registry[0]))

int ds_energy_registry_count(void) { return REGISTRY_COUNT; }

const ds_energy_vtable *ds_energy_registry_get(int i)
{
    return i >= 0 && i < REGISTRY_COUNT ? registry[i] : NULL;
}

const ds_energy_vtable *ds_energy_lookup(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < REGISTRY_COUNT; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

/* Appends to buf; on overflow ends it with "..." and returns 0. */
static int append(char *buf, size_t size, size_t *len, const char *a, const char *b)
{
    int w = snprintf(buf + *len, size - *len, "%s%s", a, b);
    if (w < 0 || (size_t)w >= size - *len) {
        if (size >= 4) memcpy(buf + size - 4, "...", 4);
        return 0;
    }
    *len += (size_t)w;
    return 1;
}

const char *ds_energy_names(char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < REGISTRY_COUNT; i++)
        if (!append(buf, size, &len, i ? ", " : "", registry[i]->name)) break;
    return buf;
}

const ds_energy_key *ds_energy_find_key(const ds_energy_vtable *vt, const char *name)
{
    if (!vt || !name) return NULL;
    for (int i = 0; i < vt->nkeys; i++)
        if (strcmp(vt->keys[i].name, name) == 0) return &vt->keys[i];
    return NULL;
}

const char *ds_energy_key_names(const ds_energy_vtable *vt, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    if (!vt || vt->nkeys == 0) {
        snprintf(buf, size, "none");
        return buf;
    }
    for (int i = 0; i < vt->nkeys; i++)
        if (!append(buf, size, &len, i ? ", " : "", vt->keys[i].name)) break;
    return buf;
}

/* Checks v against key k of family vt; DS_ERR_CONFIG naming both. */
static ds_status check_value(const ds_energy_vtable *vt, const ds_energy_key *k, const ds_energy_arg *v)
{
    if (k->type == DS_EKEY_STRING) {
        size_t len = strnlen(v->text, DS_ENERGY_TEXT_MAX);
        DS_CHECK(len < DS_ENERGY_TEXT_MAX && (double)len >= k->min && (double)len <= k->max,
                 DS_ERR_CONFIG, "energy '%s': key 'energy.%s' needs a string of %.0f to %.0f characters",
                 vt->name, k->name, k->min, k->max);
        return DS_OK;
    }
    double x = v->num;
    int ok = isfinite(x) && (k->lo_open ? x > k->min : x >= k->min) && x <= k->max;
    if (k->type == DS_EKEY_BOOL) ok = x == 0.0 || x == 1.0;
    if (k->type == DS_EKEY_INT) ok = ok && x == floor(x);
    DS_CHECK(ok, DS_ERR_CONFIG, "energy '%s': key 'energy.%s' = %g is out of its bounds %c%g, %g]",
             vt->name, k->name, x, k->lo_open ? '(' : '[', k->min, k->max);
    return DS_OK;
}

/* Every key of vt in table order: the value in args when set there, else the
 * default. A key of args that vt does not have is an error. */
static ds_status resolve_args(const ds_energy_vtable *vt, const ds_energy_args *args, ds_energy_args *out)
{
    char names[512];
    DS_CHECK(vt->nkeys >= 0 && vt->nkeys <= DS_ENERGY_MAX_ARGS && (vt->nkeys == 0 || vt->keys),
             DS_ERR_INVALID, "energy '%s': key table of %d keys (at most %d)", vt->name, vt->nkeys,
             DS_ENERGY_MAX_ARGS);
    DS_CHECK(!args || (args->count >= 0 && args->count <= DS_ENERGY_MAX_ARGS), DS_ERR_INVALID,
             "energy '%s': %d key values (at most %d)", vt->name, args ? args->count : 0,
             DS_ENERGY_MAX_ARGS);
    for (int j = 0; args && j < args->count; j++)
        DS_CHECK(ds_energy_find_key(vt, args->v[j].key) != NULL, DS_ERR_CONFIG,
                 "energy '%s' has no key 'energy.%.*s'; its keys are: %s", vt->name,
                 DS_ENERGY_KEY_MAX - 1, args->v[j].key, ds_energy_key_names(vt, names, sizeof names));
    memset(out, 0, sizeof *out);
    out->count = vt->nkeys;
    for (int i = 0; i < vt->nkeys; i++) {
        const ds_energy_key *k = &vt->keys[i];
        ds_energy_arg *o = &out->v[i];
        DS_CHECK(strlen(k->name) < DS_ENERGY_KEY_MAX, DS_ERR_INVALID, "energy '%s': key name '%s' too long",
                 vt->name, k->name);
        memcpy(o->key, k->name, strlen(k->name) + 1);
        o->num = k->def;
        snprintf(o->text, sizeof o->text, "%s", k->def_text ? k->def_text : "");
        for (int j = 0; args && j < args->count; j++)
            if (strcmp(args->v[j].key, k->name) == 0) {
                o->num = args->v[j].num;
                memcpy(o->text, args->v[j].text, sizeof o->text);
                o->text[sizeof o->text - 1] = '\0';
            }
        DS_TRY(check_value(vt, k, o));
    }
    return DS_OK;
}

ds_status ds_energy_create(const char *name, int dim, const ds_energy_args *args, ds_energy **out)
{
    DS_CHECK(out != NULL, DS_ERR_INVALID, "ds_energy_create: out is NULL");
    *out = NULL;
    DS_CHECK(name != NULL, DS_ERR_INVALID, "ds_energy_create: name is NULL");
    const ds_energy_vtable *vt = NULL; /* a plugin's table once energy.path is known */
    DS_TRY(ds_energy_family(name, args, &vt));
    DS_TRY(ds_energy_create_from(vt, dim, args, out));
    return DS_OK;
}

ds_status ds_energy_create_from(const ds_energy_vtable *vt, int dim, const ds_energy_args *args,
                                ds_energy **out)
{
    DS_CHECK(out != NULL, DS_ERR_INVALID, "ds_energy_create_from: out is NULL");
    *out = NULL;
    DS_CHECK(vt != NULL && vt->name != NULL, DS_ERR_INVALID, "ds_energy_create_from: no table");
    DS_CHECK(vt->abi_version == DS_ENERGY_ABI_VERSION, DS_ERR_FORMAT,
             "energy '%s' was built for energy ABI version %d; this diffsamp has version %d "
             "(rebuild the family against this diffsamp's include/diffsamp/energy.h)",
             vt->name, vt->abi_version, DS_ENERGY_ABI_VERSION);
    DS_CHECK(vt->create && vt->destroy && vt->log_reward && vt->check_dim, DS_ERR_INVALID,
             "energy '%s': check_dim, create, destroy and log_reward are required", vt->name);
    DS_CHECK(vt->cond_dim >= 0, DS_ERR_INVALID, "energy '%s': cond_dim %d < 0", vt->name, vt->cond_dim);
    DS_CHECK(dim >= 0, DS_ERR_CONFIG,
             "energy '%s': dim must be positive (or 0 for the default %d); got %d", vt->name,
             vt->default_dim, dim);
    if (dim == 0) dim = vt->default_dim;
    DS_TRY(vt->check_dim(dim));
    ds_energy_args *resolved = malloc(sizeof *resolved);
    DS_ALLOC_CHECK(resolved);
    ds_status rc = resolve_args(vt, args, resolved);
    if (rc != DS_OK) {
        ds_error_trace(__FILE__, __LINE__, __func__);
        free(resolved);
        return rc;
    }

    ds_energy *e = calloc(1, sizeof *e);
    if (e) e->calls = calloc(1, sizeof *e->calls);
    if (!e || !e->calls) {
        free(resolved);
        if (e) free(e);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for energy '%s'", vt->name);
    }
    e->vt = vt;
    e->dim = dim;
    rc = vt->create(dim, resolved, &e->state);
    free(resolved);
    if (rc != DS_OK) {
        ds_error_trace(__FILE__, __LINE__, __func__);
        goto fail;
    }
    if (vt->log_z) {
        DS_TRY_GOTO(rc, vt->log_z(e->state, dim, &e->log_z), fail);
        e->has_log_z = 1;
    }
    *out = e;
    return DS_OK;
fail:
    if (e->state) vt->destroy(e->state);
    free(e->calls);
    free(e);
    return rc;
}

void ds_energy_destroy(ds_energy **e)
{
    if (!e || !*e) return;
    if ((*e)->vt && (*e)->vt->destroy) (*e)->vt->destroy((*e)->state);
    free((*e)->calls);
    free(*e);
    *e = NULL;
}

/* A condition is passed exactly when the energy is conditional. */
static ds_status check_cond(const ds_energy *e, const ds_real *cond, const char *func)
{
    DS_CHECK(e->vt->cond_dim == 0 || cond != NULL, DS_ERR_INVALID,
             "%s(%s): the energy is conditional (cond_dim %d) and needs a condition per row", func,
             e->vt->name, e->vt->cond_dim);
    DS_CHECK(e->vt->cond_dim > 0 || cond == NULL, DS_ERR_INVALID,
             "%s(%s): the energy is unconditional; pass cond = NULL", func, e->vt->name);
    return DS_OK;
}

ds_status ds_energy_log_reward_cond(const ds_energy *e, int n, const ds_real *x, const ds_real *cond,
                                    ds_real *log_r, ds_real *grad)
{
    DS_CHECK(e != NULL, DS_ERR_INVALID, "ds_energy_log_reward: energy is NULL");
    DS_TRY(check_cond(e, cond, "ds_energy_log_reward"));
    DS_CHECK(n >= 0, DS_ERR_INVALID, "ds_energy_log_reward(%s): n = %d < 0", e->vt->name, n);
    if (n == 0) return DS_OK;
    DS_CHECK(x != NULL && log_r != NULL, DS_ERR_INVALID,
             "ds_energy_log_reward(%s): x and log_r must not be NULL", e->vt->name);
    ds_blas_done(); /* energies are libm code: blas.h says why */
    DS_TRY(e->vt->log_reward(e->state, e->dim, n, x, cond, log_r, grad));
    if (e->calls) { /* an instance made by hand (tests) has no record and is not counted */
        e->calls->value[e->calls->purpose] += n;
        if (grad) e->calls->grad[e->calls->purpose] += n;
    }
    return DS_OK;
}

int ds_energy_set_purpose(const ds_energy *e, int purpose)
{
    if (!e->calls) return DS_ECALL_TRAIN;
    const int prev = e->calls->purpose;
    if (purpose >= 0 && purpose < DS_ECALL_NPURPOSE) e->calls->purpose = purpose;
    return prev;
}

int ds_energy_refine_purpose(const ds_energy *e, int from, int to)
{
    if (!e->calls) return DS_ECALL_TRAIN;
    const int prev = e->calls->purpose;
    if (prev == from) ds_energy_set_purpose(e, to);
    return prev;
}

ds_status ds_energy_log_reward(const ds_energy *e, int n, const ds_real *x, ds_real *log_r, ds_real *grad)
{
    DS_TRY(ds_energy_log_reward_cond(e, n, x, NULL, log_r, grad));
    return DS_OK;
}

ds_status ds_energy_hvp_cond(const ds_energy *e, int n, const ds_real *x, const ds_real *cond,
                             const ds_real *v, ds_real *hv)
{
    DS_CHECK(e != NULL, DS_ERR_INVALID, "ds_energy_hvp: energy is NULL");
    DS_TRY(check_cond(e, cond, "ds_energy_hvp"));
    DS_CHECK(e->vt->hvp != NULL, DS_ERR_INVALID,
             "energy '%s' has no Hessian-vector product (needed by PIS/DDS with the Langevin "
             "parametrisation)", e->vt->name);
    DS_CHECK(n >= 0, DS_ERR_INVALID, "ds_energy_hvp(%s): n = %d < 0", e->vt->name, n);
    if (n == 0) return DS_OK;
    DS_CHECK(x != NULL && v != NULL && hv != NULL, DS_ERR_INVALID,
             "ds_energy_hvp(%s): x, v and hv must not be NULL", e->vt->name);
    ds_blas_done(); /* energies are libm code: blas.h says why */
    DS_TRY(e->vt->hvp(e->state, e->dim, n, x, cond, v, hv));
    if (e->calls) e->calls->hvp[e->calls->purpose] += n;
    return DS_OK;
}

ds_status ds_energy_hvp(const ds_energy *e, int n, const ds_real *x, const ds_real *v, ds_real *hv)
{
    DS_TRY(ds_energy_hvp_cond(e, n, x, NULL, v, hv));
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
    ds_blas_done(); /* energies are libm code: blas.h says why */
    DS_TRY(e->vt->sample(e->state, e->dim, r, first, n, x));
    return DS_OK;
}

int ds_energy_has_sampler(const ds_energy *e) { return e != NULL && e->vt->sample != NULL; }

int ds_energy_mode_grid(const ds_energy *e, int *per_axis, double *spacing)
{
    int p = 0;
    double h = 0.0;
    if (!e || !e->vt->mode_grid || !e->vt->mode_grid(e->state, e->dim, &p, &h) || p < 1 || !(h > 0))
        return 0;
    if (per_axis) *per_axis = p;
    if (spacing) *spacing = h;
    return 1;
}

void ds_energy_list(FILE *out)
{
    for (int i = 0; i < REGISTRY_COUNT; i++) {
        const ds_energy_vtable *vt = registry[i];
        char lz[32] = "unknown";
        ds_energy *e = NULL;
        /* Only a family with a log Z is built (lgcp factors a 1600 x 1600
         * covariance and reads a data file). */
        if (vt->log_z && ds_energy_create_from(vt, 0, NULL, &e) == DS_OK && e->has_log_z)
            snprintf(lz, sizeof lz, "%.13g", e->log_z);
        else
            ds_error_clear();
        ds_energy_destroy(&e);
        fprintf(out, "%-12s %5d %20s  %s\n", vt->name, vt->default_dim, lz, vt->doc);
    }
}
