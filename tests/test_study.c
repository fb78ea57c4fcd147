/* The study harness's pieces that need no model: results.csv (columns,
 * round trip through libcsv, refusals), the Pareto flags on a hand-made
 * table, grid specs (parsing, --set, checks, cells, ids) and the cell
 * settings table against results.csv and README.md. The end-to-end
 * grid run, kill and resume are in tests/cli_study.sh. */
#include "testutil.h"
#include "harness/grid.h"
#include "harness/presets.h"
#include "harness/results.h"
#include "harness/settings.h"
#include "model/fileio.h"
#include "plots/summary.h"
#include "model/err.h"

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

/* ---- results.csv ---------------------------------------------------------- */

static void test_columns_unique(void **st) {
    (void)st;
    for (int i = 0; i < FL_RESULT_NCOLS; i++) {
        assert_int_equal(fl_result_col(FL_RESULT_COLS[i]), i);   /* the first match is itself: no duplicate */
        for (const char *p = FL_RESULT_COLS[i]; *p; p++) assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
    }
    /* the columns the plots, the report and the README rely on */
    const char *need[] = { "cell_id", "status", "message", "criterion", "sparsity", "reconstruct", "seed", "ppl", "working_bytes",
                           "recovery_peak_bytes", "recovery_wall_s", "unit_loss_after", "pareto_mem", "pareto_peak", "pareto_time",
                           "pareto_mem_all", "machine", "commit", "backend", "threads", "statistics_gflops", "evaluation_cpu_s" };
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) assert_true(fl_result_col(need[i]) >= 0);
    assert_int_equal(fl_result_col("no_such_column"), -1);
}

static void test_roundtrip(void **st) {
    (void)st;
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    fl_table t;
    assert_int_equal(fl_table_read(path, &t), 0);   /* missing: empty */
    assert_int_equal(t.nrows, 0);
    int r = fl_table_add_row(&t);
    fl_table_set(&t, r, "cell_id", "abc");
    fl_table_set(&t, r, "message", "a, \"quoted\"\nmulti-line message");
    fl_table_setf(&t, r, "ppl", "%.3f", 12.5);
    r = fl_table_add_row(&t);
    fl_table_set(&t, r, "cell_id", "def");
    assert_int_equal(fl_table_write(path, &t), 0);
    fl_table u;
    assert_int_equal(fl_table_read(path, &u), 0);
    assert_int_equal(u.nrows, 2);
    assert_string_equal(fl_table_get(&u, 0, "message"), "a, \"quoted\"\nmulti-line message");
    assert_true(fabs(fl_table_num(&u, 0, "ppl") - 12.5) < 1e-12);
    assert_true(isnan(fl_table_num(&u, 1, "ppl")));
    assert_int_equal(fl_table_find(&u, "def"), 1);
    assert_int_equal(fl_table_find(&u, "xyz"), -1);
    /* no temporary left behind */
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
    fl_table_free(&t);
    fl_table_free(&u);
    tu_rmrf(dir);
}

static void test_refusals(void **st) {
    (void)st;
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/other.csv", dir);
    fl_table t;
    write_text(path, "a,b,c\n1,2,3\n");
    assert_int_equal(fl_table_read(path, &t), -1);
    assert_non_null(strstr(fl_errmsg(), path));
    assert_non_null(strstr(fl_errmsg(), "header"));
    /* our header, then a short row */
    FILE *f = fopen(path, "w");
    for (int i = 0; i < FL_RESULT_NCOLS; i++) fprintf(f, "%s%s", i ? "," : "", FL_RESULT_COLS[i]);
    fprintf(f, "\nx,ok\n");
    fclose(f);
    assert_int_equal(fl_table_read(path, &t), -1);
    assert_non_null(strstr(fl_errmsg(), "line 2"));
    /* a file written before the late columns (prune_stream, optimizer,
     * retrain_samples, mask_sha256, recovery_tokens, role) loads, those columns
     * empty, the others in place; an empty role is a final row */
    static const char *const late[] = { "prune_stream", "optimizer", "retrain_samples", "mask_sha256", "recovery_tokens", "role" };
    f = fopen(path, "w");
    int nold = 0, ptall = -1;
    const char *lastcol = NULL;
    for (int i = 0; i < FL_RESULT_NCOLS; i++) {
        int is_late = 0;
        for (int k = 0; k < 6; k++) is_late |= !strcmp(FL_RESULT_COLS[i], late[k]);
        /* and those of structured pruning (issue 15), appended after the Pareto flags */
        static const char *const late15[] = { "structure", "hidden_distill", "params", "params_dense", "infer_tok_s", "infer_speedup" };
        for (int k = 0; k < 6; k++) is_late |= !strcmp(FL_RESULT_COLS[i], late15[k]);
        if (is_late) continue;
        if (!strcmp(FL_RESULT_COLS[i], "pareto_time_all")) ptall = nold;
        lastcol = FL_RESULT_COLS[i];
        fprintf(f, "%s%s", nold++ ? "," : "", FL_RESULT_COLS[i]);
    }
    fprintf(f, "\nabc123,ok");
    for (int i = 2; i < nold; i++) fprintf(f, ",%d", i);
    fprintf(f, "\n");
    fclose(f);
    assert_int_equal(fl_table_read(path, &t), 0);
    assert_int_equal(t.nrows, 1);
    assert_string_equal(fl_table_get(&t, 0, "cell_id"), "abc123");
    assert_string_equal(fl_table_get(&t, 0, "retrain_samples"), "");
    for (int k = 0; k < 6; k++) assert_string_equal(fl_table_get(&t, 0, late[k]), "");
    assert_true(fl_row_final(&t, 0));
    assert_true(fl_table_num(&t, 0, lastcol) == nold - 1);   /* the old file's last column, in place */
    assert_true(ptall >= 0 && fl_table_num(&t, 0, "pareto_time_all") == ptall);   /* in place */
    assert_string_equal(fl_table_get(&t, 0, "infer_speedup"), "");
    fl_table_free(&t);
    /* ... but not a column of ours out of place, nor one missing that is not late */
    f = fopen(path, "w");
    for (int i = 0; i < FL_RESULT_NCOLS; i++) if (i != 4) fprintf(f, "%s%s", i ? "," : "", FL_RESULT_COLS[i]);
    fprintf(f, "\n");
    fclose(f);
    assert_int_equal(fl_table_read(path, &t), -1);
    assert_non_null(strstr(fl_errmsg(), "header"));
    tu_rmrf(dir);
}

/* A results.csv written before the drift_* columns: it loads, those cells
 * empty, every other value in its column; written back it has them all.
 * Only the late columns may be missing, and the others keep their order. */
