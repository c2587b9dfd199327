#define _POSIX_C_SOURCE 200809L
/* diffsamp: the command line. Parses arguments, builds the settings, and
 * hands over to the library; the only place that ends the process on error
 * (ds_die: message with rank, then MPI_Abort on every rank). */
#include "diffsamp/config.h"
#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/h5io.h"
#include "diffsamp/metrics.h"
#include "diffsamp/train.h"

#include <signal.h>
#include <unistd.h>

#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The embedded default of `diffsamp train` with no config: 25gmm with TB,
 * exploration and local search (the paper's own method, Sendera et al. 2024,
 * Table 1), sized so that `make demo` finishes in about a minute. */
static const char *default_config =
    "energy:\n"
    "  name: 25gmm\n"
    "objective:\n"
    "  name: tb\n"
    "  backward: tb\n"
    "train:\n"
    "  iterations: 1500\n"
    "  batch_size: 300\n"
    "  lr_flow: 0.1\n"
    "sampler:\n"
    "  T: 100\n"
    "  t_scale: 5.0\n"
    "exploration:\n"
    "  factor: 0.1\n"
    "  schedule: linear\n"
    "local_search:\n"
    "  enabled: true\n"
    "  ld_step: 0.1\n"
    "replay:\n"
    "  capacity: 600000\n"
    "  priority: rank\n"
    "eval:\n"
    "  every: 500\n"
    "  ground_truth_samples: 1000\n"
    "output:\n"
    "  dir: runs/demo\n"
    "  checkpoint_every: 500\n";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: diffsamp <command> [options]\n"
            "\n"
            "commands:\n"
            "  train [config.yaml] [--set key=value]... [--out DIR] [--resume auto|never|PATH]\n"
            "        train a sampler (no config: the embedded 25gmm TB + exploration default);\n"
            "        resumes from DIR/checkpoint.h5 when it exists (--resume auto, the default)\n"
            "  sample --checkpoint PATH -n N -o FILE.h5\n"
            "        write N samples of a trained sampler (streamed, any N) with their log-weights\n"
            "  eval --checkpoint PATH [--ground-truth N]\n"
            "        print the metrics of a trained sampler\n"
            "  energies\n"
            "        list the target energies with their dimension and known log Z\n"
            "  config [config.yaml] [--set key=value]...\n"
            "        print the effective configuration with every key documented\n"
            "\n"
            "exit codes: 0 done, 1 error, 2 bad usage or config, 3 checkpointed on request\n");
}

#define DIE(rc) ds_die((rc), __FILE__, __LINE__, __func__, "%s", ds_error_message())

/* SIGTERM, SIGINT and SIGUSR1 ask for a checkpoint at the next iteration
 * boundary; a second SIGINT ends the process at once (the checkpoint on disk
 * is always complete: files are written to a temporary name and renamed). */
static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
    if (sig == SIGINT && stop_flag) _exit(130);
    stop_flag = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Removes "--resume X" from argv, returning X (NULL when absent). */
static const char *take_option(int *argc, char **argv, const char *name)
{
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            if (i + 1 >= *argc) ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "%s needs a value", name);
            const char *v = argv[i + 1];
            for (int j = i; j + 2 < *argc; j++) argv[j] = argv[j + 2];
            *argc -= 2;
            return v;
        }
    }
    return NULL;
}

/* Parses [config.yaml] [--set k=v]... [--out DIR] into s. */
static void parse_settings(int argc, char **argv, ds_settings *s, int allow_out)
{
    ds_settings_defaults(s);
    int have_file = 0;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--set") == 0 || strcmp(argv[i], "--out") == 0) && i + 1 < argc) {
            i++;  /* skip the option's value */
        } else if (argv[i][0] != '-' && !have_file) {
            ds_status rc = ds_settings_load_file(s, argv[i]);
            if (rc != DS_OK) DIE(rc);
            have_file = 1;
        }
    }
    if (!have_file) {
        ds_status rc = ds_settings_load_string(s, default_config, "<embedded default>");
        if (rc != DS_OK) DIE(rc);
    }
    int seen_file = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            ds_status rc = ds_settings_set(s, argv[++i]);
            if (rc != DS_OK) DIE(rc);
        } else if (strncmp(argv[i], "--set=", 6) == 0) {
            ds_status rc = ds_settings_set(s, argv[i] + 6);
            if (rc != DS_OK) DIE(rc);
        } else if (allow_out && strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            int n = snprintf(s->out_dir, sizeof s->out_dir, "%s", argv[++i]);
            if (n < 0 || (size_t)n >= sizeof s->out_dir)
                ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "--out path is too long");
        } else if (argv[i][0] != '-' && !seen_file) {
            seen_file = 1;
        } else {
            ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                   "unexpected argument '%s' (see `diffsamp help`)", argv[i]);
        }
    }
    ds_status rc = ds_settings_validate(s);
    if (rc != DS_OK) DIE(rc);
}

