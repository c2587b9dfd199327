/* energy: target distributions known through an unnormalised density
 * R(x) = exp(-E(x)) on R^d, behind one vtable and a registry by name.
 *
 * Each energies/<family>.c exposes only its ds_energy_vtable(s); the registry
 * (energies/registry.c) maps names to tables. Every function is batched over
 * n points stored row-major (n, dim). Energies compute in double internally
 * and read/write ds_real arrays.
 *
 * A family declares the keys of its `energy:` config section in a table
 * (ds_energy_key: name, type, default, bounds, doc); the config reader
 * validates `energy.<key>` against the chosen family's table with
 * file:line:col, and `create` receives the resolved values (ds_energy_args),
 * so a family can take a data file, weights or plugin options.
 *
 * Conditional targets (log R(x | c), e.g. a VAE posterior given an image)
 * declare cond_dim > 0 and receive a per-row condition c (n, cond_dim);
 * every built-in family is unconditional (cond_dim 0, cond NULL). */
#ifndef DS_ENERGY_H
#define DS_ENERGY_H

#include "diffsamp/core.h"
#include "diffsamp/rng.h"

#include <stdio.h>

/* Version of the binary interface between diffsamp and an energy family:
 * the layout of ds_energy_vtable, ds_energy_key, ds_energy_arg and
 * ds_energy_args, the meaning of their fields and the signatures and
 * contracts of the vtable functions. Any change to one of these (a field
 * added, removed or reordered, a function argument changed, DS_ENERGY_MAX_ARGS
 * or DS_ENERGY_TEXT_MAX changed; the plugin entry point and
 * ds_energy_plugin_info below, except that abi_version stays its first field)
 * bumps it. A family sets
 * .abi_version = DS_ENERGY_ABI_VERSION; ds_energy_create_from refuses a table
 * built against another version (a plugin compiled for an older diffsamp).
 * Adding a family, or a key to a family, does not bump it. */
#define DS_ENERGY_ABI_VERSION 1

#define DS_ENERGY_MAX_ARGS 16   /* keys per family */
#define DS_ENERGY_KEY_MAX 32    /* characters of a key name, with the NUL */
#define DS_ENERGY_TEXT_MAX 1024 /* characters of a string value, with the NUL */

typedef struct ds_energy ds_energy;

typedef enum ds_energy_key_type {
    DS_EKEY_BOOL = 0,   /* stored in num as 0 or 1 */
    DS_EKEY_INT,        /* stored in num (exact: |v| <= 2^53) */
    DS_EKEY_DOUBLE,     /* stored in num, finite */
    DS_EKEY_STRING      /* stored in text (a file path, a plugin option) */
} ds_energy_key_type;

/* One key of a family's `energy:` section: energy.<name>. Numbers are
 * allowed in [min, max] (in (min, max] with lo_open); a string's length in
 * [min, max]. These bounds are the only ones the family relies on: the
 * config reader, the registry and the documentation all use them. */
typedef struct ds_energy_key {
    const char *name;        /* lower case, [a-z0-9_], shorter than DS_ENERGY_KEY_MAX */
    ds_energy_key_type type;
    double def;              /* default of a number or boolean */
    const char *def_text;    /* default of a string (NULL = "") */
    double min, max;
    int lo_open;
    const char *doc;         /* one line, for `diffsamp config` */
} ds_energy_key;

/* A value of one key. */
typedef struct ds_energy_arg {
    char key[DS_ENERGY_KEY_MAX];
    double num;                    /* bool, int and double keys */
    char text[DS_ENERGY_TEXT_MAX]; /* string keys */
} ds_energy_arg;

/* A set of key values. As settings (ds_settings.energy_args) it holds only
 * the keys the user set, in any order; ds_energy_create resolves it against
 * the family's table and hands create() every key, in table order, with
 * defaults filled in. */
typedef struct ds_energy_args {
    int count;
    ds_energy_arg v[DS_ENERGY_MAX_ARGS];
} ds_energy_args;

