#define _XOPEN_SOURCE 700
/* plugin: energies from shared libraries (include/diffsamp/energy.h, the
 * plugin section). The registered family "plugin" has one key, path; once
 * energy.path is known, ds_energy_family loads the library (dlopen, once per
 * process and path), checks what it declares, and returns an adapter table:
 * name "plugin", keys path + the library's keys, dims and optional parts as
 * the library has them, functions that forward to the library's and refuse
 * non-finite results naming the file. A library is never unloaded (tables
 * and key names point into it). */
#include "diffsamp/energy.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- SHA-256 */
/* FIPS 180-4. */

typedef struct sha256 {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t fill;
} sha256;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(sha256 *s, const unsigned char *p)
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
        uint32_t t2 = (rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) s->h[i] += v[i];
}

static void sha_init(sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->bytes = 0;
    s->fill = 0;
}

static void sha_update(sha256 *s, const unsigned char *p, size_t n)
{
    s->bytes += n;
    while (n > 0) {
        size_t take = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill == 64) {
            sha_block(s, s->buf);
            s->fill = 0;
        }
    }
}

static void sha_final(sha256 *s, char hex[65])
{
    const uint64_t bits = s->bytes * 8;
    unsigned char pad = 0x80, zero = 0, len[8];
    sha_update(s, &pad, 1);
    while (s->fill != 56) sha_update(s, &zero, 1);
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_update(s, len, 8);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", (unsigned)s->h[i]);
}

ds_status ds_sha256_file(const char *file, char hex[65])
{
    FILE *f = fopen(file, "rb");
    DS_CHECK(f != NULL, DS_ERR_IO, "cannot open %s to hash it: %s", file, strerror(errno));
    sha256 s;
    sha_init(&s);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    DS_CHECK(!bad, DS_ERR_IO, "read error hashing %s", file);
    sha_final(&s, hex);
    return DS_OK;
}

/* -------------------------------------------------------------- loading */

#define PLUGIN_SLOTS 8

typedef struct plugin_slot {
    char path[DS_ENERGY_TEXT_MAX]; /* energy.path as given */
    char file[PATH_MAX];
    char sha256[65];
    char doc[1024];
    void *handle;
    const ds_energy_plugin_info *info;
    const ds_energy_vtable *inner;
    ds_energy_key keys[DS_ENERGY_MAX_ARGS]; /* path, then the library's */
    ds_energy_vtable vt;                    /* the adapter */
    ds_energy_plugin_lib lib;
    int announced;
} plugin_slot;

static plugin_slot slots[PLUGIN_SLOTS];
static int nslots;
static const ds_energy_plugin_lib *last_lib;

/* The adapter's instance state. */
typedef struct plugin_inst {
    const plugin_slot *slot;
    void *state;
} plugin_inst;

/* The key of the family "plugin" (the adapter's first key too). */
static const ds_energy_key base_keys[] = {
    {"path", DS_EKEY_STRING, 0, NULL, 0, DS_ENERGY_TEXT_MAX - 1, 0,
     "the shared library of the energy, relative to the working directory"},
};

static int plain_name(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_')) return 0;
    return n > 0 && n < max;
}