static int cmd_train(int argc, char **argv)
{
    const char *resume = take_option(&argc, argv, "--resume");
    if (!resume) resume = "auto";
    ds_settings s;
    parse_settings(argc, argv, &s, 1);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        printf("# effective configuration\n");
        ds_settings_write_yaml(&s, stdout, 0);
        printf("\n");
        fflush(stdout);
    }
    ds_trainer *t = NULL;
    ds_status rc = ds_trainer_create(&s, MPI_COMM_WORLD, &t);
    if (rc != DS_OK) DIE(rc);
    const char *fail_rank = getenv("DS_DEBUG_FAIL_RANK"), *fail_it = getenv("DS_DEBUG_FAIL_ITERATION");
    if (fail_rank) ds_trainer_set_fail_hook(t, atoi(fail_rank), fail_it ? atol(fail_it) : 0);
    if (strcmp(resume, "never") != 0 && (strcmp(resume, "auto") != 0 || ds_trainer_has_checkpoint(&s))) {
        rc = ds_trainer_resume(t, resume);
        if (rc != DS_OK) DIE(rc);
    }
    install_signals();
    ds_trainer_set_stop_flag(t, &stop_flag);
    ds_eval_result r;
    memset(&r, 0, sizeof r);
    r.iteration = -1;
    int stopped = 0;
    rc = ds_trainer_run(t, stdout, &r, &stopped);
    if (rc != DS_OK) DIE(rc);
    if (stopped) {
        ds_trainer_destroy(&t);
        return 3;
    }
    if (r.iteration < 0) {  /* nothing left to train: report the sampler as it is */
        rc = ds_trainer_evaluate(t, 1, &r);
        if (rc != DS_OK) DIE(rc);
    }
    if (rank == 0) {
        printf("\nfinal metrics (iteration %ld, %.1f s):\n", r.iteration, r.seconds);
        printf("  ELBO                 %.4f\n", r.elbo);
        printf("  log Z (IS)           %.4f\n", r.log_z_is);
        if (r.log_z_learned == r.log_z_learned) printf("  log Z (learned)      %.4f\n", r.log_z_learned);
        printf("  ESS                  %.4f\n", r.ess);
        if (r.has_log_z) {
            printf("  log Z (true)         %.4f\n", r.log_z_true);
            printf("  Delta log Z          %.4f\n", r.delta_log_z);
            printf("  Delta log Z (IS)     %.4f\n", r.delta_log_z_is);
        }
        if (r.mean_ll == r.mean_ll) printf("  mean log-likelihood  %.4f\n", r.mean_ll);
        if (r.modes >= 0) printf("  modes with samples   %d of %d\n", r.modes, r.modes_total);
        double ms, mpi;
        ds_trainer_timing(t, &ms, &mpi);
        printf("  training time        %.2f ms/iteration on rank 0, %.1f%% of it in MPI\n", ms, 100 * mpi);
        printf("metrics: %s/metrics.csv\n", s.out_dir);
    }
    ds_trainer_destroy(&t);
    return 0;
}

/* Settings and state from a checkpoint: the config it carries, then the
 * model, optimiser and buffers. */