/* One target family. Optional entries are NULL (or 0) when unsupported. */
typedef struct ds_energy_vtable {
    int abi_version;   /* DS_ENERGY_ABI_VERSION of the headers it was built with */
    const char *name;  /* registry name, e.g. "25gmm" */
    const char *doc;   /* one line for `diffsamp energies` */
    int default_dim;
    const char *dims;  /* the dimensions check_dim accepts, in words ("2", "even, 2 to 65536") */
    int cond_dim;      /* length of the per-row condition; 0 = unconditional */
    const ds_energy_key *keys; /* the family's keys (NULL when nkeys = 0) */
    int nkeys;
    /* Returns DS_OK when dim is allowed, DS_ERR_CONFIG with a message when not. */
    ds_status (*check_dim)(int dim);
    /* Builds the family's private state for dim (may set *state = NULL).
     * args holds every key of the table, in table order, validated against
     * its bounds; it is only valid during the call (copy what you keep).
     * On error *state is left NULL or freed by the family. */
    ds_status (*create)(int dim, const ds_energy_args *args, void **state);
    void (*destroy)(void *state);
    /* log R at x (n, dim) into log_r (n); when grad != NULL also grad_x log R
     * (n, dim). cond is (n, cond_dim), NULL when cond_dim is 0. */
    ds_status (*log_reward)(const void *state, int dim, int n, const ds_real *x,
                            const ds_real *cond, ds_real *log_r, ds_real *grad);
    /* Optional: hv (n, dim) = Hessian_x of log R at x_k times v_k, for each
     * point k (cond as in log_reward). */
    ds_status (*hvp)(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                     const ds_real *v, ds_real *hv);
    /* Optional: n exact samples into x (n, dim). Sample k uses stream r at
     * (iteration = 0, sample = first + k), so any slice of a sample set can be
     * drawn independently (and on any rank). */
    ds_status (*sample)(const void *state, int dim, ds_rng r, uint64_t first, int n, ds_real *x);
    /* Optional: the exact log Z = log int R(x) dx for dim. */
    ds_status (*log_z)(const void *state, int dim, double *log_z);
    /* Optional (2-D mixtures on a grid): returns 1 and sets per_axis and
     * spacing when the modes are the per_axis^2 points of a square grid
     * spaced `spacing` apart and centred on 0 (for the mode-coverage metric);
     * 0 when there is no such grid. */
    int (*mode_grid)(const void *state, int dim, int *per_axis, double *spacing);
} ds_energy_vtable;

/* Designated initialiser of a family's key table and its length:
 * `DS_ENERGY_KEYS(my_keys),` inside a ds_energy_vtable initialiser. */
#define DS_ENERGY_KEYS(table) .keys = (table), .nkeys = (int)(sizeof(table) / sizeof((table)[0]))

/* An instance: a family at a dimension. Fields are read-only for callers. */
/* Accounting of energy evaluations by purpose, for comparisons at equal
 * numbers of target evaluations (SGDS, arXiv 2505.19552). Every call of
 * ds_energy_log_reward* adds its points to value[purpose] (and to
 * grad[purpose] when the gradient was asked for), every HVP call to
 * hvp[purpose]; the caller says what the calls are for. */
typedef enum ds_energy_purpose {
    DS_ECALL_TRAIN = 0, /* log R of trajectories' terminal states in training */
    DS_ECALL_LP,        /* per-step terms of training passes: LP's grad log R, partial energy, HVPs */
    DS_ECALL_LS,        /* local search (MALA) */
    DS_ECALL_EVAL,      /* evaluation and sample sets */
    DS_ECALL_NPURPOSE
} ds_energy_purpose;
typedef struct ds_energy_calls {
    int purpose;                      /* what calls count as now (DS_ECALL_TRAIN at create) */
    double value[DS_ECALL_NPURPOSE];  /* points at which log R was evaluated */
    double grad[DS_ECALL_NPURPOSE];   /* of those, points where grad log R was too */
    double hvp[DS_ECALL_NPURPOSE];    /* Hessian-vector products */
} ds_energy_calls;

/* An instance: a family at a dimension. Fields are read-only for callers
 * (calls through ds_energy_set_purpose). */
