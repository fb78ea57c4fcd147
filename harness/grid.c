/* Grid specs; see grid.h. INI parsing is inih's; this file only turns its
 * key/value callbacks into dimensions and checks them. */
#include "grid.h"
#include "criteria/criterion.h"
#include "datasets/corpus.h"
#include "model/err.h"
#include "model/fileio.h"
#include "reconstructors/recon.h"
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every option of `freelunch prune` (grid keys spell them without the
 * leading dashes), plus the common backend and threads. The order fixes the
 * canonical string a cell's id is hashed from, so a grid file may list its
 * keys in any order and the same cell keeps the same id. Never reorder or
 * rename: ids of existing results would change; append new keys at the end. */
const char *const FL_GRID_KEYS[] = {
    "model", "criterion", "sparsity", "pattern", "reconstruct", "propagation", "loss", "trainable", "lr",
    "epochs", "batch-size", "grad-accum", "weight-decay", "distill", "calib", "calib-split", "calib-samples",
    "seqlen", "seed", "eval", "eval-windows", "backend", "threads", NULL };

/* The main job's grid (README: "The main job"). The full grid is 5
 * criteria x 8 reconstructors x 3 sparsities x 3 seeds = 360 cells
 * (grids/paper.ini); this is the largest part of it measured to finish in
 * about 30 minutes on this project's 2-core machine: every criterion and
 * reconstructor, the two sparsities the paper leads with (50% unstructured
 * and 2:4), three seeds, 32 calibration windows. The seed varies slowest, so
 * a study stopped early still holds whole grids for the first seeds. */
const char FL_DEFAULT_GRID[] =
    "; freelunch's default study (freelunch study --print-default-grid)\n"
    "[grid]\n"
    "seed        = 0, 1, 2\n"
    "sparsity    = 0.5, 2:4\n"
    "reconstruct = none, matrix, sublayer, block, blocks:2, blocks:all, retrain:full, retrain:masklora\n"
    "criterion   = magnitude, wanda, sparsegpt, ria, sparseswaps:wanda\n"
    "[fixed]\n"
    "calib-samples = 32\n"
    "eval          = sotu-test\n"
    "eval-windows  = 40\n";

static void dim_free(fl_dim *d) {
    for (int i = 0; i < d->nvals; i++) free(d->vals[i]);
    free(d->vals);
    free(d->key);
    memset(d, 0, sizeof *d);
}

void fl_grid_free(fl_grid *g) {
    for (int i = 0; i < g->ndims; i++) dim_free(&g->dims[i]);
    free(g->source);
    free(g->eval_list);
    memset(g, 0, sizeof *g);
}

static int key_index(const char *k) {
    for (int i = 0; FL_GRID_KEYS[i]; i++)
        if (!strcmp(FL_GRID_KEYS[i], k)) return i;
    return -1;
}

/* "batch_size" and "batch-size" are the same key; a leading "--" is allowed. */
static void canon_key(const char *in, char *out, size_t n) {
    while (*in == '-') in++;
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++) out[i] = in[i] == '_' ? '-' : (char)tolower((unsigned char)in[i]);
    out[i] = 0;
    while (i && isspace((unsigned char)out[i - 1])) out[--i] = 0;
}

static int unknown_key(const char *src, const char *k) {
    char names[1024] = "";
    for (int i = 0; FL_GRID_KEYS[i]; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_GRID_KEYS[i], sizeof names - strlen(names) - 1);
    }
    return fl_err("%s: unknown key '%s' (valid: %s)", src, k, names);
}