/* The library's table must be one diffsamp can use. */
static ds_status check_table(const plugin_slot *p)
{
    const ds_energy_vtable *vt = p->inner;
    const char *f = p->file;
    DS_CHECK(vt != NULL, DS_ERR_CONFIG, "energy plugin %s: its entry point returned no table", f);
    DS_CHECK(vt->abi_version == DS_ENERGY_ABI_VERSION, DS_ERR_FORMAT,
             "energy plugin %s: its table says energy ABI version %d, this diffsamp has %d (rebuild it "
             "against this diffsamp's diffsamp/energy.h)", f, vt->abi_version, DS_ENERGY_ABI_VERSION);
    DS_CHECK(vt->name && plain_name(vt->name, 64) && vt->doc && vt->dims, DS_ERR_CONFIG,
             "energy plugin %s: the table needs a name ([a-z0-9_]), a doc line and a dims text", f);
    DS_CHECK(vt->check_dim && vt->create && vt->destroy && vt->log_reward, DS_ERR_CONFIG,
             "energy plugin %s (%s): check_dim, create, destroy and log_reward are required", f, vt->name);
    DS_CHECK(vt->cond_dim >= 0, DS_ERR_CONFIG, "energy plugin %s (%s): cond_dim %d < 0", f, vt->name,
             vt->cond_dim);
    DS_CHECK(vt->default_dim >= 1, DS_ERR_CONFIG, "energy plugin %s (%s): default_dim %d < 1", f, vt->name,
             vt->default_dim);
    ds_status rc = vt->check_dim(vt->default_dim);
    if (rc != DS_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ds_error_message());
        ds_error_clear();
        return ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                            "energy plugin %s (%s): its check_dim refuses its own default_dim %d: %s", f,
                            vt->name, vt->default_dim, why);
    }
    DS_CHECK(vt->nkeys >= 0 && vt->nkeys < DS_ENERGY_MAX_ARGS && (vt->nkeys == 0 || vt->keys), DS_ERR_CONFIG,
             "energy plugin %s (%s): %d keys (at most %d, with energy.path)", f, vt->name, vt->nkeys,
             DS_ENERGY_MAX_ARGS - 1);
    for (int i = 0; i < vt->nkeys; i++) {
        const ds_energy_key *k = &vt->keys[i];
        DS_CHECK(k->name && plain_name(k->name, DS_ENERGY_KEY_MAX) && k->doc, DS_ERR_CONFIG,
                 "energy plugin %s (%s): key %d needs a name of [a-z0-9_] shorter than %d characters and a doc",
                 f, vt->name, i, DS_ENERGY_KEY_MAX);
        DS_CHECK(strcmp(k->name, "name") && strcmp(k->name, "dim") && strcmp(k->name, "path"), DS_ERR_CONFIG,
                 "energy plugin %s (%s): key '%s' is taken by the energy section", f, vt->name, k->name);
        for (int j = 0; j < i; j++)
            DS_CHECK(strcmp(vt->keys[j].name, k->name) != 0, DS_ERR_CONFIG,
                     "energy plugin %s (%s): key '%s' declared twice", f, vt->name, k->name);
        DS_CHECK(k->type >= DS_EKEY_BOOL && k->type <= DS_EKEY_STRING && !(k->min > k->max), DS_ERR_CONFIG,
                 "energy plugin %s (%s): key '%s' has a bad type or bounds", f, vt->name, k->name);
        double v = k->type == DS_EKEY_STRING ? (double)strlen(k->def_text ? k->def_text : "") : k->def;
        int ok = isfinite(v) && (k->lo_open && k->type != DS_EKEY_STRING ? v > k->min : v >= k->min) &&
                 v <= k->max && (k->type != DS_EKEY_STRING || k->max < DS_ENERGY_TEXT_MAX);
        DS_CHECK(ok, DS_ERR_CONFIG, "energy plugin %s (%s): the default of key '%s' is out of its bounds", f,
                 vt->name, k->name);
    }
    return DS_OK;
}

const char *ds_energy_plugin_missing(const ds_energy_vtable *vt, int has_gradient, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
#define MISSING(...)                                                          \
    do {                                                                      \
        int w_ = snprintf(buf + len, size - len, __VA_ARGS__);                \
        if (w_ > 0 && (size_t)w_ < size - len) len += (size_t)w_;             \
    } while (0)
    if (!has_gradient)
        MISSING("%sno gradient: sampler.langevin (LP), local search and the on-policy objectives (pis, dds, "
                "dis) are refused", len ? "; " : "");
    if (!vt->hvp)
        MISSING("%sno HVP: on-policy LP differentiates the gradient by central differences", len ? "; " : "");
    if (!vt->sample)
        MISSING("%sno exact sampler: no ground-truth metrics (W2, EUBO, --ground-truth, ground-truth)",
                len ? "; " : "");
    if (!vt->log_z) MISSING("%sno log Z: no delta_log_z columns", len ? "; " : "");
#undef MISSING
    if (!len) snprintf(buf, size, "every optional part present");
    return buf;
}

