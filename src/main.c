/* diffsamp: the command line (train, sample, eval, energies). */
#include "diffsamp/core.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    fprintf(stderr, "usage: diffsamp train|energies\n");
    MPI_Finalize();
    return 2;
}
