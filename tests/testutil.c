#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fixture_path[4096];

const char *ds_test_shared_file(const char *rel)
{
    static char buf[4096];
    int len = snprintf(buf, sizeof buf, "%s/%s", DS_SHARED_DIR, rel);
    if (len < 0 || (size_t)len >= sizeof buf) return NULL;
    if (access(buf, R_OK) != 0) {
        printf("SKIPPED: %s is absent (the shared fixtures live in ../shared beside the clone)\n", buf);
        return NULL;
    }
    return buf;
}

const char *ds_test_fixture_path(void)
{
    const char *p = ds_test_shared_file("fixtures/reference_parity.h5");
    if (!p) return NULL;
    snprintf(fixture_path, sizeof fixture_path, "%s", p);
    return fixture_path;
}

int ds_test_exists(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    int ok = 1;
    /* Walk each component so a missing intermediate group is not an error. */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            H5E_BEGIN_TRY { ok = H5Lexists(f, buf, H5P_DEFAULT) > 0; } H5E_END_TRY;
            *p = c;
            if (!ok || c == '\0') break;
        }
    }
    H5Fclose(f);
    return ok;
}

double *ds_test_read(const char *path, const char *name, size_t *n, size_t dims[4], int *rank)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { printf("cannot open %s\n", path); return NULL; }
    hid_t d;
    H5E_BEGIN_TRY { d = H5Dopen2(f, name, H5P_DEFAULT); } H5E_END_TRY;
    if (d < 0) { printf("no dataset %s in %s\n", name, path); H5Fclose(f); return NULL; }
    hid_t sp = H5Dget_space(d);
    hsize_t hd[8] = {0};
    int r = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, hd, NULL);
    size_t count = 1;
    for (int i = 0; i < r; i++) count *= (size_t)hd[i];
    double *buf = malloc(count * sizeof *buf);
    H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (n) *n = count;
    if (rank) *rank = r;
    if (dims) for (int i = 0; i < 4; i++) dims[i] = i < r ? (size_t)hd[i] : 1;
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

int ds_test_read_attr(const char *path, const char *obj, const char *attr, double *value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t a;
    H5E_BEGIN_TRY { a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT); } H5E_END_TRY;
    if (a < 0) { H5Fclose(f); return -1; }
    herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, value);
    H5Aclose(a);
    H5Fclose(f);
    return rc < 0 ? -1 : 0;
}

double ds_test_max_err_at(const double *a, const double *b, size_t n, double atol, double rtol, size_t *at)
{
    double worst = 0.0;
    size_t where = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (isnan(e)) e = INFINITY;
        if (e > worst) {
            worst = e;
            where = i;
        }
    }
    if (at) *at = where;
    return worst;
}

double ds_test_max_err(const double *a, const double *b, size_t n, double atol, double rtol)
{
    return ds_test_max_err_at(a, b, n, atol, rtol, NULL);
}

int ds_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
