/* testutil: helpers shared by the test programs: where ../shared is, reading
 * fixture datasets from HDF5 into double arrays, and comparisons. */
#ifndef DS_TESTUTIL_H
#define DS_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#define DS_TEST_SKIP 77

/* Path of the parity fixtures file, or NULL (with a "SKIPPED" line printed
 * to stdout naming what is missing) when ../shared is absent. */
const char *ds_test_fixture_path(void);
/* Path of a file under ../shared (e.g. "data/mnist/..."), or NULL if absent. */
const char *ds_test_shared_file(const char *rel);

/* Reads dataset `name` of file `path` into a new malloc'ed double array;
 * *n gets the element count, dims (up to 4) and *rank the shape when
 * not NULL. Returns NULL (and prints why) when missing. */
double *ds_test_read(const char *path, const char *name, size_t *n, size_t dims[4], int *rank);
/* Reads a numeric (double) or boolean/int attribute of object `obj`. */
int ds_test_read_attr(const char *path, const char *obj, const char *attr, double *value);
/* 1 when the object exists in the file. */
int ds_test_exists(const char *path, const char *name);

/* max_i |a_i - b_i| / (atol + rtol * |b_i|) (<= 1 means within tolerance). */
double ds_test_max_err(const double *a, const double *b, size_t n, double atol, double rtol);
/* The same, and *at (may be NULL) gets the index of the worst element. */
double ds_test_max_err_at(const double *a, const double *b, size_t n, double atol, double rtol, size_t *at);

/* Runs a Check suite in this process (no fork) and returns the exit status. */
int ds_test_run(Suite *s);

#endif
