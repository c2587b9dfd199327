/* banana: an example energy plugin (not a built-in), the twisted Gaussian of
 * Haario et al. (1999):
 *   x1 ~ N(0, s^2),  x2 | x1 ~ N(b (x1^2 - s^2), 1),  x_j ~ N(0, 1) for j > 2,
 * normalised, so log Z = 0. With u = x2 - b (x1^2 - s^2):
 *   log R = -x1^2/(2 s^2) - log s - u^2/2 - sum_{j>2} x_j^2/2 - d/2 log(2 pi)
 *   d/dx1 = -x1/s^2 + 2 b x1 u,  d/dx2 = -u,  d/dxj = -xj
 *   H11 = -1/s^2 + 2 b u - 4 b^2 x1^2,  H12 = 2 b x1,  H22 = Hjj = -1.
 * It has a gradient, an HVP and log Z, and no exact sampler (so diffsamp says
 * at start that ground-truth metrics are off).
 *
 * Build (after `make install`; or -I path/to/diffsamp/include):
 *   cc -shared -fPIC -O2 $(pkg-config --cflags diffsamp) banana.c -o banana.so
 * Use:
 *   energy: {name: plugin, path: ./banana.so, curvature: 0.5}          */
#include <diffsamp/energy.h>

#include <math.h>
#include <stdlib.h>

typedef struct banana {
    double b, s;
} banana;

/* The keys, in table order: energy.curvature and energy.scale. */
static const ds_energy_key banana_keys[] = {
    {"curvature", DS_EKEY_DOUBLE, 0.5, NULL, 0, 10, 0, "b: how far x2's mean bends with x1"},
    {"scale", DS_EKEY_DOUBLE, 2.0, NULL, 0, 100, 1, "s: the std of x1"},
};

static ds_status banana_check_dim(int dim)
{
    DS_CHECK(dim >= 2, DS_ERR_CONFIG, "banana needs dim >= 2; got %d", dim);
    return DS_OK;
}

static ds_status banana_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    banana *p = malloc(sizeof *p);
    DS_ALLOC_CHECK(p);
    p->b = args->v[0].num;
    p->s = args->v[1].num;
    *state = p;
    return DS_OK;
}

static void banana_destroy(void *state) { free(state); }

static ds_status banana_log_reward(const void *state, int dim, int n, const ds_real *x,
                                   const ds_real *cond, ds_real *log_r, ds_real *grad)
{
    (void)cond;
    const banana *p = state;
    for (int k = 0; k < n; k++) {
        const ds_real *xk = x + (size_t)k * dim;
        double x1 = xk[0], u = xk[1] - p->b * (x1 * x1 - p->s * p->s), rest = 0;
        for (int j = 2; j < dim; j++) rest += (double)xk[j] * xk[j];
        log_r[k] = (ds_real)(-0.5 * x1 * x1 / (p->s * p->s) - log(p->s) - 0.5 * u * u - 0.5 * rest -
                             0.5 * dim * DS_LOG_2PI);
        if (grad) {
            ds_real *g = grad + (size_t)k * dim;
            g[0] = (ds_real)(-x1 / (p->s * p->s) + 2 * p->b * x1 * u);
            g[1] = (ds_real)(-u);
            for (int j = 2; j < dim; j++) g[j] = -xk[j];
        }
    }
    return DS_OK;
}

static ds_status banana_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                            const ds_real *v, ds_real *hv)
{
    (void)cond;
    const banana *p = state;
    for (int k = 0; k < n; k++) {
        const ds_real *xk = x + (size_t)k * dim, *vk = v + (size_t)k * dim;
        ds_real *h = hv + (size_t)k * dim;
        double x1 = xk[0], u = xk[1] - p->b * (x1 * x1 - p->s * p->s);
        double h11 = -1 / (p->s * p->s) + 2 * p->b * u - 4 * p->b * p->b * x1 * x1, h12 = 2 * p->b * x1;
        h[0] = (ds_real)(h11 * vk[0] + h12 * vk[1]);
        h[1] = (ds_real)(h12 * vk[0] - vk[1]);
        for (int j = 2; j < dim; j++) h[j] = -vk[j];
    }
    return DS_OK;
}

static ds_status banana_log_z(const void *state, int dim, double *log_z)
{
    (void)state;
    (void)dim;
    *log_z = 0.0;
    return DS_OK;
}

static const ds_energy_vtable banana_table = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "banana",
    .doc = "twisted Gaussian x2 | x1 ~ N(b (x1^2 - s^2), 1) (normalised)",
    .default_dim = 2,
    .dims = "2 or more",
    .check_dim = banana_check_dim,
    DS_ENERGY_KEYS(banana_keys),
    .create = banana_create,
    .destroy = banana_destroy,
    .log_reward = banana_log_reward,
    .hvp = banana_hvp,
    .log_z = banana_log_z,
};

DS_ENERGY_PLUGIN(banana_table, 1)