/* Forward declarations of the adapter's functions. */
static ds_status ad_create(int dim, const ds_energy_args *args, void **state);
static void ad_destroy(void *state);
static ds_status ad_log_reward(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                               ds_real *log_r, ds_real *grad);
static ds_status ad_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                        const ds_real *v, ds_real *hv);
static ds_status ad_sample(const void *state, int dim, ds_rng r, uint64_t first, int n, ds_real *x);
static ds_status ad_log_z(const void *state, int dim, double *log_z);
static int ad_mode_grid(const void *state, int dim, int *per_axis, double *spacing);

/* Loads path into a new slot. */
static ds_status plugin_load(const char *path, plugin_slot **out)
{
    DS_CHECK(nslots < PLUGIN_SLOTS, DS_ERR_CONFIG, "more than %d energy plugins in one process", PLUGIN_SLOTS);
    plugin_slot *p = &slots[nslots];
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    char cwd[PATH_MAX] = "?";
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "?");
    DS_CHECK(realpath(path, p->file) != NULL, DS_ERR_CONFIG,
             "energy.path: cannot find the energy plugin library %s (relative to the working directory %s): %s",
             path, cwd, strerror(errno));
    DS_TRY(ds_sha256_file(p->file, p->sha256));
    dlerror();
    p->handle = dlopen(p->file, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        const char *why = dlerror();
        return ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                            "energy plugin %s: cannot load it: %s", p->file, why ? why : "dlopen failed");
    }
    ds_energy_plugin_fn *entry = NULL;
    *(void **)(&entry) = dlsym(p->handle, DS_ENERGY_PLUGIN_SYMBOL);
    if (!entry) {
        dlclose(p->handle);
        return ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                            "energy plugin %s has no entry point '%s' (define it with "
                            "DS_ENERGY_PLUGIN(table, has_gradient) from diffsamp/energy.h)",
                            p->file, DS_ENERGY_PLUGIN_SYMBOL);
    }
    p->info = entry();
    ds_status rc = DS_OK;
    if (!p->info) {
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "energy plugin %s: its entry point returned NULL", p->file);
    } else if (p->info->abi_version != DS_ENERGY_ABI_VERSION) { /* read nothing else */
        rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                          "energy plugin %s was built for energy ABI version %d; this diffsamp has version %d "
                          "(rebuild it against this diffsamp's diffsamp/energy.h: pkg-config --cflags diffsamp)",
                          p->file, p->info->abi_version, DS_ENERGY_ABI_VERSION);
    } else if (p->info->real_size != (int)sizeof(ds_real)) {
        rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                          "energy plugin %s was built with ds_real of %d bytes; this diffsamp uses %s (%d bytes): "
                          "build it without DS_REAL_DOUBLE/DS_REAL_FLOAT defines", p->file, p->info->real_size,
                          DS_REAL_NAME, (int)sizeof(ds_real));
    } else {
        p->inner = p->info->vtable;
        rc = check_table(p);
    }
    if (rc != DS_OK) {
        dlclose(p->handle);
        return rc;
    }
    const ds_energy_vtable *in = p->inner;
    p->keys[0] = base_keys[0];
    for (int i = 0; i < in->nkeys; i++) p->keys[1 + i] = in->keys[i];
    char doc[sizeof p->doc];
    snprintf(doc, sizeof doc, "%s from %s: %s", in->name, path, in->doc);
    memcpy(p->doc, doc, sizeof doc);
    p->vt = (ds_energy_vtable){
        .abi_version = DS_ENERGY_ABI_VERSION,
        .name = "plugin",
        .doc = p->doc,
        .default_dim = in->default_dim,
        .dims = in->dims,
        .cond_dim = in->cond_dim,
        .keys = p->keys,
        .nkeys = 1 + in->nkeys,
        .check_dim = in->check_dim, /* called with dim only: the library's own */
        .create = ad_create,
        .destroy = ad_destroy,
        .log_reward = ad_log_reward,
        .hvp = in->hvp ? ad_hvp : NULL,
        .sample = in->sample ? ad_sample : NULL,
        .log_z = in->log_z ? ad_log_z : NULL,
        .mode_grid = in->mode_grid ? ad_mode_grid : NULL,
    };
    p->lib = (ds_energy_plugin_lib){p->path, p->file, p->sha256, p->info->has_gradient != 0};
    nslots++;
    *out = p;
    return DS_OK;
}

