/* The settings of one grid cell, in one table. Each row is a setting's
 * whole life: the `freelunch prune` option --KEY (and its --help line), the
 * grid key KEY (and the check of every value), the field of fl_cell_cfg it
 * fills, its default, the key it is written under in freelunch.json's
 * "cell" object and the results.csv column it lands in. Adding a setting is
 * one row here plus its use in the pipeline.
 *
 * A default lives only here (or, when it is derived, e.g. the model's
 * context for seqlen or the preset's learning rate, the help line says from
 * what and fl_cell_run derives it). fl_cell_run applies the defaults, so
 * freelunch.json always holds the values a cell actually ran with. */
#ifndef FL_SETTINGS_H
#define FL_SETTINGS_H
#include <stddef.h>
#include <stdio.h>
#include "cell.h"

typedef enum {
    FL_SET_STR,     /* const char *; checked by `check` */
    FL_SET_INT,     /* int >= lo; 0 in fl_cell_cfg means unset */
    FL_SET_FLOAT,   /* float >= lo; 0 means unset */
    FL_SET_SEED,    /* uint64_t, an integer >= 0 */
    FL_SET_FLAG,    /* int 0/1: a bare option of prune; true/false (1/0, yes/no) in a grid */
    FL_SET_LIST,    /* evals[]/n_evals: a repeatable option; in a grid one list every cell gets whole */
    FL_SET_COMMON,  /* every subcommand's --backend/--threads (cli.h): a grid key, no fl_cell_cfg field */
} fl_set_type;

/* When a setting applies, and so is written to freelunch.json (a setting
 * that does not apply is empty in results.csv unless the grid named it). */
/* always; a unit recovers; FL_REC_DISTILL; a model unit recovers (the retraining baselines) */
enum { FL_FOR_ALL = 1, FL_FOR_RECOVERY = 2, FL_FOR_DISTILL = 4, FL_FOR_RETRAIN = 8 };

typedef struct {
    const char *key;       /* dashed: the option --KEY and the grid key KEY */
    fl_set_type type;
    const char *def;       /* default, spelt as in a grid; NULL: none or derived */
    double lo;             /* numbers: the smallest valid value */
    int (*check)(const char *v);   /* strings: 0, or -1 with fl_err saying what is valid */
    const char *excl;      /* a setting it cannot be given with; its default yields to it */
    const char *arg;       /* --help: the argument's name */
    const char *help;      /* --help: one line ('\n' continues it) */
    const char *json;      /* key in freelunch.json's "cell", or NULL */
    const char *csv;       /* results.csv column, or NULL */
    int scope;             /* FL_FOR_*: when it is written to freelunch.json */
    size_t off;            /* its field in fl_cell_cfg (not for FL_SET_COMMON) */
} fl_setting;

/* Table order is the canonical order a cell's id is hashed in (grid.c):
 * never reorder or rename a row, append new ones. */
extern const fl_setting FL_SETTINGS[];
extern const int FL_NSETTINGS;

/* The one number syntax of `freelunch` options and grid values, so a value
 * a grid accepts is one the cell's prune accepts. Decimal only: an integer
 * is an optional '-' and digits; a number adds a fraction and an exponent
 * ("1e-3"). No spaces, '+', hex, inf or nan. The range is checked on the
 * parsed value, before any conversion to a narrower type. 0, or -1 with
 * fl_err ("'x' is not an integer >= 1" / "... in [1, 1073741824]"). */
#define FL_INT_MAX (1 << 30)   /* every integer setting and option: fits an int with room for products */
#define FL_NUM_MAX 1e30        /* every real setting: finite as a float */
int fl_parse_int(const char *v, long long lo, long long hi, long long *out);
int fl_parse_num(const char *v, double lo, double hi, double *out);

const fl_setting *fl_setting_find(const char *key);
/* The default of KEY as a string, or NULL. */
const char *fl_setting_def(const char *key);
/* Is V a valid value? -1 with fl_err ("'x' is not an integer >= 1", or the
 * registry's message). */
int fl_setting_check(const fl_setting *s, const char *v);
/* true/1/yes of a flag. */
int fl_setting_true(const char *v);
/* Checks V and stores it in c's field (V is kept, not copied). A flag
 * given with V NULL is set. */
int fl_setting_set(const fl_setting *s, const char *v, fl_cell_cfg *c);
/* -1 with fl_err if two settings that exclude each other are both set. */
int fl_settings_exclusive(const fl_cell_cfg *c);
/* Every unset field takes its default (strings NULL, numbers 0). */
void fl_settings_defaults(fl_cell_cfg *c);
/* --hidden-distill W|alone: the MSE's weight, and whether the next-token
 * loss is left out. -1 with fl_err. weight, alone may be NULL. */
int fl_hidden_distill_parse(const char *v, float *weight, int *alone);
/* The --help lines of every setting that is a prune option. */
void fl_settings_help(FILE *f);

struct cJSON;
/* Writes every setting whose scope is in `scope` (FL_FOR_* bits) and that
 * has a value into obj under its JSON key: strings, numbers, flags as
 * booleans. c should be resolved (fl_settings_defaults). */
void fl_settings_to_json(const fl_cell_cfg *c, int scope, struct cJSON *obj);

#endif