static void test_old_header(void **st) {
    (void)st;
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/old.csv", dir);
    FILE *f = fopen(path, "w");
    int k = 0;
    for (int i = 0; i < FL_RESULT_NCOLS; i++)
        if (strncmp(FL_RESULT_COLS[i], "drift_", 6)) fprintf(f, "%s%s", k++ ? "," : "", FL_RESULT_COLS[i]);
    fprintf(f, "\n");
    k = 0;
    for (int i = 0; i < FL_RESULT_NCOLS; i++)
        if (strncmp(FL_RESULT_COLS[i], "drift_", 6)) fprintf(f, "%sv%d", k++ ? "," : "", i);
    fprintf(f, "\n");
    fclose(f);
    assert_true(k < FL_RESULT_NCOLS);
    fl_table t;
    if (fl_table_read(path, &t) != 0) fail_msg("%s", fl_errmsg());
    assert_int_equal(t.nrows, 1);
    char want[32];
    for (int i = 0; i < FL_RESULT_NCOLS; i++) {
        snprintf(want, sizeof want, "v%d", i);
        assert_string_equal(t.rows[0][i], strncmp(FL_RESULT_COLS[i], "drift_", 6) ? want : "");
    }
    fl_table_set(&t, 0, "drift_mean", "0.25");
    assert_int_equal(fl_table_write(path, &t), 0);
    fl_table u;
    assert_int_equal(fl_table_read(path, &u), 0);
    assert_string_equal(fl_table_get(&u, 0, "drift_mean"), "0.25");
    assert_string_equal(fl_table_get(&u, 0, "ppl"), fl_table_get(&t, 0, "ppl"));
    fl_table_free(&t);
    fl_table_free(&u);
    /* a missing column that is not late, or two columns swapped: refused */
    static const char *drop[] = { "ppl", NULL };
    for (int v = 0; v < 2; v++) {
        f = fopen(path, "w");
        for (int i = 0; i < FL_RESULT_NCOLS; i++) {
            int j = v == 1 && i < 2 ? 1 - i : i;   /* v 1: cell_id and status swapped */
            if (v == 0 && !strcmp(FL_RESULT_COLS[j], drop[0])) continue;
            fprintf(f, "%s%s", i ? "," : "", FL_RESULT_COLS[j]);
        }
        fprintf(f, "\n");
        fclose(f);
        assert_int_equal(fl_table_read(path, &t), -1);
        assert_non_null(strstr(fl_errmsg(), "header"));
    }
    tu_rmrf(dir);
}

/* A hand-made grid of results with a known answer. Within (wanda, 0.5):
 *   none      mem 0    ppl 120   -> front (least memory)
 *   matrix    mem 10   ppl 110   -> front
 *   sublayer  mem 20   ppl 100   -> front
 *   block     mem 40   ppl 105   -> dominated by sublayer
 *   blocks    mem 40   ppl 100   -> dominated by sublayer (equal ppl, more memory)
 *   full      mem 100  ppl 99    -> front (best ppl)
 *   failed    (status error)      -> ""
 * sparsegpt at 0.5: one cell mem 15 ppl 101 -> on its own front, and on the
 * all-criteria front (nothing has mem <= 15 and ppl <= 101 except...) no: it
 * dominates matrix (10,110)? no (more memory). It is dominated by nobody.
 * wanda's matrix (10, 110) stays on the all-criteria front; wanda's sublayer
 * (20, 100) too. Another sparsity (2:4) never mixes with 0.5. */
static void test_pareto(void **st) {
    (void)st;
    struct { const char *crit, *sp, *rec, *status; double mem, ppl, secs; const char *front, *front_all; } rows[] = {
        { "wanda", "0.5", "none", "ok", 0, 120, 0, "1", "1" },
        { "wanda", "0.5", "matrix", "ok", 10, 110, 5, "1", "1" },
        { "wanda", "0.5", "sublayer", "ok", 20, 100, 7, "1", "1" },
        { "wanda", "0.5", "block", "ok", 40, 105, 6, "0", "0" },
        { "wanda", "0.5", "blocks:2", "ok", 40, 100, 8, "0", "0" },
        { "wanda", "0.5", "retrain:full", "ok", 100, 99, 50, "1", "1" },
        { "wanda", "0.5", "blocks:all", "error", 1, 1, 1, "", "" },
        { "sparsegpt", "0.5", "sublayer", "ok", 15, 101, 7, "1", "1" },
        { "sparsegpt", "0.5", "block", "ok", 16, 130, 7, "0", "0" },
        { "wanda", "2:4", "none", "ok", 30, 500, 0, "1", "1" },
    };
    fl_table t = { 0 };
    int n = sizeof rows / sizeof *rows;
    for (int i = 0; i < n; i++) {
        int r = fl_table_add_row(&t);
        fl_table_set(&t, r, "model", "m");
        fl_table_set(&t, r, "criterion", rows[i].crit);
        fl_table_set(&t, r, "sparsity", rows[i].sp);
        fl_table_set(&t, r, "pattern", "row");
        fl_table_set(&t, r, "reconstruct", rows[i].rec);
        fl_table_set(&t, r, "status", rows[i].status);
        fl_table_setf(&t, r, "working_bytes", "%g", rows[i].mem);
        fl_table_setf(&t, r, "recovery_peak_bytes", "%g", rows[i].mem * 2 + 5);
        fl_table_setf(&t, r, "recovery_wall_s", "%g", rows[i].secs);
        fl_table_setf(&t, r, "ppl", "%g", rows[i].ppl);
    }
    fl_table_pareto(&t);
    for (int i = 0; i < n; i++) {
        assert_string_equal(fl_table_get(&t, i, "pareto_mem"), rows[i].front);
        assert_string_equal(fl_table_get(&t, i, "pareto_mem_all"), rows[i].front_all);
        /* the recovery peak is an increasing function of mem here: same fronts */
        assert_string_equal(fl_table_get(&t, i, "pareto_peak"), rows[i].front);
    }
    /* time: wanda's block (6 s, 105) is not dominated by sublayer (7 s, 100) */
    assert_string_equal(fl_table_get(&t, 3, "pareto_time"), "1");
    assert_string_equal(fl_table_get(&t, 4, "pareto_time"), "0");   /* (8 s, 100) vs sublayer (7 s, 100) */
    /* across criteria at 0.5, sparsegpt's sublayer (7 s, 101) is dominated by wanda's (7 s, 100) */
    assert_string_equal(fl_table_get(&t, 7, "pareto_time"), "1");
    assert_string_equal(fl_table_get(&t, 7, "pareto_time_all"), "0");
    fl_table_free(&t);
}

/* ---- grids -------------------------------------------------------------- */

static void test_grid_parse(void **st) {
    (void)st;
    fl_grid g;
    const char *ini =
        "; a comment\n[grid]\ncriterion = wanda, sparsegpt\nsparsity=0.5, 2:4\n"
        "reconstruct = none, \"retrain:masklora:rank=4,alpha=8\"\n[fixed]\ncalib_samples = 16\n--seed = 3\n"
        "eval = sotu-test, moby-test\n";
    assert_int_equal(fl_grid_parse_string(ini, "t.ini", &g), 0);
    assert_int_equal(fl_grid_check(&g), 0);
    const fl_dim *d = fl_grid_get(&g, "reconstruct");
    assert_non_null(d);
    assert_int_equal(d->nvals, 2);
    assert_string_equal(d->vals[1], "retrain:masklora:rank=4,alpha=8");
    assert_non_null(fl_grid_get(&g, "calib-samples"));   /* '_' and '--' are canonicalised */
    assert_string_equal(fl_grid_get(&g, "seed")->vals[0], "3");
    fl_cell_spec *c;
    int n;
    assert_int_equal(fl_grid_cells(&g, &c, &n), 0);
    assert_int_equal(n, 8);   /* eval is a list, not a dimension */
    assert_string_equal(fl_cell_get(&c[0], "eval"), "sotu-test,moby-test");
    /* the last key varies fastest */
    assert_string_equal(fl_cell_get(&c[0], "reconstruct"), "none");
    assert_string_equal(fl_cell_get(&c[1], "reconstruct"), "retrain:masklora:rank=4,alpha=8");
    assert_string_equal(fl_cell_get(&c[2], "sparsity"), "2:4");
    assert_string_equal(fl_cell_get(&c[4], "criterion"), "sparsegpt");
    for (int i = 0; i < n; i++) {
        assert_int_equal(strlen(c[i].id), 12);
        for (int j = 0; j < i; j++) assert_string_not_equal(c[i].id, c[j].id);
        assert_null(strchr(c[i].name, ':'));
        assert_null(strchr(c[i].name, '/'));
    }
    char id0[13];
    strcpy(id0, c[0].id);
    free(c);
    /* the same cells written in another key order keep their ids */
    fl_grid h;
    const char *ini2 =
        "[fixed]\neval = sotu-test, moby-test\nseed=3\ncalib-samples=16\n[grid]\nreconstruct = none, \"retrain:masklora:rank=4,alpha=8\"\n"
        "sparsity=0.5, 2:4\ncriterion = wanda, sparsegpt\n";
    assert_int_equal(fl_grid_parse_string(ini2, "u.ini", &h), 0);
    assert_int_equal(fl_grid_cells(&h, &c, &n), 0);
    int found = 0;
    for (int i = 0; i < n; i++) found += !strcmp(c[i].id, id0);
    assert_int_equal(found, 1);
    free(c);
    /* --set replaces a key; a list makes it a dimension */
    assert_int_equal(fl_grid_set(&h, "seed=0,1,2"), 0);
    assert_int_equal(fl_grid_cells(&h, &c, &n), 0);
    assert_int_equal(n, 24);
    free(c);
    /* a grid written back parses to the same cells */
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/grid.ini", dir);
    assert_int_equal(fl_grid_write(&h, path), 0);
    fl_grid k;
    assert_int_equal(fl_grid_parse_file(path, &k), 0);
    fl_cell_spec *c2;
    int n2;
    assert_int_equal(fl_grid_cells(&h, &c, &n), 0);
    assert_int_equal(fl_grid_cells(&k, &c2, &n2), 0);
    assert_int_equal(n, n2);
    for (int i = 0; i < n; i++) {
        found = 0;
        for (int j = 0; j < n2; j++) found += !strcmp(c[i].id, c2[j].id);
        assert_int_equal(found, 1);
    }
    free(c);
    free(c2);
    fl_grid_free(&k);
    tu_rmrf(dir);
    fl_grid_free(&g);
    fl_grid_free(&h);
}

