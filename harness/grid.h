/* Grid specs: the Cartesian product of cell settings (docs/ARCHITECTURE.md, "Formats").
 *
 *   [grid]                       ; each key a dimension, values comma-separated
 *   criterion   = wanda, sparsegpt
 *   reconstruct = none, sublayer, "retrain:masklora:rank=8"
 *   seed        = 0, 1, 2
 *   [fixed]                      ; settings shared by every cell
 *   calib-samples = 64
 *   eval          = sotu-test, moby-test   ; eval takes a list: every cell evaluates all
 *
 * Every setting of harness/settings.c is a key (the options of `freelunch
 * prune` without the dashes; '_' and '-' are the same), plus backend and
 * threads. A value with a comma is
 * written in double quotes. A key in [fixed] with several values is a
 * dimension too, except eval (a list). `--set key=value[,value]` replaces a
 * key wherever it was. Values are checked against the registries when the
 * grid is built, so a typo fails before any cell runs.
 *
 *   [grid.retrain]               ; a variant: the same grid with these keys
 *   reconstruct = retrain:masklora   replaced (or added); its cells join the
 *   retrain-samples = 32, 320    ; study (a cell in two products runs once)
 *
 * so settings that apply to some reconstructors only (propagation, or
 * retrain-samples) need not multiply the others' cells. */
#ifndef FL_GRID_H
#define FL_GRID_H

#define FL_GRID_MAX_DIMS 32
#define FL_GRID_MAX_CELLS 1000000
#define FL_GRID_MAX_VALUE 4096      /* a value's characters, with its NUL */

typedef struct {
    char *key;            /* canonical: dashes, e.g. "calib-samples" */
    int nvals;
    char **vals;
    char *joined;         /* a list setting (eval): its values comma-joined (fl_grid_cells) */
} fl_dim;

#define FL_GRID_MAX_VARIANTS 16

/* A [grid.NAME] section: keys that replace (or join) the main grid's. */
typedef struct {
    char name[32];
    fl_dim dims[FL_GRID_MAX_DIMS];
    int ndims;
} fl_grid_variant;

typedef struct {
    fl_dim dims[FL_GRID_MAX_DIMS];   /* [grid] and [fixed] */
    int ndims;
    fl_grid_variant *var;            /* malloc'd, nvar of them */
    int nvar;
    char *source;         /* file name or "the default grid", for messages */
} fl_grid;

/* One cell: a value for every key of the grid, in the grid's key order. */
typedef struct {
    int nkeys;
    const char *key[FL_GRID_MAX_DIMS];
    const char *val[FL_GRID_MAX_DIMS];    /* for a list (eval): the whole list, comma-joined */
    char id[13];                          /* 12 hex digits of SHA-256 of the canonical key=value list */
    char name[160];                       /* readable: criterion_sparsity_reconstruct_sSEED */
} fl_cell_spec;

extern const char FL_DEFAULT_GRID[];        /* the embedded default (INI text) */

int fl_grid_parse_file(const char *path, fl_grid *g);
int fl_grid_parse_string(const char *text, const char *name, fl_grid *g);
/* "key=value[,value...]" */
int fl_grid_set(fl_grid *g, const char *assignment);
/* Checks every key and value (registries, numbers). */
int fl_grid_check(const fl_grid *g);
/* The value(s) of a key as written in [grid] or [fixed], or NULL. */
const fl_dim *fl_grid_get(const fl_grid *g, const char *key);
/* Do a study's cells differ in this key (several values, or a variant sets it)? */
int fl_grid_varies(const fl_grid *g, const char *key);
/* The cells, in lexicographic order of the dimensions as written (the last
 * key varies fastest), then those of each variant in turn that are not
 * cells already. *cells is malloc'd; strings point into g. */
int fl_grid_cells(fl_grid *g, fl_cell_spec **cells, int *n);
const char *fl_cell_get(const fl_cell_spec *c, const char *key);
/* Writes the grid back as INI (every key in [grid] or [fixed]). */
int fl_grid_write(const fl_grid *g, const char *path);
void fl_grid_free(fl_grid *g);

#endif
