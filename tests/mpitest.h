/* mpitest: failure counting of the plain MPI test programs (run under
 * mpiexec): EXPECT records a failure on this rank with file:line and a
 * message; mpitest_total sums the failures over the ranks (collective), so
 * that every rank returns the same exit status. */
#ifndef DS_MPITEST_H
#define DS_MPITEST_H

#include <mpi.h>
#include <stdio.h>

static int rank, size, failures;

#define EXPECT(cond, ...)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            failures++;                                                            \
            fprintf(stderr, "[%d] %s:%d FAILED: ", rank, __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                                          \
            fprintf(stderr, "\n");                                                 \
        }                                                                          \
    } while (0)

static inline int mpitest_total(void)
{
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return total;
}

#endif
