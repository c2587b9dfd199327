/* fuzz_reseal: makes a mutated file's completion record agree with its
 * bytes again, so that the checks behind the record (HDF5's parsing, the
 * checksum attributes, the shapes and bounds) see the mutation too. */
#ifndef DS_FUZZ_RESEAL_H
#define DS_FUZZ_RESEAL_H

#include "../../src/h5io_impl.h"

#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

/* 0 when path now ends in a record of its own bytes (with the datasets of
 * its old record, or none when it had no readable record). */
static inline int fuzz_reseal(const char *path)
{
    ds_h5_index ix = {0, 0, NULL};
    uint64_t content = 0;
    if (ds_h5_record_index(path, &ix, &content) == DS_OK) {
        if (truncate(path, (off_t)content) != 0) {
            ds_h5_index_free(&ix);
            return -1;
        }
    }
    int rc = ds_h5_seal_bytes(path, &ix) == DS_OK ? 0 : -1;
    ds_h5_index_free(&ix);
    return rc;
}

/* With DS_FUZZ_VERBOSE set: how many HDF5 objects and ids are open after a
 * read (a failed open that leaks them shows up here). */
static inline void fuzz_hdf5_census(void)
{
    if (!getenv("DS_FUZZ_VERBOSE")) return;
    hsize_t np = 0, nt = 0, ns = 0, na = 0;
    H5Inmembers(H5I_GENPROP_LST, &np);
    H5Inmembers(H5I_DATATYPE, &nt);
    H5Inmembers(H5I_DATASPACE, &ns);
    H5Inmembers(H5I_ATTR, &na);
    fprintf(stderr, "fuzz: %zd HDF5 objects open; ids: %llu plists, %llu types, %llu spaces, %llu attrs\n",
            H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL), (unsigned long long)np, (unsigned long long)nt,
            (unsigned long long)ns, (unsigned long long)na);
}

#endif
