/* core: the number type, status codes, error propagation and aligned memory
 * shared by every diffsamp module.
 *
 * The library never exits: a function that can fail returns a ds_status,
 * records a message (with file:line and function) through ds_error_set, and
 * callers propagate it with DS_TRY, which appends a trace line. Only the
 * command line ends the process, through ds_die (MPI_Abort on every rank).
 *
 * ds_real is float unless the translation unit is compiled with
 * DS_REAL_DOUBLE: the program runs in float, the finite-difference tests run
 * the same code in double. */
#ifndef DS_CORE_H
#define DS_CORE_H

#include <stddef.h>
#include <stdint.h>

#if defined(DS_REAL_DOUBLE)
typedef double ds_real;
#define DS_REAL_NAME "double"
#else
typedef float ds_real;
#define DS_REAL_NAME "float"
#endif

/* log(2 pi), for Gaussian log-densities everywhere. */
#define DS_LOG_2PI 1.8378770664093454835606594728112

typedef enum ds_status {
    DS_OK = 0,
    DS_ERR_NOMEM = 1,    /* an allocation failed */
    DS_ERR_INVALID = 2,  /* bad argument or state (a bug in the caller) */
    DS_ERR_CONFIG = 3,   /* bad user input: config, command line, names */
    DS_ERR_IO = 4,       /* file system, HDF5 or YAML I/O */
    DS_ERR_NUMERIC = 5,  /* NaN/Inf where a finite value was required */
    DS_ERR_MPI = 6,      /* an MPI call failed */
    DS_ERR_FORMAT = 7    /* a file has the wrong layout, version or content */
} ds_status;

/* Records the message of a new error (replacing any earlier one) and returns
 * code, so that `return ds_error_set(...)` reads naturally. */
ds_status ds_error_set(ds_status code, const char *file, int line, const char *func,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* Appends "  from file:line func()" to the current message (DS_TRY uses it). */
void ds_error_trace(const char *file, int line, const char *func);
/* The current message ("" when none); valid until the next ds_error_set. */
const char *ds_error_message(void);
ds_status ds_error_code(void);
void ds_error_clear(void);
const char *ds_status_name(ds_status code);

#define DS_CHECK(cond, code, ...)                                                   \
    do {                                                                            \
        if (!(cond)) return ds_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__); \
    } while (0)

#define DS_TRY(expr)                                                                \
    do {                                                                            \
        ds_status ds_try_rc_ = (expr);                                              \
        if (ds_try_rc_ != DS_OK) {                                                  \
            ds_error_trace(__FILE__, __LINE__, __func__);                           \
            return ds_try_rc_;                                                      \
        }                                                                           \
    } while (0)

/* Like DS_TRY but jumps to a cleanup label, keeping the status in rc. */
#define DS_TRY_GOTO(rc, expr, label)                                                \
    do {                                                                            \
        (rc) = (expr);                                                              \
        if ((rc) != DS_OK) {                                                        \
            ds_error_trace(__FILE__, __LINE__, __func__);                           \
            goto label;                                                             \
        }                                                                           \
    } while (0)

/* DS_OK when path can be opened for reading and is not a directory;
 * otherwise a DS_ERR_IO error "WHAT PATH: REASON" (strerror), adding, for a
 * relative path, the directory it was looked for in. For use before a
 * library opens a file whose own error would not say that it is missing
 * (HDF5, zlib). */
ds_status ds_check_readable(const char *path, const char *what);

#define DS_ALLOC_CHECK(ptr)                                                         \
    DS_CHECK((ptr) != NULL, DS_ERR_NOMEM, "out of memory allocating %s", #ptr)

/* Zero-filled allocation of n elements of size `size`, 64-byte aligned (16-byte
 * aligned from 1 MiB up: calloc, whose fresh pages are not written until used);
 * NULL on failure or overflow. Free with ds_free. */
void *ds_calloc(size_t n, size_t size);
void ds_free(void *p);
/* Frees *p (which may be NULL) and sets it to NULL. */
#define DS_FREE(p) do { ds_free(p); (p) = NULL; } while (0)

/* Prints "[rank] message" to stderr and ends the whole MPI job with the exit
 * code that matches code (see ds_exit_code). Only the CLI calls it. */
void ds_die(ds_status code, const char *file, int line, const char *func, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6), noreturn))
#endif
    ;
/* Process exit code for a status: 0 ok, 2 bad usage/config, 1 anything else. */
int ds_exit_code(ds_status code);

/* Call before MPI_Init. Under Open MPI, MPI-IO goes through ROMIO instead
 * of ompio unless the user chose (OMPI_MCA_io set). ompio guards each file
 * open with a POSIX named semaphore named after the file's basename alone
 * (/dev/shm/sem.OMPIO_checkpoint.h5.tmp for every run on a node): a process
 * killed inside that open (kill -9, the OOM killer, Slurm's KillWait) leaves
 * it taken, and every later open of a file of that name on the node, by any
 * run, waits forever. ROMIO takes no such lock. */
void ds_mpi_io_defaults(void);

/* The program's floating-point mode, set once at its start (unit tests keep
 * IEEE's): subnormal numbers are flushed to zero and read as zero (x86's
 * FTZ and DAZ), unless DS_SUBNORMALS=keep. A subnormal float is below
 * 1.2e-38 (a double below 2.2e-308) and changes no result that matters
 * here, but each one met by a vector multiply-add costs a microcode assist:
 * late in a 25gmm run about 0.1% of the gradients reaching the network's
 * products are subnormal, and flushing them made an iteration 8-25% faster
 * (measured alternately, resumed from iteration 25000). */
void ds_fp_defaults(void);
/* "flushed to zero ..." or "kept ...", for --version and the start line. */
const char *ds_fp_describe(void);

/* `git describe --always --dirty --tags` of the source tree when the library
 * was built ("unknown" outside a git checkout): --version and every HDF5
 * file's code_version attribute. */
const char *ds_git_version(void);

/* Seconds since an arbitrary origin (monotonic). */
double ds_wtime(void);

#endif
