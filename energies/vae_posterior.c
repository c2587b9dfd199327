/* vae: the posterior p(z | x) of a trained VAE's latent given an image, the
 * conditional target of the paper's VAE experiment (Sendera et al. 2024,
 * section 5.2; gfn-diffusion vae/energies/vae_energy.py):
 *   log R(z; x) = log N(z; 0, I) + sum_j [x_j log p_j + (1 - x_j) log(1 - p_j)],
 *   p = clamp(decoder(z), 1e-5, 1 - 1e-5),
 * the condition x being the image (pixels in [0, 1], cond_dim 784). The VAE
 * comes from energy.file (the layout of vae.h); its latent size is dim.
 * The float program computes log R and its gradient in float (vae_float.c:
 * sgemm and a vectorised pixel pass, 3-4x faster than double, like the
 * reference's torch code); energy.double (or the double build) computes
 * them in double (vae.c). The HVP is always double. log Z(x) = log p(x) is
 * what the sampler estimates, so there is no exact log Z. */
#include "diffsamp/energy.h"
#include "diffsamp/vae.h"

#include <stdlib.h>
#include <string.h>

#define VAE_BLOCK 128 /* rows per decoder pass */
#define VAE_X_DIM 784

typedef struct vae_state {
    ds_vae *vae;
    ds_vae_work *w;
    ds_vae_f *f;  /* the float decoder; NULL when computing in double */
    double *z, *x, *lr, *g, *dz, *hv; /* one block of rows, converted to double */
} vae_state;

enum { VAE_KEY_FILE = 0, VAE_KEY_DOUBLE };
static const ds_energy_key vae_keys[] = {
    {"file", DS_EKEY_STRING, 0, "", 1, DS_ENERGY_TEXT_MAX - 1, 0,
     "HDF5 file of the VAE (fc1..fc4 weights, e.g. ../shared/data/mnist/vae_bce_mnist_100ep.h5)"},
    {"double", DS_EKEY_BOOL, 0, NULL, 0, 1, 0,
     "log R and its gradient in double (slower) instead of float; the double build always is"},
};

static ds_status vae_check_dim(int dim)
{
    DS_CHECK(dim >= 1 && dim <= 4096, DS_ERR_CONFIG,
             "the vae energy's dim is the VAE's latent size (20 for the MNIST VAE); got dim = %d", dim);
    return DS_OK;
}

static void vae_destroy(void *state)
{
    vae_state *s = state;
    if (!s) return;
    ds_vae_destroy(&s->vae);
    ds_vae_work_destroy(&s->w);
    ds_vae_f_destroy(&s->f);
    double *v[] = {s->z, s->x, s->lr, s->g, s->dz, s->hv};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) ds_free(v[i]);
    free(s);
}

static ds_status vae_create(int dim, const ds_energy_args *args, void **state)
{
    *state = NULL;
    const char *path = args->v[VAE_KEY_FILE].text;
    DS_CHECK(path[0] != '\0', DS_ERR_CONFIG,
             "the vae energy needs energy.file, the HDF5 file of a trained VAE (the layout of "
             "../shared/data/mnist/vae_bce_mnist_100ep.h5)");
    vae_state *s = calloc(1, sizeof *s);
    DS_ALLOC_CHECK(s);
    ds_status rc = ds_vae_load(path, &s->vae);
    if (rc == DS_OK && (s->vae->z_dim != dim || s->vae->x_dim != VAE_X_DIM))
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "%s: the VAE has latent size %d and image size %d; energy dim is %d and the vae "
                          "energy takes %d-pixel images", path, s->vae->z_dim, s->vae->x_dim, dim, VAE_X_DIM);
    if (rc == DS_OK) rc = ds_vae_work_create(s->vae, VAE_BLOCK, &s->w);
#if !defined(DS_REAL_DOUBLE)
    if (rc == DS_OK && args->v[VAE_KEY_DOUBLE].num == 0) rc = ds_vae_f_create(s->vae, VAE_BLOCK, &s->f);