static plugin_slot *find_slot(const char *path)
{
    for (int i = 0; i < nslots; i++)
        if (strcmp(slots[i].path, path) == 0) return &slots[i];
    return NULL;
}

extern const ds_energy_vtable ds_energy_plugin_base;

ds_status ds_energy_family(const char *name, const ds_energy_args *args, const ds_energy_vtable **out)
{
    DS_CHECK(out != NULL, DS_ERR_INVALID, "ds_energy_family: out is NULL");
    *out = NULL;
    const ds_energy_vtable *vt = ds_energy_lookup(name);
    char names[512];
    DS_CHECK(vt != NULL, DS_ERR_CONFIG, "unknown energy '%s'; registered energies are: %s", name ? name : "(null)",
             ds_energy_names(names, sizeof names));
    const char *path = NULL;
    for (int j = 0; vt == &ds_energy_plugin_base && args && j < args->count && j < DS_ENERGY_MAX_ARGS; j++)
        if (strcmp(args->v[j].key, "path") == 0 && args->v[j].text[0]) path = args->v[j].text;
    if (!path) {
        *out = vt;
        return DS_OK;
    }
    plugin_slot *p = find_slot(path);
    if (!p) DS_TRY(plugin_load(path, &p));
    *out = &p->vt;
    return DS_OK;
}

/* -------------------------------------------------------------- adapter */

/* The family "plugin" before energy.path is known: any dim. */
static ds_status base_check_dim(int dim)
{
    DS_CHECK(dim >= 1, DS_ERR_CONFIG, "energy 'plugin': dim must be positive; got %d", dim);
    return DS_OK;
}

/* Every value of a (n) finite, else an error naming the file and what. */
static ds_status check_finite(const plugin_inst *p, const char *what, size_t n, int row_len, const ds_real *a)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite((double)a[i]))
            return ds_error_set(DS_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                                "energy plugin %s (%s): %s returned %g at row %zu (a plugin must return finite "
                                "values)", p->slot->file, p->slot->inner->name, what, (double)a[i],
                                i / (size_t)row_len);
    return DS_OK;
}

static ds_status ad_create(int dim, const ds_energy_args *args, void **state)
{
    /* args: path, then the library's keys in table order. */
    const plugin_slot *s = find_slot(args->v[0].text);
    DS_CHECK(s != NULL, DS_ERR_INVALID, "energy plugin %s is not loaded", args->v[0].text);
    ds_energy_args *inner_args = malloc(sizeof *inner_args);
    plugin_inst *p = calloc(1, sizeof *p);
    ds_real *x = calloc((size_t)dim * 3, sizeof *x);
    ds_real lr = 0;
    ds_status rc = DS_OK;
    if (!inner_args || !p || !x) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for an energy plugin");
        goto fail;
    }
    inner_args->count = args->count - 1;
    for (int i = 1; i < args->count; i++) inner_args->v[i - 1] = args->v[i];
    p->slot = s;
    rc = s->inner->create(dim, inner_args, &p->state);
    if (rc != DS_OK) {
        ds_error_trace(__FILE__, __LINE__, __func__);
        goto fail;
    }
    /* A first evaluation at x = 0, where samplers start: non-finite values
     * are refused now rather than at the first iteration. */
    DS_TRY_GOTO(rc, ad_log_reward(p, dim, 1, x, NULL, &lr, s->lib.has_gradient ? x + dim : NULL), fail);
    if (s->inner->hvp) {
        for (int j = 0; j < dim; j++) x[dim + j] = 1;
        DS_TRY_GOTO(rc, ad_hvp(p, dim, 1, x, NULL, x + dim, x + 2 * (size_t)dim), fail);
    }
    if (!s->announced) {
        int init = 0, rank = 0;
        MPI_Initialized(&init);
        if (init) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        char missing[1024];
        if (rank == 0)
            fprintf(stderr, "energy plugin %s: %s, %s, sha256 %s; %s\n", s->file, s->inner->name,
                    s->inner->doc, s->sha256,
                    ds_energy_plugin_missing(s->inner, s->lib.has_gradient, missing, sizeof missing));
        ((plugin_slot *)s)->announced = 1;
    }
    last_lib = &s->lib;
    *state = p;
    free(inner_args);
    free(x);
    return DS_OK;