/* Splits a comma-separated list; "..." protects commas. */
static int split_values(const char *src, const char *key, const char *s, fl_dim *d) {
    char buf[4096];
    for (;;) {
        while (isspace((unsigned char)*s)) s++;
        size_t n = 0;
        if (*s == '"') {
            s++;
            while (*s && *s != '"' && n + 1 < sizeof buf) buf[n++] = *s++;
            if (*s != '"') return fl_err("%s: key '%s': unterminated quote", src, key);
            s++;
            while (isspace((unsigned char)*s)) s++;
            if (*s && *s != ',') return fl_err("%s: key '%s': text after a quoted value", src, key);
        } else {
            while (*s && *s != ',' && n + 1 < sizeof buf) buf[n++] = *s++;
            while (n && isspace((unsigned char)buf[n - 1])) n--;
        }
        buf[n] = 0;
        if (!n) return fl_err("%s: key '%s': empty value", src, key);
        d->vals = realloc(d->vals, sizeof(char *) * (d->nvals + 1));
        d->vals[d->nvals++] = strdup(buf);
        if (*s != ',') break;
        s++;
    }
    return 0;
}

/* Sets (replacing) key := the list in value. */
static int grid_put(fl_grid *g, const char *src, const char *rawkey, const char *value) {
    char key[64];
    canon_key(rawkey, key, sizeof key);
    if (key_index(key) < 0) return unknown_key(src, key);
    fl_dim d = { 0 };
    if (split_values(src, key, value, &d) != 0) { dim_free(&d); return -1; }
    d.key = strdup(key);
    for (int i = 0; i < g->ndims; i++)
        if (!strcmp(g->dims[i].key, key)) { dim_free(&g->dims[i]); g->dims[i] = d; return 0; }
    if (g->ndims == FL_GRID_MAX_DIMS) { dim_free(&d); return fl_err("%s: too many keys", src); }
    g->dims[g->ndims++] = d;
    return 0;
}

typedef struct { fl_grid *g; int failed; char msg[1024]; } parse_ctx;

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
    parse_ctx *p = user;
    if (p->failed) return 0;
    if (strcmp(section, "grid") && strcmp(section, "fixed")) {
        fl_err("%s: unknown section [%s] (valid: [grid], [fixed])", p->g->source, section);
    } else if (grid_put(p->g, p->g->source, name, value) == 0) {
        return 1;
    }
    p->failed = 1;
    snprintf(p->msg, sizeof p->msg, "%s", fl_errmsg());
    return 0;
}

static int finish_parse(fl_grid *g, parse_ctx *p, int rc) {
    if (rc == -1) { int e = errno; char *s = g->source; g->source = NULL; fl_grid_free(g);
        rc = fl_err("%s: cannot open: %s", s, strerror(e)); free(s); return rc; }
    if (rc != 0) {
        /* inih reports the line of the first error; the handler's message says what */
        char m[1100];
        if (p->failed) snprintf(m, sizeof m, "%s (line %d)", p->msg, rc);
        else snprintf(m, sizeof m, "%s: line %d: not a key = value line or [section]", g->source, rc);
        fl_grid_free(g);
        return fl_err("%s", m);
    }
    return 0;
}

int fl_grid_parse_file(const char *path, fl_grid *g) {
    memset(g, 0, sizeof *g);
    g->source = strdup(path);
    parse_ctx p = { .g = g };
    errno = 0;
    return finish_parse(g, &p, ini_parse(path, ini_cb, &p));
}

int fl_grid_parse_string(const char *text, const char *name, fl_grid *g) {
    memset(g, 0, sizeof *g);
    g->source = strdup(name);
    parse_ctx p = { .g = g };
    return finish_parse(g, &p, ini_parse_string(text, ini_cb, &p));
}

int fl_grid_set(fl_grid *g, const char *a) {
    const char *eq = strchr(a, '=');
    if (!eq) return fl_err("--set '%s': expected key=value", a);
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(eq - a < 63 ? eq - a : 63), a);
    return grid_put(g, "--set", key, eq + 1);
}

const fl_dim *fl_grid_get(const fl_grid *g, const char *key) {
    for (int i = 0; i < g->ndims; i++)
        if (!strcmp(g->dims[i].key, key)) return &g->dims[i];
    return NULL;
}

/* ---- checking ------------------------------------------------------------ */

static int check_num(const char *src, const char *key, const char *v, int integer, double lo) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || (integer && x != (double)(long long)x) || x < lo)
        return fl_err("%s: key '%s': '%s' is not %s >= %g", src, key, v, integer ? "an integer" : "a number", lo);
    return 0;
}