struct ds_energy {
    const ds_energy_vtable *vt;
    int dim;
    int has_log_z;  /* 1 when log_z is exact */
    double log_z;
    void *state;
    ds_energy_calls *calls; /* this process's counts (counting does not change the energy) */
};

/* Sets what the next evaluations of e count as; returns the previous purpose. */
int ds_energy_set_purpose(const ds_energy *e, int purpose);
/* Switches to purpose `to` only when the current one is `from` (e.g. the
 * per-step terms of a training pass, TRAIN -> LP, but not of an evaluation);
 * returns the previous purpose, to restore with ds_energy_set_purpose. */
int ds_energy_refine_purpose(const ds_energy *e, int from, int to);

/* Looks name up in the registry and builds it with ds_energy_create_from.
 * An unknown name fails with DS_ERR_CONFIG and a message that lists every
 * registered name. */
ds_status ds_energy_create(const char *name, int dim, const ds_energy_args *args, ds_energy **out);
/* Builds the family vt at dim (0 = the family's default) with the key
 * values args (NULL = every default). Fails with DS_ERR_FORMAT when
 * vt->abi_version is not DS_ENERGY_ABI_VERSION, with DS_ERR_CONFIG (naming
 * the family and its keys) for a bad dim, a key the family does not have,
 * or a value out of the key's bounds. The caller owns *out and frees it with
 * ds_energy_destroy. */
ds_status ds_energy_create_from(const ds_energy_vtable *vt, int dim, const ds_energy_args *args,
                                ds_energy **out);
/* Frees *e (NULL allowed) and sets it to NULL. */
void ds_energy_destroy(ds_energy **e);

/* Batched log R (and gradient when grad != NULL) of an unconditional energy;
 * see the vtable. Fails with DS_ERR_INVALID on bad arguments or when the
 * energy is conditional. Non-finite values are returned as they are:
 * callers decide (LP uses nan_to_num, training checks the loss). */
ds_status ds_energy_log_reward(const ds_energy *e, int n, const ds_real *x, ds_real *log_r, ds_real *grad);
/* The same with a per-row condition cond (n, cond_dim): required when the
 * energy is conditional, NULL when it is not (DS_ERR_INVALID otherwise). */
ds_status ds_energy_log_reward_cond(const ds_energy *e, int n, const ds_real *x, const ds_real *cond,
                                    ds_real *log_r, ds_real *grad);
/* Hessian-vector products; DS_ERR_INVALID when the family has none. */
ds_status ds_energy_hvp(const ds_energy *e, int n, const ds_real *x, const ds_real *v, ds_real *hv);
ds_status ds_energy_hvp_cond(const ds_energy *e, int n, const ds_real *x, const ds_real *cond,
                             const ds_real *v, ds_real *hv);
/* Exact samples; DS_ERR_INVALID when the family has no sampler. */
ds_status ds_energy_sample(const ds_energy *e, ds_rng r, uint64_t first, int n, ds_real *x);
int ds_energy_has_sampler(const ds_energy *e);
/* 1 with per_axis and spacing set when the energy's modes form a 2-D grid
 * (the family's mode_grid hook), else 0. */
int ds_energy_mode_grid(const ds_energy *e, int *per_axis, double *spacing);

/* Registry access: the number of families, the i-th table, a table by name
 * (NULL when unknown), and "9gmm, 25gmm, ..." into buf (truncated with
 * "..." when it does not fit). */
int ds_energy_registry_count(void);
const ds_energy_vtable *ds_energy_registry_get(int i);
const ds_energy_vtable *ds_energy_lookup(const char *name);
const char *ds_energy_names(char *buf, size_t size);
/* The key of vt called name, or NULL. */
const ds_energy_key *ds_energy_find_key(const ds_energy_vtable *vt, const char *name);
/* "std, spacing" (or "none") into buf, for messages. */
const char *ds_energy_key_names(const ds_energy_vtable *vt, char *buf, size_t size);
/* Writes "name dim log_z doc" lines for `diffsamp energies`. */
void ds_energy_list(FILE *out);