/* g written back (fl_grid_write) and read again into h, checked. */
static void reread(const fl_grid *g, fl_grid *h) {
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/grid.ini", dir);
    assert_int_equal(fl_grid_write(g, path), 0);
    assert_int_equal(fl_grid_parse_file(path, h), 0);
    assert_int_equal(fl_grid_check(h), 0);
    tu_rmrf(dir);
}

/* [grid.NAME] variants: the union of the main product and each variant's
 * (its keys replacing the grid's or joining them), a cell in two products
 * run once, --set reaching every variant that has the key, the grid
 * written back with its variants, bad variants refused. */
static void test_grid_variants(void **st) {
    (void)st;
    const char *ini =
        "[grid]\nreconstruct = matrix, block\npropagation = sparse, dense-target\nseed = 0, 1\n"
        "[grid.retrain]\nreconstruct = retrain:masklora\npropagation = sparse\nretrain-samples = 4, 40\n"
        "[grid.again]\nreconstruct = block\n"   /* cells the main grid has already: none new */
        "[fixed]\ncriterion = wanda\nsparsity = 0.5\n";
    fl_grid g;
    assert_int_equal(fl_grid_parse_string(ini, "v.ini", &g), 0);
    assert_int_equal(fl_grid_check(&g), 0);
    assert_int_equal(g.nvar, 2);
    assert_true(fl_grid_varies(&g, "retrain-samples") && fl_grid_varies(&g, "seed") && !fl_grid_varies(&g, "criterion"));
    fl_cell_spec *c;
    int n;
    assert_int_equal(fl_grid_cells(&g, &c, &n), 0);
    assert_int_equal(n, 8 + 4);   /* 2x2x2 local, 1x1x2 seeds x2 retrain-samples; [grid.again] adds none */
    int retrain = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) assert_string_not_equal(c[i].id, c[j].id);
        const char *rs = fl_cell_get(&c[i], "retrain-samples");
        if (i < 8) assert_null(rs);   /* the main product's cells come first, untouched */
        else {
            retrain++;
            assert_string_equal(fl_cell_get(&c[i], "reconstruct"), "retrain:masklora");
            assert_string_equal(fl_cell_get(&c[i], "propagation"), "sparse");
            assert_non_null(rs);
            assert_string_equal(fl_cell_get(&c[i], "criterion"), "wanda");   /* [fixed] reaches the variants */
        }
    }
    assert_int_equal(retrain, 4);
    /* the ids are the settings': the same cell written as a plain grid has the same id */
    fl_grid h;
    assert_int_equal(fl_grid_parse_string("[grid]\nseed=1\nretrain-samples=40\n[fixed]\nreconstruct=retrain:masklora\n"
                                          "propagation=sparse\ncriterion=wanda\nsparsity=0.5\n", "w.ini", &h), 0);
    fl_cell_spec *c1;
    int n1;
    assert_int_equal(fl_grid_cells(&h, &c1, &n1), 0);
    int found = 0;
    for (int i = 0; i < n; i++) found += !strcmp(c[i].id, c1[0].id);
    assert_int_equal(found, 1);
    free(c1);
    fl_grid_free(&h);
    free(c);
    /* --set reaches the variant that sets the key, and the grid */
    assert_int_equal(fl_grid_set(&g, "propagation=dense"), 0);
    assert_int_equal(fl_grid_cells(&g, &c, &n), 0);
    for (int i = 0; i < n; i++) assert_string_equal(fl_cell_get(&c[i], "propagation"), "dense");
    assert_int_equal(n, 4 + 4);
    free(c);
    /* written back and read again: the same cells */
    reread(&g, &h);
    fl_cell_spec *c2;
    int n2;
    assert_int_equal(fl_grid_cells(&g, &c, &n), 0);
    assert_int_equal(fl_grid_cells(&h, &c2, &n2), 0);
    assert_int_equal(n, n2);
    for (int i = 0; i < n; i++) assert_string_equal(c[i].id, c2[i].id);
    free(c);
    free(c2);
    fl_grid_free(&h);
    fl_grid_free(&g);
    /* bad variants: a name, a key given twice in it, a bad value, a pair the grid has the other half of */
    const struct { const char *ini, *want; int at_check; } bad[] = {
        { "[grid.]\nseed=1\n[grid]\ncriterion=wanda\nsparsity=0.5\n", "a variant's name", 0 },
        { "[grid.a b]\nseed=1\n[grid]\ncriterion=wanda\nsparsity=0.5\n", "a variant's name", 0 },
        { "[grid.x]\nseed=1\nseed=2\n[grid]\ncriterion=wanda\nsparsity=0.5\n", "given twice", 0 },
        { "[grid.x]\nbogus=1\n[grid]\ncriterion=wanda\nsparsity=0.5\n", "unknown key 'bogus'", 0 },
        { "[grid.x]\nreconstruct=blockz\n[grid]\ncriterion=wanda\nsparsity=0.5\n", "unknown reconstructor 'blockz'", 1 },
        { "[grid.x]\ncalib=a.bin\n[grid]\ncriterion=wanda\nsparsity=0.5\ncalib-split=sotu-val\n", "not both", 1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = fl_grid_parse_string(bad[i].ini, "bad.ini", &g);
        if (bad[i].at_check) {
            assert_int_equal(rc, 0);
            rc = fl_grid_check(&g);
            fl_grid_free(&g);
        }
        if (rc != -1 || !strstr(fl_errmsg(), "bad.ini") || !strstr(fl_errmsg(), bad[i].want))
            fail_msg("variant case %zu: rc %d, message '%s'", i, rc, fl_errmsg());
    }
}

