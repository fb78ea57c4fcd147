/* Shared pieces of the command line: every subcommand is a function
 * int fl_cmd_NAME(int argc, char **argv) (argv[0] is the subcommand), listed
 * in the table in harness/main.c. Errors: one line on stderr, "freelunch:
 * <what>", naming the file and the problem; exit 1 for failures, 2 for
 * usage errors. */
#ifndef FL_CLI_H
#define FL_CLI_H
#include <getopt.h>
#include <stdio.h>

/* Print fl_errmsg() as the one error line; returns 1. */
int fl_cli_fail(void);
/* "freelunch CMD: MSG (see 'freelunch CMD --help')"; returns 2. */
int fl_cli_usage(const char *cmd, const char *msg);
/* Options every subcommand accepts: --backend, --threads, --help. */
#define FL_COMMON_OPTS { "backend", required_argument, 0, 'B' }, { "threads", required_argument, 0, 'j' }, \
                       { "help", no_argument, 0, 'h' }
#define FL_COMMON_HELP \
    "  --backend NAME   GEMM backend: auto (default: per shape, the faster one on this\n" \
    "                   machine, timed once and kept in CACHE/gemm), openblas or onednn;\n" \
    "                   or FL_BACKEND\n" \
    "  --threads N      threads (default: physical cores, from hwloc)\n" \
    "  --help           this text\n"
/* Handles 'B' and 'j'; returns 1 if it did (exits 2 on a bad value). */
int fl_cli_common_opt(int c, const char *cmd);
/* Integer option >= lo, else a usage error and exit 2. */
int fl_cli_int(const char *cmd, const char *opt, const char *s, int lo);
/* Float option, else a usage error and exit 2. */
double fl_cli_float(const char *cmd, const char *opt, const char *s);

#include <stdint.h>
/* Evaluation tokens of a corpus split (harness/cmd_model.c); share: through
 * the cache's shared work (harness/share.h). */
int fl_split_tokens(const char *cache, const char *split, const char *tokdir, int vocab, int share, int32_t **tok, int64_t *n);

int fl_cmd_info(int argc, char **argv);
int fl_cmd_eval(int argc, char **argv);
int fl_cmd_demo(int argc, char **argv);
int fl_cmd_pretrain(int argc, char **argv);
int fl_cmd_prune(int argc, char **argv);
int fl_cmd_study(int argc, char **argv);
int fl_cmd_list(int argc, char **argv);
int fl_cmd_data(int argc, char **argv);
int fl_cmd_tokenize(int argc, char **argv);
int fl_cmd_tokenizer_train(int argc, char **argv);
int fl_cmd_plot(int argc, char **argv);
int fl_cmd_report(int argc, char **argv);
/* freelunch eval --task (harness/cmd_eval.c): fl_cmd_eval hands over to it */
int fl_cmd_eval_tasks(int argc, char **argv);
extern const char *const FL_EVAL_TASK_HELP;
int fl_cmd_plan(int argc, char **argv);

#endif
