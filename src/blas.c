/* blas: see include/diffsamp/blas.h. OpenBLAS's entry points are weak
 * references, so another CBLAS can be linked in its place. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/blas.h"
#include "smm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *openblas_get_corename(void) __attribute__((weak));
char *openblas_get_config(void) __attribute__((weak));
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));

static char describe[512] = "";

/* who runs the network's products, when it is not BLAS alone */
static const char *products(void)
{
#if defined(DS_USE_LIBXSMM)
    return "network products by libxsmm (DS_LIBXSMM), the rest by ";
#else
    return ds_smm_ok(64, 64) ? "network products of widths that are multiples of 16 by diffsamp's kernel (src/smm.c; DS_SMM=0 for BLAS), "
                               "the rest by "
                             : "";
#endif
}


/* The best of OpenBLAS 0.3.21's x86-64 kernel families this CPU can run, or
 * NULL. SkylakeX needs AVX-512 F/CD/BW/DQ/VL; Haswell AVX2 and FMA. */
static const char *best_core(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

void ds_blas_tune(void)
{
    if (!openblas_get_corename) {
        snprintf(describe, sizeof describe, "a CBLAS other than OpenBLAS");
        return;
    }
    const char *found = openblas_get_corename();
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *want = best_core();
    if (user || !found || strcmp(found, "Prescott") != 0 || !want || !gotoblas_dynamic_init ||
        !gotoblas_dynamic_quit) {
        snprintf(describe, sizeof describe, "%sOpenBLAS, %s kernels%s", products(), found ? found : "unknown",
                 user ? " (OPENBLAS_CORETYPE)" : "");
        return;
    }
    /* OpenBLAS reads OPENBLAS_CORETYPE when it picks its kernels; pick again. */
    gotoblas_dynamic_quit();
    setenv("OPENBLAS_CORETYPE", want, 1);
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    const char *now = openblas_get_corename();
    snprintf(describe, sizeof describe, "%sOpenBLAS, %s kernels (it did not know this CPU and fell back to %s; "
             "chosen from the CPU's flags)", products(), now ? now : "unknown", found);
}

const char *ds_blas_describe(void)
{
    if (!describe[0]) {
        const char *c = openblas_get_corename ? openblas_get_corename() : NULL;
        snprintf(describe, sizeof describe, "%s%s%s%s", products(), c ? "OpenBLAS, " : "a CBLAS other than OpenBLAS",
                 c ? c : "", c ? " kernels" : "");
    }
    return describe;
}
