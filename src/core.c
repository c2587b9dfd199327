/* core: error records, aligned memory and the one death path. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/core.h"

#include <errno.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

#define DS_ERRBUF 4096

static char ds_errbuf[DS_ERRBUF];
static ds_status ds_errcode = DS_OK;
/* Where, in ds_errbuf, the message proper starts (after "file:line func(): ")
 * and the first "\n  from" trace line starts (0 = none): ds_die shows users
 * only the message, and the source locations with DS_DEBUG. */
static size_t ds_errmsg_at = 0, ds_errtrace_at = 0;

static void append(const char *fmt, ...)
{
    size_t len = strlen(ds_errbuf);
    if (len + 1 >= DS_ERRBUF) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ds_errbuf + len, DS_ERRBUF - len, fmt, ap);  /* truncation is acceptable here */
    va_end(ap);
}

ds_status ds_error_set(ds_status code, const char *file, int line, const char *func,
                       const char *fmt, ...)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    ds_errbuf[0] = '\0';
    ds_errcode = code;
    append("%s:%d %s(): ", base, line, func);
    size_t len = strlen(ds_errbuf);
    ds_errmsg_at = len;
    ds_errtrace_at = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ds_errbuf + len, DS_ERRBUF - len, fmt, ap);
    va_end(ap);
    return code;
}

void ds_error_trace(const char *file, int line, const char *func)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (!ds_errtrace_at) ds_errtrace_at = strlen(ds_errbuf);
    append("\n  from %s:%d %s()", base, line, func);
}

const char *ds_error_message(void) { return ds_errbuf; }
ds_status ds_error_code(void) { return ds_errcode; }
void ds_error_clear(void)
{
    ds_errbuf[0] = '\0';
    ds_errcode = DS_OK;
    ds_errmsg_at = ds_errtrace_at = 0;
}

const char *ds_status_name(ds_status code)
{
    switch (code) {
    case DS_OK: return "ok";
    case DS_ERR_NOMEM: return "out of memory";
    case DS_ERR_INVALID: return "invalid argument";
    case DS_ERR_CONFIG: return "configuration error";
    case DS_ERR_IO: return "I/O error";
    case DS_ERR_NUMERIC: return "numerical error";
    case DS_ERR_MPI: return "MPI error";
    case DS_ERR_FORMAT: return "file format error";
    }
    return "unknown error";
}

void *ds_calloc(size_t n, size_t size)
{
    if (n == 0 || size == 0) n = size = 1;
    if (n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    /* Large arrays (replay buffers at the paper's 600k states, LGCP
     * trajectories) come from calloc: glibc maps them as fresh zero pages
     * without writing them, so memory is used as it is filled, not at start
     * (an LGCP run with local search held 10.4 GB from its first iteration).
     * 16-byte aligned; nothing relies on more. */
    if (bytes >= ((size_t)1 << 20)) return calloc(1, bytes);
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ds_free(void *p) { free(p); }

void ds_mpi_io_defaults(void)
{
#if defined(OPEN_MPI) && OPEN_MPI
    setenv("OMPI_MCA_io", "^ompio", 0);  /* any other MPI-IO component (ROMIO); kept if the user set one */
#endif
}

static const char *fp_mode = "kept (the IEEE default)";

void ds_fp_defaults(void)
{
    const char *v = getenv("DS_SUBNORMALS");
    if (v && strcmp(v, "keep") == 0) {
        fp_mode = "kept (DS_SUBNORMALS=keep)";
        return;
    }
#if defined(__SSE__) || defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) and DAZ (bit 6) */
    fp_mode = "flushed to zero (DS_SUBNORMALS=keep keeps them)";
#else
    fp_mode = "kept (no flush-to-zero mode on this CPU)";
#endif
}

const char *ds_fp_describe(void) { return fp_mode; }

int ds_exit_code(ds_status code)
{
    if (code == DS_OK) return 0;
    if (code == DS_ERR_CONFIG) return 2;
    return 1;
}

/* DS_DEBUG set to anything but "" or "0" (the CLI's --debug sets it). */
static int debug_on(void)
{
    const char *d = getenv("DS_DEBUG");
    return d && *d && strcmp(d, "0") != 0;
}

/* What users see (without DS_DEBUG): the message alone, first line
 * "FILE:LINE:COL: error: ..." when it names a place in an input file (the
 * config reader writes it so), else "diffsamp: error: ...". With several
 * ranks every rank that fails prints its own line, tagged "[rank] ", except
 * for bad usage or config, which every rank meets alike: rank 0 alone reports
 * it (the others wait a moment so that rank 0's line is not cut off by their
 * MPI_Abort). With DS_DEBUG: "[rank] file:line func(): " and the whole
 * record with its "from file:line" trace. */
void ds_die(ds_status code, const char *file, int line, const char *func, const char *fmt, ...)
{
    int inited = 0, finalized = 0, rank = 0, size = 1;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char msg[DS_ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (debug_on()) {
        fprintf(stderr, "[%d] %s:%d %s(): %s\n", rank, base, line, func, msg);
    } else {
        /* The recorded error (DIE passes it through): its message proper. */
        char text[DS_ERRBUF];
        if (strcmp(msg, ds_errbuf) == 0 && ds_errmsg_at <= strlen(ds_errbuf)) {
            size_t end = ds_errtrace_at ? ds_errtrace_at : strlen(ds_errbuf);
            snprintf(text, sizeof text, "%.*s", (int)(end - ds_errmsg_at), ds_errbuf + ds_errmsg_at);
        } else {
            snprintf(text, sizeof text, "%s", msg);
        }
        const char *nl = strchr(text, '\n');
        const char *tag = strstr(text, ": error: ");
        const int placed = tag && (!nl || tag < nl);
        const int shared = code == DS_ERR_CONFIG && size > 1;
        if (shared && rank != 0) {
            struct timespec pause = {2, 0};
            nanosleep(&pause, NULL);
        }
        char who[32] = "";
        if (size > 1 && !(shared && rank == 0)) snprintf(who, sizeof who, "[%d] ", rank);
        fprintf(stderr, "%s%s%s\n", who, placed ? "" : "diffsamp: error: ", text);
        if (code != DS_ERR_CONFIG)
            fprintf(stderr, "%sdiffsamp: note: run with --debug (or DS_DEBUG=1) to see where in the "
                            "source this was raised\n", who);
    }
    fflush(stderr);
    if (inited && !finalized && size > 1) MPI_Abort(MPI_COMM_WORLD, ds_exit_code(code));
    if (inited && !finalized) MPI_Finalize();
    exit(ds_exit_code(code));
}

double ds_wtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ds_status ds_check_readable(const char *path, const char *what)
{
    struct stat st;
    const char *why = NULL;
    FILE *f = fopen(path, "rb");
    const int err = errno;
    if (f) {
        if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) why = "a directory, not a file";
        fclose(f);
        if (!why) return DS_OK;
    } else {
        why = strerror(err);
    }
    char *cwd = path[0] != '/' ? getcwd(NULL, 0) : NULL;
    ds_status rc = cwd ? ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "%s %s: %s (a relative path, looked "
                                      "for in %s)", what, path, why, cwd)
                       : ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "%s %s: %s", what, path, why);
    free(cwd);
    return rc;
}
