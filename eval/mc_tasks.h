/* The task formats: each reads one dataset file as its authors publish it
 * and builds every item's requests exactly as an lm-evaluation-harness task
 * does (prompt, choices, target, target delimiter " "), zero-shot. One
 * const descriptor per format in one table (mc_tasks.c); the fields each
 * reads are listed in README.md ("freelunch eval --task"). */
#ifndef FL_MC_TASKS_H
#define FL_MC_TASKS_H
#include "eval/mc.h"

typedef struct cJSON cJSON;

typedef struct {
    const char *name;      /* --task NAME:FILE */
    const char *lm_eval;   /* the lm-eval task and the file that defines it */
    const char *fields;    /* the input fields it reads, for --help */
    fl_mc_kind kind;
    int norm;              /* lm-eval reports acc_norm */
    /* One document (a JSON object) -> one item appended to t; -1 with a
     * reason (fl_err, without the file and line) when malformed. */
    int (*item)(const cJSON *doc, fl_mc_task *t);
} fl_mc_format;

extern const fl_mc_format FL_MC_FORMATS[];
extern const int FL_MC_NFORMATS;
const fl_mc_format *fl_mc_format_find(const char *name);

/* Reads PATH in format f into t (t->name = f->name). JSON lines (blank lines
 * skipped); rte also takes GLUE's RTE TSV (header index, sentence1,
 * sentence2, label). max_items > 0 stops after that many. A malformed line
 * is one error "PATH:LINE: reason". */
int fl_mc_task_load(const fl_mc_format *f, const char *path, int max_items, fl_mc_task *t);
/* The same from a buffer (the fuzz target); `path` only names it. */
int fl_mc_task_parse(const fl_mc_format *f, const char *path, const char *buf, size_t len, int max_items,
                     fl_mc_task *t);

/* HellaSwag's preprocess() (lm_eval/tasks/hellaswag/utils.py): strip,
 * " [title]" -> ". ", drop every "[...]", "  " -> " "; malloc'd. */
char *fl_hellaswag_preprocess(const char *s);

#endif
