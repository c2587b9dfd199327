/* fuzz_samples: the sample-set reader (ds_samples_read) on any bytes, as
 * they are and resealed (see fuzz_checkpoint.c). */
#include "fuzz_common.h"
#include "fuzz_reseal.h"

#include "diffsamp/h5io.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mpi_init();
    return 0;
}

static void read_samples(const char *path)
{
    ds_samples_set s;
    ds_status rc = ds_samples_read(MPI_COMM_WORLD, path, &s);
    fuzz_report(rc);
    fuzz_hdf5_census();
    if (rc == DS_OK) ds_samples_set_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 22)) return 0;
    const char *path = fuzz_write_file("samples", data, size);
    read_samples(path);
    if (!getenv("DS_FUZZ_RAW_ONLY") && fuzz_reseal(path) == 0) read_samples(path);
    unlink(path);
    return 0;
}