/* Each bad grid: an error naming the source and the problem. */
static void test_grid_errors(void **st) {
    (void)st;
    fl_grid h;
    struct { const char *ini, *want1, *want2; int at_check; } cases[] = {
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\nfoo = 1\n", "unknown key 'foo'", "valid: model, criterion", 0 },
        { "[grid]\ncriterion = wanda, wandx\nsparsity = 0.5\n", "unknown criterion 'wandx'", "valid: magnitude", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\nreconstruct = blockz\n", "unknown reconstructor 'blockz'", "sublayer", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 1.5\n", "sparsity", "1.5", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\nseed = -1\n", "'seed'", "-1", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\nlr = fast\n", "'lr'", "fast", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 0.5, 0.5\n", "given twice", "0.5", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\nloss = l1\n", "loss", "l1", 1 },
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\npropagation = both\n", "propagation", "both", 1 },
        { "[grids]\ncriterion = wanda\n", "unknown section [grids]", "[fixed]", 0 },
        { "[grid]\ncriterion = wanda\nthis is not a key\n", "line 3", "not a key", 0 },
        { "[grid]\ncriterion = wanda, \"sparsegpt\n", "unterminated quote", "criterion", 0 },
        { "[grid]\ncriterion = wanda,,sparsegpt\nsparsity = 0.5\n", "empty value", "criterion", 0 },
        { "[grid]\nsparsity = 0.5\n", "no criterion", "", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fl_grid g;
        int rc = fl_grid_parse_string(cases[i].ini, "bad.ini", &g);
        if (cases[i].at_check) {
            assert_int_equal(rc, 0);
            rc = fl_grid_check(&g);
            fl_grid_free(&g);
        }
        if (rc != -1 || !strstr(fl_errmsg(), "bad.ini") || !strstr(fl_errmsg(), cases[i].want1) || !strstr(fl_errmsg(), cases[i].want2))
            fail_msg("case %zu: rc %d, message '%s'", i, rc, fl_errmsg());
    }
    fl_grid g;
    assert_int_equal(fl_grid_parse_file("/nonexistent/grid.ini", &g), -1);
    assert_non_null(strstr(fl_errmsg(), "/nonexistent/grid.ini"));
    assert_int_equal(fl_grid_parse_string("[grid]\ncriterion=wanda\nsparsity=0.5\n", "ok.ini", &g), 0);
    assert_int_equal(fl_grid_set(&g, "noequals"), -1);
    assert_int_equal(fl_grid_set(&g, "bogus=1"), -1);
    assert_non_null(strstr(fl_errmsg(), "unknown key 'bogus'"));
    /* a key cut to its buffer's length must not become a real one */
    char longkey[128];
    snprintf(longkey, sizeof longkey, "seed%70sx=5", "");
    assert_int_equal(fl_grid_set(&g, longkey), -1);
    assert_non_null(strstr(fl_errmsg(), "unknown key 'seed "));
    snprintf(longkey, sizeof longkey, "[grid]\nseed%70sx=5\n", "");
    assert_int_equal(fl_grid_parse_string(longkey, "k.ini", &h), -1);
    assert_non_null(strstr(fl_errmsg(), "unknown key 'seed "));
    fl_grid_free(&g);
}

/* A value list that multiplies past the cell limit fails with one message,
 * however large the product: it is checked factor by factor, so it cannot
 * wrap to 0 (once "0 cells") or below (once a crash in calloc). */
static void test_grid_cell_limit(void **st) {
    (void)st;
    /* nk keys of nv values each, the first of n0: n0 * nv^(nk-1) cells */
    static const char *const keys[] = { "model", "pattern", "propagation", "loss", "trainable", "lr", "epochs", "batch-size",
                                        "grad-accum", "weight-decay", "calib", "calib-samples", "seqlen", "seed", "eval-windows",
                                        "threads", "backend", "criterion", "sparsity", "reconstruct", "distill", "calib-split" };
    /* 2^64 (wrapped to 0), 3*2^62 and 2^63 (wrapped below 0), 6^21, 1001^2 */
    struct { int nk, nv, n0; } cases[] = { { 16, 16, 16 }, { 21, 8, 12 }, { 21, 8, 8 }, { 21, 6, 6 }, { 2, 1001, 1001 } };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char *ini = malloc(1 << 20);
        size_t n = (size_t)sprintf(ini, "[grid]\n");
        for (int k = 0; k < cases[c].nk; k++) {
            n += (size_t)sprintf(ini + n, "%s = ", keys[k]);
            for (int v = 0; v < (k ? cases[c].nv : cases[c].n0); v++) n += (size_t)sprintf(ini + n, "%s%d", v ? ", " : "", v + 1);
            n += (size_t)sprintf(ini + n, "\n");
        }
        fl_grid g;
        assert_int_equal(fl_grid_parse_string(ini, "big.ini", &g), 0);
        fl_cell_spec *cells = NULL;
        int nc = -1;
        if (fl_grid_cells(&g, &cells, &nc) != -1 || !strstr(fl_errmsg(), "big.ini: more than 1000000 cells"))
            fail_msg("case %zu: %d cells, message '%s'", c, nc, fl_errmsg());
        fl_grid_free(&g);
        free(ini);
    }
    /* below the limit: the product */
    fl_grid g;
    const char *ini = "[grid]\nseed = 1, 2, 3\nepochs = 1, 2, 3, 4\nlr = 1, 2, 3, 4\n";
    fl_cell_spec *cells;
    int nc;
    assert_int_equal(fl_grid_parse_string(ini, "ok.ini", &g), 0);
    assert_int_equal(fl_grid_cells(&g, &cells, &nc), 0);
    assert_int_equal(nc, 48);
    free(cells);
    fl_grid_free(&g);
}

/* Lines longer than inih's 200-byte buffer, continuation lines, and lines
 * still too long to read, with the file and line in the message. */