/* ------------------------------------------------------------------ plugins
 *
 * An energy in a shared library, built against this header alone:
 *   cc -shared -fPIC -O2 $(pkg-config --cflags diffsamp) myenergy.c -o myenergy.so
 * and named in the config as
 *   energy: {name: plugin, path: ./myenergy.so, ...its own keys...}
 * The library defines its ds_energy_vtable (name, keys, dims, functions as
 * for a built-in family) and exports it with DS_ENERGY_PLUGIN(table,
 * has_gradient). diffsamp dlopens the file (path relative to the working
 * directory), checks the ABI version and the precision of ds_real (the
 * program runs in float: do not define DS_REAL_DOUBLE), validates the table
 * (keys, default dimension), and then treats it like a built-in: its keys
 * are validated by the config reader with file:line:col, the optional parts
 * (HVP, exact sampler, log Z) may be NULL, and the gradient may be absent
 * (has_gradient 0: log_reward is never asked for one, and what needs it is
 * refused). Every value it returns must be finite: a NaN or infinity is an
 * error naming the file. Its functions may call ds_error_set (and DS_CHECK)
 * and the ds_rng functions, which the diffsamp executable exports.
 * Checkpoints and sample sets record the library's path and SHA-256. */

/* What the entry point returns. abi_version stays the first field in every
 * version, so that a library of another version is recognised and refused. */
typedef struct ds_energy_plugin_info {
    int abi_version;   /* DS_ENERGY_ABI_VERSION */
    int real_size;     /* sizeof(ds_real) */
    int has_gradient;  /* 1 when log_reward fills grad when asked */
    const ds_energy_vtable *vtable;
} ds_energy_plugin_info;

/* The exported entry point: a function of this type named
 * DS_ENERGY_PLUGIN_SYMBOL. */
typedef const ds_energy_plugin_info *ds_energy_plugin_fn(void);
#define DS_ENERGY_PLUGIN_SYMBOL "ds_energy_plugin"

/* Defines the entry point of a plugin whose family is `table`. */
#define DS_ENERGY_PLUGIN(table, has_gradient)                                          \
    const ds_energy_plugin_info *ds_energy_plugin(void);                               \
    const ds_energy_plugin_info *ds_energy_plugin(void)                                \
    {                                                                                  \
        static const ds_energy_plugin_info info = {DS_ENERGY_ABI_VERSION, (int)sizeof(ds_real), \
                                                   (has_gradient), &(table)};         \
        return &info;                                                                  \
    }

/* The family table for name with the key values args (the settings' own:
 * only the keys set): the registered table, except for "plugin" with an
 * energy.path, whose table is the library's (loaded once per process and
 * path, kept loaded): its keys are "path" then the library's keys. Fails with
 * DS_ERR_CONFIG for an unknown name, and for a library that cannot be
 * loaded, lacks the entry point, has another ABI version or precision, or
 * declares a bad table (DS_ERR_FORMAT for the version), naming the file. */
ds_status ds_energy_family(const char *name, const ds_energy_args *args, const ds_energy_vtable **out);

/* A loaded plugin library. */
typedef struct ds_energy_plugin_lib {
    const char *path;    /* energy.path as given */
    const char *file;    /* its absolute path */
    const char *sha256;  /* SHA-256 of the file's bytes, 64 hex digits */
    int has_gradient;
} ds_energy_plugin_lib;
/* The library of e when e comes from a plugin (else NULL). */
const ds_energy_plugin_lib *ds_energy_plugin_of(const ds_energy *e);
/* The library that the last plugin energy created in this process came
 * from, or NULL (what HDF5 writers record: a process trains one energy). */
const ds_energy_plugin_lib *ds_energy_plugin_last(void);
/* "what the missing optional parts disable" for a plugin's table, into buf. */
const char *ds_energy_plugin_missing(const ds_energy_vtable *vt, int has_gradient, char *buf, size_t size);
/* SHA-256 of the bytes of file into hex (65 chars with the NUL). */
ds_status ds_sha256_file(const char *file, char hex[65]);

#endif
