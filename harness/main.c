/* freelunch: the command line. Each subcommand lives in its own file
 * (harness/cmd_*.c), parses its own options and has --help; this file only
 * dispatches. See harness/cli.h for the error conventions. */
#include "cli.h"
#include "settings.h"
#include "model/err.h"
#include "model/gemm.h"
#include "datasets/corpus.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- dispatch ------------------------------------------------------------ */

static const struct { const char *name, *desc; int (*run)(int, char **); } CMDS[] = {
    { "info", "family, sizes, parameter count and matrix shapes of a model directory", fl_cmd_info },
    { "eval", "perplexity of a model on an llm.c token file; with --task, zero-shot accuracy", fl_cmd_eval },
    { "demo", "train a small byte-level model on a text file, save, reload, evaluate", fl_cmd_demo },
    { "pretrain", "train a preset's dense base model from scratch on the SOTU train split", fl_cmd_pretrain },
    { "study", "run a Cartesian grid of cells: results.csv, Pareto fronts, plots, report", fl_cmd_study },
    { "prune", "prune every linear of a model with a criterion and a reconstructor, save, evaluate (one cell)", fl_cmd_prune },
    { "list", "the pruning criteria, sparsity patterns, reconstructors and propagation modes; `list presets`: the base models", fl_cmd_list },
    { "data", "the corpora: fetch, verify, stats, calibration windows", fl_cmd_data },
    { "tokenize", "encode a split or a text file with a BPE tokenizer into an llm.c token file", fl_cmd_tokenize },
    { "tokenizer-train", "learn a byte-level BPE tokenizer from a split or a text file", fl_cmd_tokenizer_train },
    { "plot", "draw the study's plots (gnuplot, PNG and SVG) from a results.csv", fl_cmd_plot },
    { "report", "write report.md and a self-contained report.html from a results.csv", fl_cmd_report },
    { "plan", "from a config.json alone: every reconstructor's predicted memory, FLOPs and time for one cell", fl_cmd_plan },
};

static void main_help(FILE *f) {
    fprintf(f, "usage: freelunch COMMAND [options]   (freelunch COMMAND --help for each)\n\n"
               "freelunch: pruning and recovery of language models, on a CPU, in C.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof *CMDS; i++) fprintf(f, "  %-16s %s\n", CMDS[i].name, CMDS[i].desc);
}

int main(int argc, char **argv) {
    /* libgomp's default wait policy spins at every barrier; on a shared
     * machine whose cores are busy with other work, a thread spinning for a
     * descheduled peer made training 30x slower (measured: 362 vs 11709
     * tokens/s on the micro preset with the other core loaded). Passive
     * waiting costs little on an idle machine. libgomp reads the variable
     * when it loads, so set it and re-execute once; a user's own
     * OMP_WAIT_POLICY or GOMP_SPINCOUNT wins. */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);   /* returns only on failure: go on spinning */
    }
    if (argc < 2) { main_help(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { main_help(stdout); return 0; }
    /* The command line's default is dispatch by shape (model/gemm.h);
     * FL_BACKEND or --backend force one. */
    fl_gemm_set_backend(FL_BACKEND_AUTO);
    if (fl_gemm_backend_from_env() != 0) return fl_cli_fail();
    for (size_t i = 0; i < sizeof CMDS / sizeof *CMDS; i++)
        if (!strcmp(argv[1], CMDS[i].name)) {
            optind = 1;
            int threads = 0;
            int sub_argc = argc - 1;
            char **sub_argv = argv + 1;
            /* parse --threads early so it applies before any work */
            /* (a bad value is left at 0 here: the command's own check reports it) */
            /* and --cache: the GEMM dispatch's choices are kept there, and
             * the first GEMM may come before the command reads its options */
            const char *tv = NULL, *cv = NULL;
            for (int k = 1; k < sub_argc; k++) {
                if (!strcmp(sub_argv[k], "--threads") && k + 1 < sub_argc) tv = sub_argv[k + 1];
                else if (!strncmp(sub_argv[k], "--threads=", 10)) tv = sub_argv[k] + 10;
                else if (!strcmp(sub_argv[k], "--cache") && k + 1 < sub_argc) cv = sub_argv[k + 1];
                else if (!strncmp(sub_argv[k], "--cache=", 8)) cv = sub_argv[k] + 8;
            }
            char cache[4096];
            fl_gemm_set_cache_dir(fl_cache_dir(cache, sizeof cache, cv));
            long long t;
            if (tv && fl_parse_int(tv, 1, FL_INT_MAX, &t) == 0) threads = (int)t;
            fl_threads_init(threads);
            return CMDS[i].run(sub_argc, sub_argv);
        }
    fprintf(stderr, "freelunch: unknown command '%s' (see 'freelunch --help')\n", argv[1]);
    return 2;
}
