/* mpicheck: one way to call MPI. Every MPI call in diffsamp goes through
 * DS_MPI (return on failure) or DS_MPI_GOTO (jump to cleanup), which record
 * "CALL failed: <MPI_Error_string>" as a DS_ERR_MPI error with file:line.
 * (Open MPI's default handler aborts on errors; a communicator set to
 * MPI_ERRORS_RETURN, as tests do, reports them here instead.) */
#ifndef DS_MPICHECK_H
#define DS_MPICHECK_H

#include "diffsamp/core.h"

#include <mpi.h>

/* Records the failure of call with MPI error code err; returns DS_ERR_MPI. */
ds_status ds_mpi_fail(int err, const char *file, int line, const char *func, const char *call);

#define DS_MPI(call)                                                                               \
    do {                                                                                           \
        int ds_mpi_rc_ = (call);                                                                   \
        if (ds_mpi_rc_ != MPI_SUCCESS) return ds_mpi_fail(ds_mpi_rc_, __FILE__, __LINE__, __func__, #call); \
    } while (0)

#define DS_MPI_GOTO(rc, label, call)                                                               \
    do {                                                                                           \
        int ds_mpi_rc_ = (call);                                                                   \
        if (ds_mpi_rc_ != MPI_SUCCESS) {                                                           \
            (rc) = ds_mpi_fail(ds_mpi_rc_, __FILE__, __LINE__, __func__, #call);                   \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

#endif