fail:
    if (p && p->state) s->inner->destroy(p->state);
    free(p);
    free(inner_args);
    free(x);
    return rc;
}

static void ad_destroy(void *state)
{
    plugin_inst *p = state;
    if (!p) return;
    p->slot->inner->destroy(p->state);
    free(p);
}

static ds_status ad_log_reward(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                               ds_real *log_r, ds_real *grad)
{
    const plugin_inst *p = state;
    DS_CHECK(!grad || p->slot->lib.has_gradient, DS_ERR_CONFIG,
             "energy plugin %s (%s) has no gradient (it says has_gradient 0): sampler.langevin (LP), local "
             "search and the on-policy objectives need grad log R", p->slot->file, p->slot->inner->name);
    ds_status rc = p->slot->inner->log_reward(p->state, dim, n, x, cond, log_r, grad);
    if (rc != DS_OK) return ds_error_trace(__FILE__, __LINE__, __func__), rc;
    DS_TRY(check_finite(p, "log_reward", (size_t)n, 1, log_r));
    if (grad) DS_TRY(check_finite(p, "the gradient", (size_t)n * dim, dim, grad));
    return DS_OK;
}

static ds_status ad_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                        const ds_real *v, ds_real *hv)
{
    const plugin_inst *p = state;
    ds_status rc = p->slot->inner->hvp(p->state, dim, n, x, cond, v, hv);
    if (rc != DS_OK) return ds_error_trace(__FILE__, __LINE__, __func__), rc;
    DS_TRY(check_finite(p, "hvp", (size_t)n * dim, dim, hv));
    return DS_OK;
}

static ds_status ad_sample(const void *state, int dim, ds_rng r, uint64_t first, int n, ds_real *x)
{
    const plugin_inst *p = state;
    ds_status rc = p->slot->inner->sample(p->state, dim, r, first, n, x);
    if (rc != DS_OK) return ds_error_trace(__FILE__, __LINE__, __func__), rc;
    DS_TRY(check_finite(p, "sample", (size_t)n * dim, dim, x));
    return DS_OK;
}

static ds_status ad_log_z(const void *state, int dim, double *log_z)
{
    const plugin_inst *p = state;
    ds_status rc = p->slot->inner->log_z(p->state, dim, log_z);
    if (rc != DS_OK) return ds_error_trace(__FILE__, __LINE__, __func__), rc;
    DS_CHECK(isfinite(*log_z), DS_ERR_NUMERIC, "energy plugin %s (%s): log_z returned %g (must be finite)",
             p->slot->file, p->slot->inner->name, *log_z);
    return DS_OK;
}

static int ad_mode_grid(const void *state, int dim, int *per_axis, double *spacing)
{
    const plugin_inst *p = state;
    return p->slot->inner->mode_grid(p->state, dim, per_axis, spacing);
}

const ds_energy_plugin_lib *ds_energy_plugin_of(const ds_energy *e)
{
    if (!e || !e->vt || e->vt->create != ad_create || !e->state) return NULL;
    return &((const plugin_inst *)e->state)->slot->lib;
}

const ds_energy_plugin_lib *ds_energy_plugin_last(void) { return last_lib; }

/* ------------------------------------------------------ the family "plugin" */

static ds_status base_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    (void)args;
    *state = NULL;
    return ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                        "energy 'plugin' needs energy.path: the shared library of the energy (see README, "
                        "\"Your own energy\")");
}

static void base_destroy(void *state) { (void)state; }

static ds_status base_log_reward(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                                 ds_real *log_r, ds_real *grad)
{
    (void)state; (void)dim; (void)n; (void)x; (void)cond; (void)log_r; (void)grad;
    return ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "energy 'plugin' without a library");
}

const ds_energy_vtable ds_energy_plugin_base = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "plugin",
    .doc = "an energy from a shared library: energy.path and the library's own keys (README: your own energy)",
    .default_dim = 1,
    .dims = "what the library accepts",
    .check_dim = base_check_dim,
    DS_ENERGY_KEYS(base_keys),
    .create = base_create,
    .destroy = base_destroy,
    .log_reward = base_log_reward,
};
