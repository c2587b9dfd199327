/* fuzz_common: what the fuzz targets share. Each target defines
 * LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer it is a
 * libFuzzer program (make fuzz), built with replay_main.c it replays the
 * corpus and the regression inputs through the sanitizer build (make test).
 * DS_FUZZ_RAW_ONLY set: the readers see the bytes only as they are, not
 * resealed (for inputs that crash HDF5 itself once their record is forged to
 * match: tests/fuzz/regress/checkpoint_hdf5). */
#ifndef DS_FUZZ_COMMON_H
#define DS_FUZZ_COMMON_H

#define _POSIX_C_SOURCE 200809L
#include "diffsamp/core.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* MPI on one rank (a singleton: the readers are collective). */
static inline void fuzz_mpi_init(void)
{
    int up = 0;
    MPI_Initialized(&up);
    if (!up) {
        ds_mpi_io_defaults();
        MPI_Init(NULL, NULL);
    }
}

/* A file of this process under $TMPDIR (or /tmp) holding data; its path. */
static inline const char *fuzz_write_file(const char *tag, const uint8_t *data, size_t size)
{
    static char path[512];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/ds_fuzz_%s_%ld.h5", dir && *dir ? dir : "/tmp", tag, (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

/* With DS_FUZZ_VERBOSE set, what the reader answered (for triage). */
static inline void fuzz_report(int rc)
{
    extern const char *ds_error_message(void);
    if (getenv("DS_FUZZ_VERBOSE")) fprintf(stderr, "fuzz: %s\n", rc == 0 ? "accepted" : ds_error_message());
}

#endif