static int check_one(const char *src, const char *key, const char *v) {
    fl_crit_inst ci;
    fl_pattern pat;
    fl_prop prop;
    fl_loss loss;
    int rc = 0;
    if (!strcmp(key, "criterion")) {   /* opened and closed: its options and warm start are checked too */
        rc = fl_criterion_open(v, &ci);
        fl_criterion_close(&ci);
    }
    else if (!strcmp(key, "reconstruct")) rc = fl_recon_check(v);
    else if (!strcmp(key, "sparsity")) rc = fl_pattern_parse(v, "row", &pat);
    else if (!strcmp(key, "pattern")) rc = strcmp(v, "row") && strcmp(v, "matrix") ? fl_err("unknown pattern '%s' (valid: row, matrix)", v) : 0;
    else if (!strcmp(key, "propagation")) rc = fl_prop_parse(v, &prop);
    else if (!strcmp(key, "loss")) rc = fl_loss_parse(v, &loss);
    else if (!strcmp(key, "trainable")) rc = strcmp(v, "all") && strcmp(v, "bias-norm") ? fl_err("unknown trainable '%s' (valid: all, bias-norm)", v) : 0;
    else if (!strcmp(key, "backend")) rc = strcmp(v, "openblas") && strcmp(v, "onednn") ? fl_err("unknown backend '%s' (valid: openblas, onednn)", v) : 0;
    else if (!strcmp(key, "distill"))
        rc = strcmp(v, "true") && strcmp(v, "false") && strcmp(v, "1") && strcmp(v, "0") && strcmp(v, "yes") && strcmp(v, "no")
                 ? fl_err("'%s' is not true or false", v) : 0;
    else if (!strcmp(key, "lr")) return check_num(src, key, v, 0, 1e-30);
    else if (!strcmp(key, "weight-decay")) return check_num(src, key, v, 0, 0);
    else if (!strcmp(key, "seed")) return check_num(src, key, v, 1, 0);
    else if (!strcmp(key, "seqlen")) return check_num(src, key, v, 1, 2);
    else if (!strcmp(key, "epochs") || !strcmp(key, "batch-size") || !strcmp(key, "grad-accum") ||
             !strcmp(key, "calib-samples") || !strcmp(key, "eval-windows") || !strcmp(key, "threads"))
        return check_num(src, key, v, 1, 1);
    if (rc != 0) {
        char m[1100];
        snprintf(m, sizeof m, "%s", fl_errmsg());
        return fl_err("%s: key '%s': %s", src, key, m);
    }
    return 0;
}

int fl_grid_check(const fl_grid *g) {
    for (int i = 0; i < g->ndims; i++) {
        const fl_dim *d = &g->dims[i];
        if (key_index(d->key) < 0) return unknown_key(g->source, d->key);
        for (int j = 0; j < d->nvals; j++)
            if (check_one(g->source, d->key, d->vals[j]) != 0) return -1;
        for (int j = 0; j < d->nvals; j++)
            for (int k = 0; k < j; k++)
                if (!strcmp(d->vals[j], d->vals[k]))
                    return fl_err("%s: key '%s': value '%s' given twice", g->source, d->key, d->vals[j]);
    }
    const fl_dim *cf = fl_grid_get(g, "calib"), *cs = fl_grid_get(g, "calib-split");
    if (cf && cs) return fl_err("%s: give calib or calib-split, not both", g->source);
    if (!fl_grid_get(g, "criterion")) return fl_err("%s: no criterion given", g->source);
    if (!fl_grid_get(g, "sparsity")) return fl_err("%s: no sparsity given", g->source);
    return 0;
}

/* ---- cells --------------------------------------------------------------- */

const char *fl_cell_get(const fl_cell_spec *c, const char *key) {
    for (int i = 0; i < c->nkeys; i++)
        if (!strcmp(c->key[i], key)) return c->val[i];
    return NULL;
}

