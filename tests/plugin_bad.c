/* Broken energy plugins for tests/test_plugin.c and tests/cli_plugin.sh, one
 * per define: BAD_ABI (an entry point of another ABI version), NO_ENTRY (no
 * entry point), NAN_VALUES (log R is NaN away from 0), NO_GRADIENT (a valid
 * plugin without gradient, HVP, sampler or log Z); without a define, a valid
 * plugin with a gradient and no HVP (cli_plugin.sh: the finite-difference HVP). */
#include <diffsamp/energy.h>

#include <math.h>

static ds_status bad_check_dim(int dim) { return dim >= 1 ? DS_OK : DS_ERR_CONFIG; }
static ds_status bad_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    (void)args;
    *state = NULL;
    return DS_OK;
}
static void bad_destroy(void *state) { (void)state; }
static ds_status bad_log_reward(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                                ds_real *log_r, ds_real *grad)
{
    (void)state;
    (void)cond;
    for (int k = 0; k < n; k++) {
        double acc = 0;
        for (int j = 0; j < dim; j++) {
            acc += (double)x[(size_t)k * dim + j] * x[(size_t)k * dim + j];
            if (grad) grad[(size_t)k * dim + j] = -x[(size_t)k * dim + j];
        }
#ifdef NAN_VALUES
        log_r[k] = (ds_real)(acc > 0 ? NAN : 0.0);
#else
        log_r[k] = (ds_real)(-0.5 * acc);
#endif
    }
    return DS_OK;
}

static const ds_energy_vtable bad_table = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "bad",
    .doc = "a test plugin",
    .default_dim = 3,
    .dims = "1 or more",
    .check_dim = bad_check_dim,
    .create = bad_create,
    .destroy = bad_destroy,
    .log_reward = bad_log_reward,
};

#if defined(BAD_ABI)
const ds_energy_plugin_info *ds_energy_plugin(void);
const ds_energy_plugin_info *ds_energy_plugin(void)
{
    static const ds_energy_plugin_info info = {DS_ENERGY_ABI_VERSION + 41, (int)sizeof(ds_real), 1, &bad_table};
    return &info;
}
#elif defined(NO_ENTRY)
int not_an_energy(void);
int not_an_energy(void) { return bad_table.default_dim; }
#elif defined(NO_GRADIENT)
DS_ENERGY_PLUGIN(bad_table, 0)
#else
DS_ENERGY_PLUGIN(bad_table, 1)
#endif