static void test_grid_long_lines(void **st) {
    (void)st;
    char *ini = malloc(1 << 16);
    size_t n = (size_t)sprintf(ini, "[grid]\ncriterion = wanda\nsparsity = 0.5\nseed = ");
    for (int i = 0; i < 60; i++) n += (size_t)sprintf(ini + n, "%s%d", i ? ", " : "", i);
    n += (size_t)sprintf(ini + n, "\nlr = ");
    for (int i = 1; i <= 30; i++) n += (size_t)sprintf(ini + n, "%s%de-4", i > 1 ? ",  " : "", i);
    n += (size_t)sprintf(ini + n, "   ; thirty learning rates\n[fixed]\nmodel = ");
    char model[4001];
    for (int i = 0; i < 4000; i++) model[i] = "abc/d e"[i % 7];
    model[4000] = 0;
    n += (size_t)sprintf(ini + n, "\"%s\"\n", model);
    /* continuation lines add to the list, with or without a trailing comma */
    sprintf(ini + n, "reconstruct = none,\n    sublayer\n  block ; and a comment\ncalib = \" x.bin \"\n");
    fl_grid g;
    if (fl_grid_parse_string(ini, "long.ini", &g) != 0) fail_msg("%s", fl_errmsg());
    if (fl_grid_check(&g) != 0) fail_msg("%s", fl_errmsg());
    assert_int_equal(fl_grid_get(&g, "seed")->nvals, 60);
    assert_string_equal(fl_grid_get(&g, "seed")->vals[59], "59");
    assert_int_equal(fl_grid_get(&g, "lr")->nvals, 30);
    assert_string_equal(fl_grid_get(&g, "lr")->vals[29], "30e-4");
    assert_string_equal(fl_grid_get(&g, "model")->vals[0], model);
    assert_string_equal(fl_grid_get(&g, "calib")->vals[0], " x.bin ");   /* a quote keeps its blanks, and fl_grid_write too */
    const fl_dim *r = fl_grid_get(&g, "reconstruct");
    assert_int_equal(r->nvals, 3);
    assert_string_equal(r->vals[2], "block");
    fl_cell_spec *c;
    int nc;
    assert_int_equal(fl_grid_cells(&g, &c, &nc), 0);
    assert_int_equal(nc, 60 * 30 * 3);
    free(c);
    fl_grid_free(&g);
    /* the same grid from a file, and written back: the same */
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/long.ini", dir);
    write_text(path, ini);
    assert_int_equal(fl_grid_parse_file(path, &g), 0);
    assert_int_equal(fl_grid_write(&g, path), 0);
    fl_grid h;
    assert_int_equal(fl_grid_parse_file(path, &h), 0);
    for (int i = 0; i < g.ndims; i++) {
        const fl_dim *a = &g.dims[i], *b = fl_grid_get(&h, a->key);
        assert_non_null(b);
        assert_int_equal(a->nvals, b->nvals);
        for (int j = 0; j < a->nvals; j++) assert_string_equal(a->vals[j], b->vals[j]);
    }
    fl_grid_free(&g);
    fl_grid_free(&h);
    /* errors: named with the file's own line numbers, not inih's pieces */
    char key[400];
    memset(key, 'k', 300);
    key[300] = 0;
    struct { const char *ini, *want; } bad[] = {
        { "[grid]\ncriterion = wanda\nsparsity = 0.5\nseed = 1\nseed = 2\n", "key 'seed' given twice (lines 4 and 5)" },
        { "[grid]\ncriterion = wanda\n[fixed]\n  criterion = wanda\n", "key 'criterion' given twice (lines 2 and 4)" },
        { NULL, "line 2: too long (no '=' in its first" },
        { NULL, "line 3: too long (a section name)" },
        { NULL, "line 4: not a key = value line" },
        { "[grid]\ncriterion = wanda\nseed = 1\n  x\n", "key 'seed': 'x' is not an integer" },
    };
    char b2[512], b3[512], b4[2048];
    snprintf(b2, sizeof b2, "[grid]\n%s = 1\n", key);
    snprintf(b3, sizeof b3, "[grid]\ncriterion = wanda\n[%s]\n", key);
    n = (size_t)snprintf(b4, sizeof b4, "[grid]\ncriterion = wanda\nseed = ");
    for (int i = 0; i < 100; i++) n += (size_t)snprintf(b4 + n, sizeof b4 - n, "%d, ", i);
    snprintf(b4 + n, sizeof b4 - n, "100\nnot a key\n");
    bad[2].ini = b2;
    bad[3].ini = b3;
    bad[4].ini = b4;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = fl_grid_parse_string(bad[i].ini, "bad.ini", &g);
        if (rc == 0) { rc = fl_grid_check(&g); fl_grid_free(&g); }
        if (rc != -1 || !strstr(fl_errmsg(), "bad.ini") || !strstr(fl_errmsg(), bad[i].want))
            fail_msg("case %zu: rc %d, message '%s'", i, rc, fl_errmsg());
    }
    /* a value too long for a cell's command line, and an eval list longer than a cell takes */
    char *huge = malloc(8192);
    n = (size_t)sprintf(huge, "[grid]\ncriterion = wanda\nsparsity = 0.5\nmodel = ");
    memset(huge + n, 'm', 5000);
    strcpy(huge + n + 5000, "\n");
    assert_int_equal(fl_grid_parse_string(huge, "bad.ini", &g), -1);
    assert_non_null(strstr(fl_errmsg(), "bad.ini: key 'model': a value of 5000 characters (at most 4095) (line 4)"));
    assert_int_equal(fl_grid_parse_string("[grid]\ncriterion = wanda\nsparsity = 0.5\neval = a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n", "bad.ini", &g), 0);
    assert_int_equal(fl_grid_check(&g), -1);
    assert_non_null(strstr(fl_errmsg(), "key 'eval': 17 values"));
    fl_grid_free(&g);
    free(huge);
    /* a NUL byte: named, not read as the end of the line */
    FILE *nf = fopen(path, "wb");
    assert_non_null(nf);
    fwrite("[grid]\ncriterion = wanda\0, x\n", 1, 30, nf);
    fclose(nf);
    assert_int_equal(fl_grid_parse_file(path, &g), -1);
    assert_non_null(strstr(fl_errmsg(), "long.ini: line 2: a NUL byte"));
    /* a directory or a device is no grid file */
    assert_int_equal(fl_grid_parse_file(dir, &g), -1);
    assert_non_null(strstr(fl_errmsg(), "is a directory"));
    assert_int_equal(fl_grid_parse_file("/dev/null", &g), -1);
    assert_non_null(strstr(fl_errmsg(), "/dev/null: not a regular file"));
    tu_rmrf(dir);
    free(ini);
}

/* ---- [tune] ---------------------------------------------------------------- */

static int checked_cells(const char *ini, fl_grid *g, fl_cell_spec **c);

static const char TUNED[] =
    "[grid]\ncriterion = wanda, sparsegpt\nreconstruct = none, sublayer, matrix-ls\n"
    "[fixed]\nsparsity = 0.5\nseed = 0\neval = sotu-test, moby-test\n"
    "[tune]\nlr = 1e-3, 3e-3\nepochs = 1, 2\n";

static int find_id(const fl_cell_spec *c, int n, const char *id) {
    int k = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].id, id)) { assert_int_equal(k, -1); k = i; }
    return k;
}

/* Sub-cells: one per combination of the [tune] values for each cell that
 * trains (not none, not matrix-ls), in grid order, right before their
 * final cell, evaluated on the selection split alone; ids distinct from
 * each other and from any plain cell, and stable. */