static void cell_identity(fl_cell_spec *c) {
    /* canonical: key=value\n in FL_GRID_KEYS order */
    char canon[8192] = "";
    for (int k = 0; FL_GRID_KEYS[k]; k++) {
        const char *v = fl_cell_get(c, FL_GRID_KEYS[k]);
        if (!v) continue;
        size_t n = strlen(canon);
        snprintf(canon + n, sizeof canon - n, "%s=%s\n", FL_GRID_KEYS[k], v);
    }
    unsigned char h[32];
    fl_sha256(canon, strlen(canon), h);
    for (int i = 0; i < 6; i++) snprintf(c->id + 2 * i, 3, "%02x", h[i]);
    const char *parts[] = { fl_cell_get(c, "criterion"), fl_cell_get(c, "sparsity"), fl_cell_get(c, "reconstruct") };
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        if (parts[i]) n += snprintf(c->name + n, sizeof c->name - n, "%s%.40s", n ? "_" : "", parts[i]);
    const char *seed = fl_cell_get(c, "seed");
    if (seed) n += snprintf(c->name + n, sizeof c->name - n, "_s%.10s", seed);
    /* a directory name: keep letters, digits, '.', '-', '_' */
    for (char *p = c->name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') *p = '-';
}

int fl_grid_cells(fl_grid *g, fl_cell_spec **cells, int *n) {
    /* eval is a list every cell gets whole, not a dimension */
    fl_grid *gm = g;   /* the joined list lives in the grid */
    free(gm->eval_list);
    gm->eval_list = NULL;
    long long total = 1;
    for (int i = 0; i < g->ndims; i++)
        if (strcmp(g->dims[i].key, "eval")) total *= g->dims[i].nvals;
    if (total > 1000000) return fl_err("%s: %lld cells: too many", g->source, total);
    const fl_dim *ev = fl_grid_get(g, "eval");
    if (ev) {
        size_t len = 1;
        for (int j = 0; j < ev->nvals; j++) len += strlen(ev->vals[j]) + 1;
        gm->eval_list = calloc(1, len);
        for (int j = 0; j < ev->nvals; j++) { if (j) strcat(gm->eval_list, ","); strcat(gm->eval_list, ev->vals[j]); }
    }
    fl_cell_spec *cs = calloc((size_t)total, sizeof *cs);
    int idx[FL_GRID_MAX_DIMS] = { 0 };
    for (long long c = 0; c < total; c++) {
        fl_cell_spec *s = &cs[c];
        for (int i = 0; i < g->ndims; i++) {
            s->key[i] = g->dims[i].key;
            s->val[i] = strcmp(g->dims[i].key, "eval") ? g->dims[i].vals[idx[i]] : g->eval_list;
        }
        s->nkeys = g->ndims;
        cell_identity(s);
        for (int i = g->ndims - 1; i >= 0; i--) {   /* odometer: the last key fastest */
            if (!strcmp(g->dims[i].key, "eval")) continue;
            if (++idx[i] < g->dims[i].nvals) break;
            idx[i] = 0;
        }
    }
    *cells = cs;
    *n = (int)total;
    return 0;
}

int fl_grid_write(const fl_grid *g, const char *path) {
    char *tmp;
    FILE *f = fl_tmp_open(path, &tmp);
    if (!f) return -1;
    int ok = fprintf(f, "; the grid as run (from %s, with every --set applied)\n", g->source) > 0;
    for (int sec = 0; sec < 2; sec++) {
        ok = ok && fprintf(f, "[%s]\n", sec ? "fixed" : "grid") > 0;
        for (int i = 0; i < g->ndims; i++) {
            const fl_dim *d = &g->dims[i];
            int is_dim = d->nvals > 1 && strcmp(d->key, "eval");
            if (is_dim != !sec) continue;
            ok = ok && fprintf(f, "%s = ", d->key) > 0;
            for (int j = 0; j < d->nvals; j++)
                ok = ok && fprintf(f, strchr(d->vals[j], ',') ? "%s\"%s\"" : "%s%s", j ? ", " : "", d->vals[j]) > 0;
            ok = ok && fputc('\n', f) != EOF;
        }
    }
    return fl_tmp_commit(f, tmp, path, ok);
}
