/* freelunch study --engine slurm: the grid's cells as a SLURM job array
 * (docs/ARCHITECTURE.md, "Studies on SLURM"). The local engine's cell
 * command and row (harness/cmd_study.c) are reused as they are: an array
 * task runs exactly the `freelunch prune` a local cell runs, into the same
 * cell directory, and the submitting study turns its freelunch.json into the
 * same row. */
#ifndef FL_SLURM_H
#define FL_SLURM_H
#include "grid.h"
#include "results.h"
#include <stddef.h>
#include <sys/types.h>

#define FL_SLURM_MAX_OPTS 64

typedef struct {
    int on;                 /* --engine slurm */
    int array_max;          /* --slurm-array-max P: tasks at once (0: SLURM's limit) */
    const char *opt[FL_SLURM_MAX_OPTS];   /* --slurm-opt, each one sbatch argument */
    int nopt;
    int detach;             /* --detach: return after submitting */
    int collect;            /* --collect: merge what finished, submit nothing */
    double poll_s;          /* --slurm-poll: seconds between looks at the queue */
} fl_slurm_opts;

/* From harness/cmd_study.c, the local engine's: the argv of one cell's
 * `freelunch prune` (threads < 0: the task's SLURM_CPUS_PER_TASK), and
 * the row of a finished cell from its directory and wait status. */
int fl_study_cell_argv(const fl_cell_spec *s, const char *dir, const char *cache, int threads, int keep, char **argv,
                       char *store, size_t store_n);
/* Starts `freelunch ARGV...` on DIR as a local cell: stale freelunch.json
 * removed, DIR/log headed by the command takes its output. */
pid_t fl_study_cell_spawn(const char *dir, char *const argv[]);
void fl_study_cell_row(fl_table *t, const fl_cell_spec *s, const char *dir, int status, double t0, const char *machine);

/* --dry-run: prints the sbatch script for the cells without a row in t. */
int fl_slurm_dry_run(const fl_slurm_opts *o, const fl_grid *g, const fl_cell_spec *cells, int ncells, const fl_table *t,
                     const char *out, const char *cache, int keep);
/* The engine, under the study's lock: merges every finished task into t
 * (results.csv rewritten after each), then, unless collecting, submits the
 * cells with no row, a failed row or a task SLURM no longer knows, and
 * unless detached waits for all of them. Returns 0 when the caller should
 * go on to the report, 1 when it should stop there (detached, or tasks
 * still queued after a collect), -1 on error. */
int fl_slurm_engine(const fl_slurm_opts *o, const fl_grid *g, const fl_cell_spec *cells, int ncells, fl_table *t,
                    const char *out, const char *cache, int keep);
/* `freelunch study --slurm-task DIR -- prune ARGS...`: what an array task
 * runs. Runs the cell like the local engine (its log, no stale
 * freelunch.json), records the wait status in DIR/task.status, exits with
 * the cell's status. */
int fl_slurm_task(const char *dir, int argc, char **argv);

#endif