static void test_grid_tune(void **st) {
    (void)st;
    fl_grid g;
    fl_cell_spec *c;
    int n = checked_cells(TUNED, &g, &c);
    assert_int_equal(fl_tune_ncombos(&g), 4);
    assert_string_equal(fl_grid_select(&g), "sotu-val");
    /* 2 criteria x (none, matrix-ls: once each; sublayer: 4 sub-cells + its final) */
    assert_int_equal(n, 2 * (1 + 1 + 4 + 1));
    int tune = 0, final = 0, tuned_finals = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) assert_string_not_equal(c[i].id, c[j].id);
        const char *rec = fl_cell_get(&c[i], "reconstruct");
        if (c[i].role == FL_ROLE_TUNE) {
            tune++;
            assert_string_equal(rec, "sublayer");
            assert_string_equal(fl_cell_get(&c[i], "eval"), "sotu-val");   /* never the test splits */
            assert_non_null(fl_cell_get(&c[i], "lr"));
            assert_non_null(fl_cell_get(&c[i], "epochs"));
            assert_non_null(strstr(c[i].name, "_tune"));
            continue;
        }
        final++;
        assert_string_equal(fl_cell_get(&c[i], "eval"), "sotu-test,moby-test");
        assert_null(fl_cell_get(&c[i], "lr"));   /* chosen when its sub-cells are done */
        if (strcmp(rec, "sublayer")) { assert_int_equal(c[i].ntune, 0); continue; }
        tuned_finals++;
        assert_int_equal(c[i].ntune, 4);
        /* its sub-cells are the 4 cells before it, in grid order (the last key fastest) */
        static const char *const want[4][2] = { { "1e-3", "1" }, { "1e-3", "2" }, { "3e-3", "1" }, { "3e-3", "2" } };
        for (int k = 0; k < 4; k++) {
            const fl_cell_spec *s = &c[i - 4 + k];
            assert_int_equal(s->role, FL_ROLE_TUNE);
            assert_int_equal(s->combo, k);
            assert_string_equal(fl_cell_get(s, "lr"), want[k][0]);
            assert_string_equal(fl_cell_get(s, "epochs"), want[k][1]);
            assert_string_equal(fl_cell_get(s, "criterion"), fl_cell_get(&c[i], "criterion"));
            fl_cell_spec sub, ch;
            assert_int_equal(fl_cell_tune_sub(&g, &c[i], k, &sub), 0);   /* what the runner looks rows up by */
            assert_string_equal(sub.id, s->id);
            assert_string_equal(s->final_id, c[i].id);
            assert_int_equal(fl_cell_tune_chosen(&g, &c[i], k, &ch), 0);
            assert_string_equal(ch.id, c[i].id);                          /* the final's id whatever is chosen */
            assert_string_equal(fl_cell_get(&ch, "lr"), want[k][0]);
            assert_string_equal(fl_cell_get(&ch, "eval"), "sotu-test,moby-test");
            assert_int_equal(ch.role, FL_ROLE_FINAL);
        }
    }
    assert_int_equal(tune, 8);
    assert_int_equal(final, 6);
    assert_int_equal(tuned_finals, 2);
    /* the same grid without [tune]: the untrained cells keep their ids, the trained ones' finals differ */
    fl_grid p;
    fl_cell_spec *pc;
    const char *plain_end = strstr(TUNED, "[tune]");
    char plain[512];
    snprintf(plain, sizeof plain, "%.*s", (int)(plain_end - TUNED), TUNED);
    int pn = checked_cells(plain, &p, &pc);
    assert_int_equal(pn, 6);
    for (int i = 0; i < pn; i++) {
        int k = find_id(c, n, pc[i].id);
        if (strcmp(fl_cell_get(&pc[i], "reconstruct"), "sublayer")) assert_true(k >= 0 && c[k].role == FL_ROLE_FINAL);
        else assert_int_equal(k, -1);
    }
    /* a plain cell with a sub-cell's settings is not the sub-cell */
    fl_grid q;
    fl_cell_spec *qc;
    assert_int_equal(checked_cells("[fixed]\ncriterion = wanda\nreconstruct = sublayer\nsparsity = 0.5\nseed = 0\neval = sotu-val\n"
                                   "lr = 1e-3\nepochs = 1\n", &q, &qc), 1);
    assert_int_equal(find_id(c, n, qc[0].id), -1);
    free(qc);
    fl_grid_free(&q);
    free(pc);
    fl_grid_free(&p);
    /* stable: the [tune] keys in another order give the same ids (the combinations' order follows the file) */
    fl_grid h;
    fl_cell_spec *hc;
    char swapped[512];
    snprintf(swapped, sizeof swapped, "%.*s[tune]\nepochs = 1, 2\nlr = 1e-3, 3e-3\nselect = sotu-val\n", (int)(plain_end - TUNED), TUNED);
    assert_int_equal(checked_cells(swapped, &h, &hc), n);
    for (int i = 0; i < n; i++) assert_true(find_id(c, n, hc[i].id) >= 0);
    free(hc);
    fl_grid_free(&h);
    /* other values to choose from: another final; the sub-cells they share keep their ids */
    snprintf(swapped, sizeof swapped, "%.*s[tune]\nlr = 1e-3, 1e-2\nepochs = 1, 2\n", (int)(plain_end - TUNED), TUNED);
    int hn = checked_cells(swapped, &h, &hc), shared = 0;
    assert_int_equal(hn, n);
    for (int i = 0; i < hn; i++) {
        int k = find_id(c, n, hc[i].id);
        if (hc[i].ntune) assert_int_equal(k, -1);
        if (hc[i].role == FL_ROLE_TUNE && k >= 0) { shared++; assert_string_equal(fl_cell_get(&hc[i], "lr"), "1e-3"); }
    }
    assert_int_equal(shared, 4);
    free(hc);
    fl_grid_free(&h);
    /* --set reaches a [tune] key and keeps it there */
    assert_int_equal(fl_grid_set(&g, "lr=1e-4,1e-3,1e-2"), 0);
    assert_null(fl_grid_get(&g, "lr"));
    assert_int_equal(fl_grid_check(&g), 0);
    assert_int_equal(fl_tune_ncombos(&g), 6);
    free(c);
    assert_int_equal(fl_grid_cells(&g, &c, &n), 0);
    assert_int_equal(n, 2 * (1 + 1 + 6 + 1));
    /* written back and read again: the same cells */
    reread(&g, &h);
    assert_int_equal(fl_grid_cells(&h, &hc, &hn), 0);
    assert_int_equal(hn, n);
    for (int i = 0; i < n; i++) assert_string_equal(hc[i].id, c[i].id);
    free(hc);
    fl_grid_free(&h);
    free(c);
    fl_grid_free(&g);
    /* another selection split: other sub-cells; variants' cells are tuned too */
    assert_int_equal(checked_cells("[grid]\nreconstruct = none, block\n[grid.r]\nreconstruct = retrain:full\n"
                                   "[fixed]\ncriterion = wanda\nsparsity = 0.5\n[tune]\nlr = 1e-4, 1e-3\nselect = sotu-train\n", &g, &c), 1 + 3 + 3);
    assert_string_equal(fl_cell_get(&c[1], "eval"), "sotu-train");
    assert_string_equal(fl_cell_get(&c[4], "reconstruct"), "retrain:full");
    assert_int_equal(c[6].ntune, 2);
    free(c);
    fl_grid_free(&g);
}

