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
 * retrain-samples) need not multiply the others' cells.
 *
 *   [tune]                       ; chosen per cell on a validation split
 *   lr     = 1e-3, 3e-3          ; numeric settings only, none of them in
 *   epochs = 1, 2                ; [grid], [fixed] or a variant
 *   select = sotu-val            ; the default; never a *-test split or an eval set
 *
 * Each cell whose reconstructor trains becomes one tuning sub-cell per
 * combination of the [tune] values (in grid order: the last key fastest),
 * evaluated on the selection split only, then its final cell: the same
 * settings with the combination whose sub-cell has the lowest perplexity
 * there (ties: the first), evaluated on the grid's eval sets. A cell that
 * trains nothing (none, matrix-ls) runs once, as a final cell with its own
 * settings. Ids: a sub-cell's hashes its settings and "role=tune", a tuned
 * final's its settings without the tuned keys and the [tune] section, so
 * neither is ever a plain cell's id; an untuned cell keeps its plain id. */
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

/* The [tune] section: its keys (value lists) and the selection split. */
typedef struct {
    fl_dim dims[FL_GRID_MAX_DIMS];
    int ndims;
    char *select;         /* as given, or NULL: FL_TUNE_SELECT */
} fl_grid_tune;

#define FL_TUNE_SELECT "sotu-val"

typedef struct {
    fl_dim dims[FL_GRID_MAX_DIMS];   /* [grid] and [fixed] */
    int ndims;
    fl_grid_variant *var;            /* malloc'd, nvar of them */
    int nvar;
    fl_grid_tune tune;               /* tune.ndims 0: no tuning */
    char *source;         /* file name or "the default grid", for messages */
} fl_grid;

/* One cell: a value for every key of the grid, in the grid's key order. */
typedef struct {
    int nkeys;
    const char *key[FL_GRID_MAX_DIMS];
    const char *val[FL_GRID_MAX_DIMS];    /* for a list (eval): the whole list, comma-joined */
    char id[13];                          /* 12 hex digits of SHA-256 of the canonical key=value list */
    char name[160];                       /* readable: criterion_sparsity_reconstruct_sSEED[_tuneK] */
    int role;                             /* FL_ROLE_FINAL, FL_ROLE_TUNE or FL_ROLE_DENSE */
    int ntune;                            /* a final cell: its sub-cells (0: untuned, runs as it is) */
    int combo;                            /* a sub-cell: its combination of [tune] values, 0-based */
    char final_id[13];                    /* a sub-cell: the id of (the first) final cell it serves */
} fl_cell_spec;

enum { FL_ROLE_FINAL = 0, FL_ROLE_TUNE = 1, FL_ROLE_DENSE = 2 };
/* results.csv's role column for a role: final, tune, dense */
const char *fl_role_name(int role);

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
/* The dense references of a study (issue 19: every perplexity is shown
 * beside the unpruned model's): one per distinct (model, eval, eval-windows,
 * backend, threads) among the N cells that are not tuning sub-cells, in
 * order of first appearance, with role FL_ROLE_DENSE and those keys only
 * (pointing into the cells' values). *refs is malloc'd; *nrefs may be 0. */
int fl_grid_dense_refs(const fl_cell_spec *cells, int n, fl_cell_spec **refs, int *nrefs);
const char *fl_cell_get(const fl_cell_spec *c, const char *key);
/* The selection split of [tune] (FL_TUNE_SELECT when not given). */
const char *fl_grid_select(const fl_grid *g);
/* Combinations of the [tune] values (1 without tuning). */
long long fl_tune_ncombos(const fl_grid *g);
/* Sub-cell k of final cell f (f->ntune > k): f's settings, the tuned keys
 * at combination k, eval the selection split alone. */
int fl_cell_tune_sub(const fl_grid *g, const fl_cell_spec *f, int k, fl_cell_spec *out);
/* Final cell f as it runs once combination k is chosen: f's id, name and
 * eval, the tuned keys at combination k. */
int fl_cell_tune_chosen(const fl_grid *g, const fl_cell_spec *f, int k, fl_cell_spec *out);
/* Writes the grid back as INI (every key in [grid] or [fixed]). */
int fl_grid_write(const fl_grid *g, const char *path);
void fl_grid_free(fl_grid *g);

#endif