static ds_trainer *trainer_from_checkpoint(const char *path, long ground_truth)
{
    ds_ckpt_data d;
    memset(&d, 0, sizeof d);
    char found[DS_PATH_MAX + 32], warning[2048];
    ds_status rc = ds_ckpt_find(MPI_COMM_WORLD, path, NULL, found, sizeof found, &d, warning, sizeof warning);
    if (rc != DS_OK) DIE(rc);
    ds_settings s;
    ds_settings_defaults(&s);
    char name[DS_PATH_MAX + 64];
    snprintf(name, sizeof name, "%s:/config", found);
    rc = ds_settings_load_string(&s, d.config_yaml, name);
    ds_ckpt_data_free(&d);
    if (rc != DS_OK) DIE(rc);
    if (ground_truth >= 0) s.eval_gt_samples = (int)ground_truth;
    ds_trainer *t = NULL;
    rc = ds_trainer_create(&s, MPI_COMM_WORLD, &t);
    if (rc != DS_OK) DIE(rc);
    rc = ds_trainer_resume(t, found);
    if (rc != DS_OK) DIE(rc);
    return t;
}

static int cmd_sample(int argc, char **argv)
{
    const char *ckpt = take_option(&argc, argv, "--checkpoint");
    const char *n = take_option(&argc, argv, "-n");
    const char *outp = take_option(&argc, argv, "-o");
    if (!ckpt || !n || !outp || argc != 0)
        ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "usage: diffsamp sample --checkpoint PATH -n N -o FILE.h5");
    char *end;
    long count = strtol(n, &end, 10);
    if (*end || count < 1) ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "-n '%s': expected a positive integer", n);
    ds_trainer *t = trainer_from_checkpoint(ckpt, 0);
    ds_eval_result r;
    ds_status rc = ds_trainer_write_samples(t, outp, count, &r);
    if (rc != DS_OK) DIE(rc);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        printf("%ld samples of iteration %ld written to %s\n", count, r.iteration, outp);
        printf("  ELBO %.4f  log Z (IS) %.4f  ESS %.4f", r.elbo, r.log_z_is, r.ess);
        if (r.has_log_z) printf("  Delta log Z %.4f  Delta log Z (IS) %.4f", r.delta_log_z, r.delta_log_z_is);
        printf("\n");
    }
    ds_trainer_destroy(&t);
    return 0;
}

static int cmd_eval(int argc, char **argv)
{
    const char *ckpt = take_option(&argc, argv, "--checkpoint");
    const char *gt = take_option(&argc, argv, "--ground-truth");
    if (!ckpt || argc != 0)
        ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "usage: diffsamp eval --checkpoint PATH [--ground-truth N]");
    long n_gt = -1;  /* default: the run's eval.ground_truth_samples */
    if (gt) {
        char *end;
        n_gt = strtol(gt, &end, 10);
        if (*end || n_gt < 0 || n_gt > 100000000)
            ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "--ground-truth '%s': expected an integer >= 0", gt);
    }
    ds_trainer *t = trainer_from_checkpoint(ckpt, n_gt);
    ds_eval_result r;
    ds_status rc = ds_trainer_evaluate(t, 1, &r);
    if (rc != DS_OK) DIE(rc);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) ds_metrics_print(stdout, &r, DS_METRICS_REPORT);
    ds_trainer_destroy(&t);
    return 0;
}

static int cmd_config(int argc, char **argv)
{
    ds_settings s;
    parse_settings(argc, argv, &s, 1);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) ds_settings_write_yaml(&s, stdout, 1);
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    /* One BLAS thread per process unless the user chose otherwise: under MPI
     * the ranks already use the cores, and alone the products (64 columns)
     * are too small to gain from threads (measured: 31.4 ms/iteration with one
     * thread, 34.7 with two, 25gmm TB on 2 cores). Scale with ranks instead. */
    int size = 1, rc = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1);
    if (argc < 2) {
        usage(stderr);
        ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "no command given");
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0) {
        rc = cmd_train(argc - 2, argv + 2);
    } else if (strcmp(cmd, "energies") == 0) {
        int rank;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        if (rank == 0) ds_energy_list(stdout);
    } else if (strcmp(cmd, "sample") == 0) {
        rc = cmd_sample(argc - 2, argv + 2);
    } else if (strcmp(cmd, "eval") == 0) {
        rc = cmd_eval(argc - 2, argv + 2);
    } else if (strcmp(cmd, "config") == 0) {
        rc = cmd_config(argc - 2, argv + 2);
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
    } else {
        usage(stderr);
        ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, "unknown command '%s'", cmd);
    }
    MPI_Finalize();
    return rc;
}