/* [tune] refusals: one line naming the grid file. */
static void test_grid_tune_errors(void **st) {
    (void)st;
    const char *base = "[grid]\ncriterion = wanda\nsparsity = 0.5\nreconstruct = none, sublayer\n";
    struct { const char *more, *want; } bad[] = {
        { "[tune]\nlr = 1e-3, 3e-3\nselect = sotu-test\n", "[tune] select = sotu-test: a test split never chooses settings" },
        { "[tune]\nlr = 1e-3\nselect = moby-test\n", "[tune] select = moby-test: a test split never chooses" },
        { "eval = sotu-test, sotu-val\n[tune]\nlr = 1e-3\n", "[tune] select = sotu-val is also an evaluation set of the grid (eval)" },
        { "[grid.x]\neval = sotu-val\n[tune]\nlr = 1e-3\n", "is also an evaluation set of the grid (eval in [grid.x])" },
        { "[tune]\nloss = mse, nmse\n", "[tune] key 'loss': not a numeric cell setting" },
        { "[tune]\nthreads = 1, 2\n", "[tune] key 'threads': not a numeric cell setting" },
        { "lr = 1e-3\n[tune]\nlr = 1e-3, 3e-3\n", "key 'lr' is in [tune] and in [grid] or [fixed]" },
        { "[fixed]\nepochs = 2\n[tune]\nepochs = 1, 2\n", "key 'epochs' is in [tune] and in [grid] or [fixed]" },
        { "[grid.v]\nlr = 1e-2\n[tune]\nlr = 1e-3, 3e-3\n", "key 'lr' is in [tune] and in [grid.v]" },
        { "[tune]\nlr = 1e-3, x\n", "key 'lr': 'x' is not a number" },
        { "[tune]\nlr = 1e-3, 1e-3\n", "key 'lr': value '1e-3' given twice" },
        { "[tune]\nlr = 1e-3\nselect = sotu-vall\n", "[tune] select = sotu-vall: not a split" },
        { "[tune]\nlr = 1e-3\nselect = sotu-val, sotu-train\n", "[tune] select: one split, not a list" },
        { "[tune]\nselect = sotu-val\n", "[tune] has select = sotu-val but no setting to tune" },
        { "[tune]\nlearning-rate = 1\n", "unknown key 'learning-rate'" },
        { "[tune]\nlr = 1e-3\nlr = 1e-2\n", "key 'lr' given twice" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char ini[1024];
        snprintf(ini, sizeof ini, "%s%s", base, bad[i].more);
        fl_grid g;
        int rc = fl_grid_parse_string(ini, "bad.ini", &g);
        if (rc == 0) { rc = fl_grid_check(&g); fl_grid_free(&g); }
        if (rc != -1 || strncmp(fl_errmsg(), "bad.ini: ", 9) || !strstr(fl_errmsg(), bad[i].want) || strchr(fl_errmsg(), '\n'))
            fail_msg("case %zu: rc %d, message '%s'", i, rc, fl_errmsg());
    }
}

/* Tune rows never reach the Pareto fronts, the plots or the report. */
static void test_tune_rows(void **st) {
    (void)st;
    fl_table t = { 0 };
    /* a tune row better on both axes than the final row of its group */
    const char *role[] = { "final", "tune", "", "tune" };
    const char *ppl[] = { "100", "90", "120", "80" };
    const char *mem[] = { "10", "5", "0", "1" };
    const char *status[] = { "ok", "ok", "ok", "error" };
    for (int i = 0; i < 4; i++) {
        int r = fl_table_add_row(&t);
        fl_table_setf(&t, r, "cell_id", "c%d", i);
        fl_table_set(&t, r, "role", role[i]);
        fl_table_set(&t, r, "status", status[i]);
        fl_table_set(&t, r, "model", "m");
        fl_table_set(&t, r, "criterion", "wanda");
        fl_table_set(&t, r, "sparsity", "0.5");
        fl_table_set(&t, r, "reconstruct", i == 2 ? "none" : "sublayer");
        fl_table_set(&t, r, "ppl", ppl[i]);
        fl_table_set(&t, r, "working_bytes", mem[i]);
    }
    assert_true(fl_row_final(&t, 0) && !fl_row_final(&t, 1) && fl_row_final(&t, 2) && !fl_row_final(&t, 3));
    fl_table_pareto(&t);
    assert_string_equal(fl_table_get(&t, 0, "pareto_mem"), "1");
    assert_string_equal(fl_table_get(&t, 1, "pareto_mem"), "");
    assert_string_equal(fl_table_get(&t, 2, "pareto_mem"), "1");
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    assert_int_equal(fl_table_write(path, &t), 0);
    fl_table u;
    assert_int_equal(fl_sum_load(path, &u), 0);
    assert_int_equal(u.nrows, 2);   /* the plots and the report see the final rows alone */
    assert_string_equal(fl_table_get(&u, 0, "cell_id"), "c0");
    assert_string_equal(fl_table_get(&u, 1, "cell_id"), "c2");
    fl_table_free(&u);
    /* only tune rows ok: nothing to report */
    fl_table_set(&t, 0, "status", "error");
    fl_table_set(&t, 2, "status", "error");
    assert_int_equal(fl_table_write(path, &t), 0);
    assert_int_equal(fl_sum_load(path, &u), -1);
    assert_non_null(strstr(fl_errmsg(), "no cell with status ok"));
    fl_table_free(&t);
    tu_rmrf(dir);
}

/* One number syntax for options and grid values: decimal, range-checked
 * before any conversion. */
static void test_numbers(void **st) {
    (void)st;
    long long i;
    double x;
    assert_int_equal(fl_parse_int("42", 1, FL_INT_MAX, &i), 0);
    assert_int_equal(i, 42);
    assert_int_equal(fl_parse_int("-3", -5, 5, &i), 0);
    assert_int_equal(i, -3);
    const char *bad_int[] = { "", "-", "1e3", "0x10", "010x", " 1", "1 ", "+1", "1.0", "1073741825", "99999999999999999999", "inf", "0" };
    for (size_t k = 0; k < sizeof bad_int / sizeof *bad_int; k++)
        if (fl_parse_int(bad_int[k], 1, FL_INT_MAX, &i) != -1) fail_msg("integer '%s' accepted", bad_int[k]);
    assert_non_null(strstr(fl_errmsg(), "'0' is not an integer in [1, 1073741824]"));
    assert_int_equal(fl_parse_num("1e-3", 0, FL_NUM_MAX, &x), 0);
    assert_true(x == 1e-3);
    assert_int_equal(fl_parse_num(".5", 0, 1, &x), 0);
    assert_int_equal(fl_parse_num("2.", 0, 3, &x), 0);
    assert_int_equal(fl_parse_num("-1.5E+2", -FL_NUM_MAX, 0, &x), 0);
    assert_true(x == -150);
    const char *bad_num[] = { "", ".", "e3", "1e", "1e+", "0x10", "0x1p3", "inf", "-inf", "nan", "NAN(1)", " 1", "1 ", "+1", "1e31",
                              "1e400", "1.5.2", "-1" };
    for (size_t k = 0; k < sizeof bad_num / sizeof *bad_num; k++)
        if (fl_parse_num(bad_num[k], 0, FL_NUM_MAX, &x) != -1) fail_msg("number '%s' accepted", bad_num[k]);
    /* the settings: the grid's check and prune's option are this parser */
    const fl_setting *seed = fl_setting_find("seed"), *lr = fl_setting_find("lr"), *ep = fl_setting_find("epochs"),
                     *th = fl_setting_find("threads");
    assert_int_equal(fl_setting_check(seed, "1e3"), -1);
    assert_int_equal(fl_setting_check(seed, "0x10"), -1);
    assert_int_equal(fl_setting_check(seed, "1e300"), -1);
    assert_int_equal(fl_setting_check(ep, "4294967297"), -1);   /* once cast to int before the range check */
    assert_int_equal(fl_setting_check(th, "1e3"), -1);
    assert_int_equal(fl_setting_check(th, "0"), -1);
    assert_int_equal(fl_setting_check(lr, "1e300"), -1);        /* beyond a float */
    assert_int_equal(fl_setting_check(lr, "inf"), -1);
    assert_int_equal(fl_setting_check(lr, "0"), -1);            /* below lr's smallest */
    assert_int_equal(fl_setting_check(lr, "1e-3"), 0);
    fl_cell_cfg c = { 0 };
    assert_int_equal(fl_setting_set(ep, "7", &c), 0);
    assert_int_equal(c.epochs, 7);
    assert_int_equal(fl_setting_set(lr, "2.5e-4", &c), 0);
    assert_true(c.lr == 2.5e-4f);
    assert_int_equal(fl_setting_set(seed, "1073741824", &c), 0);
    assert_true(c.seed == 1073741824u);
    assert_int_equal(fl_setting_set(ep, "1e3", &c), -1);
    assert_int_equal(c.epochs, 7);
}

/* The cells of a grid that parses and checks; their strings live in g. */
static int checked_cells(const char *ini, fl_grid *g, fl_cell_spec **c) {
    int n;
    assert_int_equal(fl_grid_parse_string(ini, "t.ini", g), 0);
    assert_int_equal(fl_grid_check(g), 0);
    assert_int_equal(fl_grid_cells(g, c, &n), 0);
    return n;
}

static void test_default_grid(void **st) {
    (void)st;
    fl_grid g;
    fl_cell_spec *c;
    assert_true(checked_cells(FL_DEFAULT_GRID, &g, &c) >= 8);
    free(c);
    fl_grid_free(&g);
}

/* ---- the settings table -------------------------------------------------- */

/* Every key of the grid that has ever existed, in the order cell ids are
 * hashed in: a row of the table moved or renamed would change every id. */
static void test_settings_table(void **st) {
    (void)st;
    static const char *const IDS_ORDER[] = {
        "model", "criterion", "sparsity", "pattern", "reconstruct", "propagation", "loss", "trainable", "lr", "epochs",
        "batch-size", "grad-accum", "weight-decay", "distill", "calib", "calib-split", "calib-samples", "seqlen", "seed", "eval",
        "eval-windows", "backend", "threads" };
    int n = (int)(sizeof IDS_ORDER / sizeof *IDS_ORDER);
    assert_true(FL_NSETTINGS >= n);
    for (int i = 0; i < n; i++) assert_string_equal(FL_SETTINGS[i].key, IDS_ORDER[i]);
    /* the settings columns of results.csv: right after cell_id, status, message, role, in table order */
    assert_string_equal(FL_RESULT_COLS[3], "role");
    int col = 4;
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        assert_ptr_equal(fl_setting_find(s->key), s);   /* unique */
        for (const char *p = s->key; *p; p++) assert_true((*p >= 'a' && *p <= 'z') || *p == '-');
        assert_non_null(s->help);
        if (s->def) assert_int_equal(fl_setting_check(s, s->def), 0);
        if (s->csv) assert_true(fl_result_col(s->csv) >= 0);
        if (!s->csv || s->type == FL_SET_COMMON || fl_result_col(s->csv) < col) continue;   /* calib-split shares calib's column */
        assert_string_equal(FL_RESULT_COLS[col], s->csv);
        col++;
    }
    assert_string_equal(FL_RESULT_COLS[col], "achieved_sparsity");
    /* the same cell as written by the version before the table: the id must not move */
    const char *ini = "[fixed]\nthreads = 1\nbackend = openblas\neval-windows = 5\neval = sotu-test, moby-test\nseed = 3\nseqlen = 16\n"
                      "calib-samples = 8\ncalib-split = sotu-val\ndistill = true\nweight-decay = 0.1\ngrad-accum = 2\nbatch-size = 4\n"
                      "epochs = 2\nlr = 1e-3\ntrainable = all\nloss = nmse\npropagation = dense\nreconstruct = retrain:full\n"
                      "pattern = row\nsparsity = 2:4\ncriterion = wanda\nmodel = m\n";
    fl_grid g;
    fl_cell_spec *c;
    assert_int_equal(checked_cells(ini, &g, &c), 1);
    assert_string_equal(c[0].id, "ab86c0515632");
    free(c);
    fl_grid_free(&g);
    /* defaults resolve once, and a given calib file keeps the split's default away */
    fl_cell_cfg cfg = { .calib_file = "x.bin" };
    fl_settings_defaults(&cfg);
    assert_string_equal(cfg.pattern, "row");
    assert_string_equal(cfg.reconstruct, "none");
    assert_int_equal(cfg.calib_samples, 128);
    assert_int_equal(cfg.recon_batch, 2);
    assert_null(cfg.calib_split);
    assert_int_equal(fl_settings_exclusive(&cfg), 0);
    cfg.calib_split = "sotu-val";
    assert_int_equal(fl_settings_exclusive(&cfg), -1);
    fl_cell_cfg d = { 0 };
    fl_settings_defaults(&d);
    assert_string_equal(d.calib_split, "sotu-train");
}