#endif
    if (rc == DS_OK) {
        const size_t B = VAE_BLOCK, Z = (size_t)dim;
        s->z = ds_calloc(B * Z, sizeof(double));
        s->x = ds_calloc(B * VAE_X_DIM, sizeof(double));
        s->lr = ds_calloc(B, sizeof(double));
        s->g = ds_calloc(B * Z, sizeof(double));
        s->dz = ds_calloc(B * Z, sizeof(double));
        s->hv = ds_calloc(B * Z, sizeof(double));
        if (!s->z || !s->x || !s->lr || !s->g || !s->dz || !s->hv)
            rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for the vae energy");
    }
    if (rc != DS_OK) {
        vae_destroy(s);
        return rc;
    }
    *state = s;
    return DS_OK;
}

/* Copies block rows [k0, k0+m) of z and the condition into the double buffers. */
static void load_block(vae_state *s, int dim, int k0, int m, const ds_real *x, const ds_real *cond)
{
    for (size_t i = 0; i < (size_t)m * dim; i++) s->z[i] = (double)x[(size_t)k0 * dim + i];
    for (size_t i = 0; i < (size_t)m * VAE_X_DIM; i++) s->x[i] = (double)cond[(size_t)k0 * VAE_X_DIM + i];
}

/* The state's block buffers are scratch: one energy is used by one thread. */
static ds_status vae_log_reward(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                                ds_real *log_r, ds_real *grad)
{
    vae_state *s = (vae_state *)state;
    DS_CHECK(cond != NULL, DS_ERR_INVALID, "the vae energy needs the image of every row");
#if !defined(DS_REAL_DOUBLE)
    if (s->f) {
        ds_vae_log_posterior_f(s->f, n, x, cond, log_r, grad);
        return DS_OK;
    }
#endif
    for (int k0 = 0; k0 < n; k0 += VAE_BLOCK) {
        const int m = n - k0 < VAE_BLOCK ? n - k0 : VAE_BLOCK;
        load_block(s, dim, k0, m, x, cond);
        ds_vae_log_posterior(s->vae, s->w, m, s->z, s->x, s->lr, grad ? s->g : NULL);
        for (int r = 0; r < m; r++) log_r[k0 + r] = (ds_real)s->lr[r];
        if (grad)
            for (size_t i = 0; i < (size_t)m * dim; i++) grad[(size_t)k0 * dim + i] = (ds_real)s->g[i];
    }
    return DS_OK;
}

static ds_status vae_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                         const ds_real *v, ds_real *hv)
{
    vae_state *s = (vae_state *)state;
    DS_CHECK(cond != NULL, DS_ERR_INVALID, "the vae energy needs the image of every row");
    for (int k0 = 0; k0 < n; k0 += VAE_BLOCK) {
        const int m = n - k0 < VAE_BLOCK ? n - k0 : VAE_BLOCK;
        load_block(s, dim, k0, m, x, cond);
        for (size_t i = 0; i < (size_t)m * dim; i++) s->dz[i] = (double)v[(size_t)k0 * dim + i];
        ds_vae_posterior_hvp(s->vae, s->w, m, s->z, s->x, s->dz, s->hv);
        for (size_t i = 0; i < (size_t)m * dim; i++) hv[(size_t)k0 * dim + i] = (ds_real)s->hv[i];
    }
    return DS_OK;
}

const ds_energy_vtable ds_energy_vae = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "vae",
    .doc = "posterior p(z | x) of a trained VAE's latent given an image x (conditional; energy.file)",
    .default_dim = 20,
    .dims = "the VAE's latent size (20 for MNIST)",
    .cond_dim = VAE_X_DIM,
    DS_ENERGY_KEYS(vae_keys),
    .check_dim = vae_check_dim,
    .create = vae_create,
    .destroy = vae_destroy,
    .log_reward = vae_log_reward,
    .hvp = vae_hvp,
};