/* The backticked names of README.md between `from` and `to` on the text after `anchor`, comma-joined. */
static void readme_names(const char *text, const char *anchor, const char *from, const char *to, char *out, size_t n) {
    out[0] = 0;
    const char *a = strstr(text, anchor);
    if (!a) fail_msg("README.md: no '%s'", anchor);
    const char *b = strstr(a, from), *e = b ? strstr(b + strlen(from), to) : NULL;
    if (!b || !e) fail_msg("README.md: no '%s' ... '%s' after '%s'", from, to, anchor);
    for (const char *p = b + strlen(from); p < e; p++) {
        if (*p != '`') continue;
        const char *q = strchr(p + 1, '`');
        if (!q || q > e) break;
        size_t k = strlen(out);
        snprintf(out + k, n - k, "%s%.*s", k ? "," : "", (int)(q - p - 1), p + 1);
        p = q;
    }
}

/* README.md's grid keys and results.csv settings columns are the table's. */
static void test_settings_readme(void **st) {
    (void)st;
    char *text = NULL;
    assert_int_equal(fl_read_file("README.md", &text, NULL), 0);   /* tests run from the checkout's root */
    char keys[2048] = "", common[256] = "", cols[2048] = "", got[2048];
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        if (s->type == FL_SET_COMMON) snprintf(common + strlen(common), sizeof common - strlen(common), "%s%s", *common ? "," : "", s->key);
        else snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", *keys ? "," : "", s->key);
        char whole[2100], name[80];   /* a column once, by its whole name ("stream" is in "prune_stream") */
        snprintf(whole, sizeof whole, ",%s,", cols);
        snprintf(name, sizeof name, ",%s,", s->csv ? s->csv : "");
        if (s->csv && s->type != FL_SET_COMMON && !strstr(whole, name))
            snprintf(cols + strlen(cols), sizeof cols - strlen(cols), "%s%s", *cols ? "," : "", s->csv);
    }
    readme_names(text, "- Keys are the options of `freelunch prune`", "without their dashes (", ")", got, sizeof got);
    assert_string_equal(got, keys);
    readme_names(text, "- Keys are the options of `freelunch prune`", "), plus ", ";", got, sizeof got);
    assert_string_equal(got, common);
    readme_names(text, "### results.csv", "the settings, with the defaults the cell used: ", " (", got, sizeof got);
    assert_string_equal(got, cols);
    free(text);
}

/* A results.csv from before the zero-shot columns (eval_task_limit, acc_*,
 * word_ppl_*) loads, those columns empty, the others in place. */
static void test_old_header_zero_shot(void **st) {
    (void)st;
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/old.csv", dir);
    FILE *f = fopen(path, "w");
    int nold = 0, last = -1;
    for (int i = 0; i < FL_RESULT_NCOLS; i++) {
        const char *c = FL_RESULT_COLS[i];
        if (!strncmp(c, "acc_", 4) || !strncmp(c, "word_ppl_", 9) || !strcmp(c, "eval_task_limit")) continue;
        fprintf(f, "%s%s", nold++ ? "," : "", c);
        last = i;
    }
    fprintf(f, "\nabc123,ok");
    for (int i = 2; i < nold; i++) fprintf(f, ",%d", i);
    fprintf(f, "\n");
    fclose(f);
    fl_table t;
    assert_int_equal(fl_table_read(path, &t), 0);
    assert_int_equal(t.nrows, 1);
    assert_string_equal(fl_table_get(&t, 0, "acc_mean"), "");
    assert_string_equal(fl_table_get(&t, 0, "acc_norm_hellaswag"), "");
    assert_string_equal(fl_table_get(&t, 0, "eval_task_limit"), "");
    assert_true(fl_table_num(&t, 0, FL_RESULT_COLS[last]) == nold - 1);
    assert_true(fl_table_num(&t, 0, "drift_data") > 0);   /* the column before eval_task_limit, in place */
    fl_table_free(&t);
    tu_rmrf(dir);
}

/* Default learning rates by reconstructor (presets.c's sweep). */
static void test_preset_lr(void **st) {
    (void)st;
    const fl_preset *t = fl_preset_find("tiny");
    assert_non_null(t);
    assert_true(fl_preset_lr(t, "matrix") == 3e-3f);
    assert_true(fl_preset_lr(t, "sublayer") == 3e-3f);
    assert_true(fl_preset_lr(t, "block") == 1e-3f);
    assert_true(fl_preset_lr(t, "blocks:2") == 1e-3f);
    assert_true(fl_preset_lr(t, "blocks:all") == 1e-3f);
    assert_true(fl_preset_lr(t, "retrain:full") == 1e-4f);
    assert_true(fl_preset_lr(t, "retrain:masklora:rank=4") == 1e-4f);
    assert_true(fl_preset_lr(NULL, "block") == 1e-3f);
    assert_true(fl_preset_lr(NULL, "retrain:full") == 1e-5f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_unique), cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_refusals), cmocka_unit_test(test_old_header),
        cmocka_unit_test(test_pareto), cmocka_unit_test(test_grid_parse), cmocka_unit_test(test_grid_variants), cmocka_unit_test(test_grid_errors),
        cmocka_unit_test(test_default_grid), cmocka_unit_test(test_preset_lr), cmocka_unit_test(test_settings_table),
        cmocka_unit_test(test_settings_readme), cmocka_unit_test(test_grid_cell_limit), cmocka_unit_test(test_grid_long_lines),
        cmocka_unit_test(test_numbers), cmocka_unit_test(test_grid_tune), cmocka_unit_test(test_grid_tune_errors),
        cmocka_unit_test(test_tune_rows), cmocka_unit_test(test_old_header_zero_shot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
