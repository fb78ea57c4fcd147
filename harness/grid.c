/* Grid specs; see grid.h. INI parsing is inih's; this file feeds it the
 * lines, turns its key/value callbacks into dimensions and checks them. */
#include "grid.h"
#include "settings.h"
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
#include <sys/stat.h>

/* The main job's grid (README: "The main job"). The full grid is 5
 * criteria x 8 reconstructors x 3 sparsities x 3 seeds = 360 cells
 * (grids/paper.ini); this is the largest part of it measured to finish in
 * about 30 minutes on this project's 2-core machine: every criterion and
 * reconstructor, the two sparsities the paper leads with (50% unstructured
 * and 2:4), three seeds, 32 calibration windows. The seed varies slowest, so
 * a study stopped early still holds whole grids for the first seeds. */
const char FL_DEFAULT_GRID[] =
    "; freelunch's default study (freelunch study --print-default-grid)\n"
    "; Every claim testable in about half an hour on 2 cores: the simplest and\n"
    "; the most sophisticated criteria, matrix against two units holding a\n"
    "; nonlinearity, MaskLoRA retraining, three seeds for paired intervals,\n"
    "; and each cell that trains run at 1/3, 1 and 3 times its preset learning\n"
    "; rate, scored on sotu-val, the best re-run and evaluated on sotu-test\n"
    "; (README, \"The main job\"); each final cell also scores the first\n"
    "; 50 items of the two zero-shot tasks built from sotu-test. The broader\n"
    "; untuned grid it replaced: grids/broad.ini.\n"
    "[grid]\n"
    "seed        = 0, 1, 2\n"
    "sparsity    = 0.5, 2:4\n"
    "reconstruct = none, matrix, sublayer, block, retrain:masklora\n"
    "criterion   = magnitude, wanda, sparsegpt\n"
    "[fixed]\n"
    "calib-samples = 32\n"
    "eval          = sotu-test\n"
    "eval-windows  = 40\n"
    "eval-task       = lambada-sotu, cloze-sotu\n"
    "eval-task-limit = 50\n"
    "[tune]\n"
    "lr-scale = 0.3333, 1, 3\n"
    "select   = sotu-val\n";

static void dim_free(fl_dim *d) {
    for (int i = 0; i < d->nvals; i++) free(d->vals[i]);
    free(d->vals);
    free(d->key);
    free(d->joined);
    memset(d, 0, sizeof *d);
}

void fl_grid_free(fl_grid *g) {
    for (int i = 0; i < g->ndims; i++) dim_free(&g->dims[i]);
    for (int v = 0; v < g->nvar; v++)
        for (int i = 0; i < g->var[v].ndims; i++) dim_free(&g->var[v].dims[i]);
    for (int i = 0; i < g->tune.ndims; i++) dim_free(&g->tune.dims[i]);
    free(g->tune.select);
    free(g->var);
    free(g->source);
    memset(g, 0, sizeof *g);
}

/* "batch_size" and "batch-size" are the same key; a leading "--" is allowed.
 * A key too long for out is cut short and still unknown: the cut must not
 * leave a real key behind ("seed" and 60 blanks, then more). */
static void canon_key(const char *in, char *out, size_t n) {
    while (*in == '-') in++;
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++) out[i] = in[i] == '_' ? '-' : (char)tolower((unsigned char)in[i]);
    out[i] = 0;
    if (in[i]) { if (i) out[i - 1] = '?'; return; }   /* no setting has a '?' */
    while (i && isspace((unsigned char)out[i - 1])) out[--i] = 0;
}

static int unknown_key(const char *src, const char *k) {
    char names[1024] = "";
    for (int i = 0; i < FL_NSETTINGS; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_SETTINGS[i].key, sizeof names - strlen(names) - 1);
    }
    return fl_err("%s: unknown key '%s' (valid: %s)", src, k, names);
}

/* A value is quoted in an error message only up to here: a hostile line may be megabytes. */
#define QUOTE_MAX 80

/* Splits a comma-separated list; "..." protects commas. */
static int split_values(const char *src, const char *key, const char *s, fl_dim *d) {
    for (;;) {
        while (isspace((unsigned char)*s)) s++;
        const char *b = s;
        size_t n = 0;
        if (*s == '"') {
            b = ++s;
            while (*s && *s != '"') s++;
            if (*s != '"') return fl_err("%s: key '%s': unterminated quote", src, key);
            n = (size_t)(s - b);
            s++;
            while (isspace((unsigned char)*s)) s++;
            if (*s && *s != ',') return fl_err("%s: key '%s': text after a quoted value", src, key);
        } else {
            while (*s && *s != ',') s++;
            n = (size_t)(s - b);
            while (n && isspace((unsigned char)b[n - 1])) n--;
        }
        if (!n) return fl_err("%s: key '%s': empty value", src, key);
        /* the runner passes each value on a cell's command line through fixed buffers */
        if (n >= FL_GRID_MAX_VALUE)
            return fl_err("%s: key '%s': a value of %zu characters (at most %d)", src, key, n, FL_GRID_MAX_VALUE - 1);
        /* a newline from --set would break the grid written back (grid.ini) into other keys */
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)b[i] < ' ' && b[i] != '\t')
                return fl_err("%s: key '%s': a control character in '%.*s'", src, key, (int)(n < QUOTE_MAX ? n : QUOTE_MAX), b);
        char **v = realloc(d->vals, sizeof(char *) * ((size_t)d->nvals + 1));
        if (!v) return fl_err("%s: key '%s': out of memory", src, key);
        d->vals = v;
        d->vals[d->nvals++] = strndup(b, n);
        if (*s != ',') break;
        s++;
    }
    return 0;
}

/* Sets (replacing) key := the list in value, in one section's dimensions. */
static int dims_put(fl_dim *dims, int *ndims, const char *src, const char *rawkey, const char *value) {
    char key[64];
    canon_key(rawkey, key, sizeof key);
    if (!fl_setting_find(key)) return unknown_key(src, key);
    fl_dim d = { 0 };
    if (split_values(src, key, value, &d) != 0) { dim_free(&d); return -1; }
    d.key = strdup(key);
    for (int i = 0; i < *ndims; i++)
        if (!strcmp(dims[i].key, key)) { dim_free(&dims[i]); dims[i] = d; return 0; }
    if (*ndims == FL_GRID_MAX_DIMS) { dim_free(&d); return fl_err("%s: too many keys", src); }
    dims[(*ndims)++] = d;
    return 0;
}

static int grid_put(fl_grid *g, const char *src, const char *rawkey, const char *value) {
    return dims_put(g->dims, &g->ndims, src, rawkey, value);
}

static const fl_dim *dims_get(const fl_dim *dims, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(dims[i].key, key)) return &dims[i];
    return NULL;
}

/* The variant named by section "grid.NAME", made if new; NULL with a message. */
static fl_grid_variant *variant_of(fl_grid *g, const char *section, char *m, size_t mn, int line) {
    const char *name = section + 5;
    size_t n = strlen(name);
    int ok = n >= 1 && n < sizeof g->var[0].name;
    for (size_t i = 0; ok && i < n; i++) ok = isalnum((unsigned char)name[i]) || name[i] == '-' || name[i] == '_';
    if (!ok) {
        snprintf(m, mn, "%s: section [%.64s]: a variant's name is 1-31 letters, digits, '-' or '_' (line %d)", g->source, section, line);
        return NULL;
    }
    for (int v = 0; v < g->nvar; v++)
        if (!strcmp(g->var[v].name, name)) return &g->var[v];
    if (g->nvar == FL_GRID_MAX_VARIANTS) {
        snprintf(m, mn, "%s: more than %d [grid.NAME] variants (line %d)", g->source, FL_GRID_MAX_VARIANTS, line);
        return NULL;
    }
    fl_grid_variant *nv = realloc(g->var, sizeof *nv * (size_t)(g->nvar + 1));
    if (!nv) { snprintf(m, mn, "out of memory reading the grid"); return NULL; }
    g->var = nv;
    fl_grid_variant *v = &g->var[g->nvar++];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    return v;
}

/* ---- reading the INI text -------------------------------------------------
 *
 * inih parses, but Debian's libinih reads into a fixed 200-byte line buffer:
 * a longer line would come back as two, the second a line the user never
 * wrote. So inih reads through grid_reader, which hands it the file's lines
 * as they are when they fit, and a longer key = value line as pieces that
 * do: the first holds the key, each later one is indented, which inih takes
 * as a continuation of the same key. A piece ends and the next begins
 * between two non-blank characters, so inih's trimming removes nothing of
 * the value, and the next piece never starts with a character inih would
 * read as a comment or a section. The handler joins pieces back without a
 * separator; a continuation line the user wrote (indented) adds to the list.
 * The values of a key are split only when the whole file is read. */

#define GRID_MAX_LINE (1 << 20)      /* one line: 60 seeds take 250 characters, so this is only a bound */
#define GRID_MAX_FILE (16 << 20)

typedef struct {
    char *name;          /* canonical key */
    char *raw;           /* its value text, every piece and continuation joined */
    size_t len, cap;
    int line;            /* where it was given */
    int sec;             /* -1: [grid] or [fixed]; SEC_TUNE: [tune]; else the variant's index */
} raw_key;

#define SEC_TUNE (-2)
#define GRID_MAX_RAW (FL_GRID_MAX_DIMS * (2 + FL_GRID_MAX_VARIANTS) + 1)

typedef struct {
    fl_grid *g;
    const char *text;
    size_t pos, len;
    int line;              /* physical line of the last text handed to inih */
    int piece;             /* that text is a later piece of a long line */
    int indented;          /* that line starts with a blank */
    const char *rest;      /* what is left of a long line */
    size_t rest_n;
    int *map;              /* inih's line k is physical line map[k - 1] */
    int nmap, capmap;
    raw_key keys[GRID_MAX_RAW];
    int nkeys, cur;        /* cur: the key a continuation adds to, or -1 */
    int failed;
    char msg[1024];
} parse_ctx;

static void ctx_free(parse_ctx *p) {
    for (int i = 0; i < p->nkeys; i++) { free(p->keys[i].name); free(p->keys[i].raw); }
    free(p->map);
}

static int ctx_fail(parse_ctx *p, const char *m) {
    if (!p->failed) snprintf(p->msg, sizeof p->msg, "%.1023s", m);
    p->failed = 1;
    return 0;
}

static int line_err(parse_ctx *p, const char *what) {
    char m[1024];
    snprintf(m, sizeof m, "%s: line %d: %s", p->g->source, p->line, what);
    return ctx_fail(p, m);
}

/* Where a piece of at most `room` characters of s[0..n) may end: a j with
 * s[j-1], s[j] not blank and s[j] not one of ";#[", the last such j <= room
 * and > from; 0 if none. */
static size_t piece_end(const char *s, size_t n, size_t from, size_t room) {
    if (n <= room) return n;
    for (size_t j = room; j > from && j > 0; j--)
        if (!isspace((unsigned char)s[j - 1]) && !isspace((unsigned char)s[j]) && !strchr(";#[", s[j])) return j;
    return 0;
}

static char *hand(parse_ctx *p, char *str, const char *s, size_t n, int indent) {
    if (p->nmap == p->capmap) {
        int c = p->capmap ? 2 * p->capmap : 64;
        int *m = realloc(p->map, sizeof *m * (size_t)c);
        if (!m) { ctx_fail(p, "out of memory reading the grid"); return NULL; }
        p->map = m;
        p->capmap = c;
    }
    p->map[p->nmap++] = p->line;
    size_t k = 0;
    if (indent) str[k++] = ' ';
    memcpy(str + k, s, n);
    str[k + n] = 0;
    return str;
}

/* inih's fgets: the next line for it, at most num - 1 characters. */
static char *grid_reader(char *str, int num, void *stream) {
    parse_ctx *p = stream;
    if (p->failed || num < 16) return NULL;
    size_t room = (size_t)num - 2;   /* a piece after the first is indented by one blank */
    if (p->rest) {
        size_t j = piece_end(p->rest, p->rest_n, 0, room);
        if (!j) { line_err(p, "too long (no place to split it)"); return NULL; }
        const char *s = p->rest;
        p->piece = 1;
        if (j == p->rest_n) p->rest = NULL;
        else { p->rest += j; p->rest_n -= j; }
        return hand(p, str, s, j, 1);
    }
    if (p->pos >= p->len) return NULL;
    const char *s = p->text + p->pos;
    const char *nl = memchr(s, '\n', p->len - p->pos);
    size_t n = nl ? (size_t)(nl - s) : p->len - p->pos;
    p->pos += n + (nl != NULL);
    p->line++;
    p->piece = 0;
    p->indented = n && isspace((unsigned char)s[0]);
    if (memchr(s, 0, n)) { line_err(p, "a NUL byte: not a text file"); return NULL; }
    size_t b = 0;
    while (b < n && isspace((unsigned char)s[b])) b++;
    if (n > GRID_MAX_LINE) { line_err(p, "too long (more than 1 MiB)"); return NULL; }
    if (b < n && s[b] == '[') p->cur = -1;   /* a section: what follows is no continuation */
    if (b < n && (s[b] == ';' || s[b] == '#')) return hand(p, str, ";", 1, 0);   /* a comment, however long */
    /* an inline comment (';' after a blank) ends the line here, as inih ends
     * a key's first line: its pieces, and continuation lines, which inih
     * would keep whole, must not carry it into the values */
    for (size_t i = b + 1; i < n; i++)
        if (s[i] == ';' && isspace((unsigned char)s[i - 1])) { n = i; break; }
    while (n > b && isspace((unsigned char)s[n - 1])) n--;
    if (n < (size_t)num - 1) return hand(p, str, s, n, 0);
    if (s[b] == '[') { line_err(p, "too long (a section name)"); return NULL; }
    size_t delim = b;
    while (delim < n && s[delim] != '=' && s[delim] != ':') delim++;
    if (delim + 2 > room) { line_err(p, "too long (no '=' in its first 190 characters)"); return NULL; }
    size_t j = piece_end(s, n, delim, room);
    if (!j) { line_err(p, "too long (no place to split it)"); return NULL; }
    p->rest = s + j;
    p->rest_n = n - j;
    return hand(p, str, s, j, 0);
}

static int raw_append(raw_key *k, const char *sep, const char *v) {
    size_t a = strlen(sep), b = strlen(v);
    if (k->len + a + b + 1 > k->cap) {
        size_t c = 2 * (k->len + a + b + 1);
        char *r = realloc(k->raw, c);
        if (!r) return -1;
        k->raw = r;
        k->cap = c;
    }
    memcpy(k->raw + k->len, sep, a);
    memcpy(k->raw + k->len + a, v, b + 1);
    k->len += a + b;
    return 0;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
    parse_ctx *p = user;
    const char *src = p->g->source;
    char m[1100];
    if (p->failed) return 0;
    int sec = -1;
    if (!strncmp(section, "grid.", 5)) {
        const fl_grid_variant *v = variant_of(p->g, section, m, sizeof m, p->line);
        if (!v) return ctx_fail(p, m);
        sec = (int)(v - p->g->var);
    } else if (!strcmp(section, "tune")) {
        sec = SEC_TUNE;
    } else if (strcmp(section, "grid") && strcmp(section, "fixed")) {
        snprintf(m, sizeof m, "%s: unknown section [%.64s] (valid: [grid], [fixed], [grid.NAME], [tune]) (line %d)", src, section, p->line);
        return ctx_fail(p, m);
    }
    char key[64];
    canon_key(name, key, sizeof key);
    if (p->piece || (p->indented && p->cur >= 0 && !strcmp(p->keys[p->cur].name, key))) {
        if (p->cur < 0) {   /* a piece of a line inih did not take as a key */
            snprintf(m, sizeof m, "%s: line %d: not a key = value line or [section]", src, p->line);
            return ctx_fail(p, m);
        }
        /* a piece continues mid-value; the user's continuation line adds to the list */
        raw_key *k = &p->keys[p->cur];
        const char *sep = p->piece ? "" : k->len && k->raw[k->len - 1] != ',' && *value != ',' ? ", " : " ";
        if (raw_append(k, sep, value) != 0) return ctx_fail(p, "out of memory reading the grid");
        return 1;
    }
    if (!fl_setting_find(key) && !(sec == SEC_TUNE && !strcmp(key, "select"))) {
        unknown_key(src, key);
        snprintf(m, sizeof m, "%s (line %d)", fl_errmsg(), p->line);
        return ctx_fail(p, m);
    }
    for (int i = 0; i < p->nkeys; i++)
        if (p->keys[i].sec == sec && !strcmp(p->keys[i].name, key)) {
            snprintf(m, sizeof m, "%s: key '%s' given twice (lines %d and %d)", src, key, p->keys[i].line, p->line);
            return ctx_fail(p, m);
        }
    if (p->nkeys == GRID_MAX_RAW) return ctx_fail(p, "too many keys");   /* more than the settings per section: a repeat caught above */
    raw_key *k = &p->keys[p->nkeys];
    *k = (raw_key){ .name = strdup(key), .line = p->line, .sec = sec };
    if (raw_append(k, "", value) != 0) return ctx_fail(p, "out of memory reading the grid");
    p->cur = p->nkeys++;
    return 1;
}

static int parse_text(fl_grid *g, const char *text, size_t len) {
    parse_ctx p = { .g = g, .text = text, .len = len, .cur = -1 };
    int rc = ini_parse_stream(grid_reader, &p, ini_cb, &p);
    char m[1100];
    int ret = 0;
    if (p.failed) {
        ret = fl_err("%s", p.msg);
    } else if (rc != 0) {
        int line = rc > 0 && rc <= p.nmap ? p.map[rc - 1] : rc;
        ret = fl_err("%s: line %d: not a key = value line or [section]", g->source, line);
    } else {
        for (int i = 0; i < p.nkeys && !ret; i++) {
            fl_grid_variant *v = p.keys[i].sec >= 0 ? &g->var[p.keys[i].sec] : NULL;
            const int tune = p.keys[i].sec == SEC_TUNE;
            if (tune && !strcmp(p.keys[i].name, "select")) {
                fl_dim d = { 0 };
                if (split_values(g->source, "select", p.keys[i].raw, &d) != 0 || d.nvals != 1) {
                    if (d.nvals > 1) fl_err("%s: [tune] select: one split, not a list", g->source);
                    snprintf(m, sizeof m, "%s (line %d)", fl_errmsg(), p.keys[i].line);
                    ret = fl_err("%s", m);
                } else
                    g->tune.select = strdup(d.vals[0]);
                dim_free(&d);
                continue;
            }
            fl_dim *dims = tune ? g->tune.dims : v ? v->dims : g->dims;
            int *nd = tune ? &g->tune.ndims : v ? &v->ndims : &g->ndims;
            if (dims_put(dims, nd, g->source, p.keys[i].name, p.keys[i].raw) != 0) {
                snprintf(m, sizeof m, "%s (line %d)", fl_errmsg(), p.keys[i].line);
                ret = fl_err("%s", m);
            }
        }
    }
    ctx_free(&p);
    if (ret) fl_grid_free(g);
    return ret;
}

int fl_grid_parse_file(const char *path, fl_grid *g) {
    memset(g, 0, sizeof *g);
    struct stat st;
    if (stat(path, &st) != 0) return fl_err("%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return fl_err("%s: is a directory, not a grid file", path);
    if (!S_ISREG(st.st_mode)) return fl_err("%s: not a regular file", path);
    if (st.st_size > GRID_MAX_FILE) return fl_err("%s: %lld bytes: too large for a grid file", path, (long long)st.st_size);
    char *text;
    size_t len;
    if (fl_read_file(path, &text, &len) != 0) return -1;
    g->source = strdup(path);
    int rc = parse_text(g, text, len);
    free(text);
    return rc;
}

int fl_grid_parse_string(const char *text, const char *name, fl_grid *g) {
    memset(g, 0, sizeof *g);
    g->source = strdup(name);
    return parse_text(g, text, strlen(text));
}

int fl_grid_set(fl_grid *g, const char *a) {
    const char *eq = strchr(a, '=');
    if (!eq) return fl_err("--set '%s': expected key=value", a);
    char *key = strndup(a, (size_t)(eq - a));
    if (!key) return fl_err("--set: out of memory");
    /* wherever it is: [tune], or [grid] or [fixed] and every variant that sets it */
    char ck[64];
    canon_key(key, ck, sizeof ck);
    if (dims_get(g->tune.dims, g->tune.ndims, ck)) {
        int rc = dims_put(g->tune.dims, &g->tune.ndims, "--set", key, eq + 1);
        free(key);
        return rc;
    }
    int rc = grid_put(g, "--set", key, eq + 1);
    for (int v = 0; v < g->nvar && rc == 0; v++)
        if (dims_get(g->var[v].dims, g->var[v].ndims, ck)) rc = dims_put(g->var[v].dims, &g->var[v].ndims, "--set", key, eq + 1);
    free(key);
    return rc;
}

const fl_dim *fl_grid_get(const fl_grid *g, const char *key) { return dims_get(g->dims, g->ndims, key); }

int fl_grid_varies(const fl_grid *g, const char *key) {
    const fl_dim *d = fl_grid_get(g, key);
    if (d && d->nvals > 1) return 1;
    for (int v = 0; v < g->nvar; v++)
        if (dims_get(g->var[v].dims, g->var[v].ndims, key)) return 1;
    const fl_dim *t = dims_get(g->tune.dims, g->tune.ndims, key);
    return t && t->nvals > 1;
}

const char *fl_grid_select(const fl_grid *g) { return g->tune.select ? g->tune.select : FL_TUNE_SELECT; }

/* ---- checking ------------------------------------------------------------ */

/* The table's check, with the source and key in the message. */
static int check_one(const char *src, const fl_setting *s, const char *v) {
    if (fl_setting_check(s, v) == 0) return 0;
    char m[1100];
    snprintf(m, sizeof m, "%s", fl_errmsg());
    return fl_err("%s: key '%s': %s", src, s->key, m);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A value given twice in one key, found on a sorted copy: a long list must not cost its square. */
static int first_repeat(const fl_grid *g, const fl_dim *d) {
    if (d->nvals < 2) return 0;
    char **v = malloc(sizeof *v * (size_t)d->nvals);
    if (!v) return fl_err("%s: key '%s': out of memory", g->source, d->key);
    memcpy(v, d->vals, sizeof *v * (size_t)d->nvals);
    qsort(v, (size_t)d->nvals, sizeof *v, cmp_str);
    int rc = 0;
    for (int j = 1; j < d->nvals && !rc; j++)
        if (!strcmp(v[j], v[j - 1])) rc = fl_err("%s: key '%s': value '%.*s' given twice", g->source, d->key, QUOTE_MAX, v[j]);
    free(v);
    return rc;
}

/* One section's keys; a variant's (v) also against the main grid's keys it
 * keeps. */
static int check_dims(const fl_grid *g, const fl_grid_variant *v) {
    const fl_dim *dims = v ? v->dims : g->dims;
    const int n = v ? v->ndims : g->ndims;
    for (int i = 0; i < n; i++) {
        const fl_dim *d = &dims[i];
        const fl_setting *s = fl_setting_find(d->key);
        if (!s) return unknown_key(g->source, d->key);
        /* a variant cannot take a key away: one of the pair in either is both */
        if (s->excl && (dims_get(dims, n, s->excl) || (v && fl_grid_get(g, s->excl))))
            return fl_err("%s: give %s or %s, not both", g->source, s->key, s->excl);
        for (int j = 0; j < d->nvals; j++)
            if (check_one(g->source, s, d->vals[j]) != 0) return -1;
        if (first_repeat(g, d) != 0) return -1;
        if (s->type == FL_SET_LIST) {   /* one value every cell gets whole, comma-joined */
            size_t len = 0;
            for (int j = 0; j < d->nvals; j++) len += strlen(d->vals[j]) + 1;
            if (d->nvals > FL_MAX_EVALS || len > FL_GRID_MAX_VALUE)
                return fl_err("%s: key '%s': %d values, %zu characters (at most %d values, %d characters)", g->source, d->key,
                              d->nvals, len, FL_MAX_EVALS, FL_GRID_MAX_VALUE);
        }
    }
    return 0;
}

long long fl_tune_ncombos(const fl_grid *g) {
    long long c = 1;
    for (int i = 0; i < g->tune.ndims; i++) {
        c *= g->tune.dims[i].nvals;
        if (c > FL_GRID_MAX_CELLS) return FL_GRID_MAX_CELLS + 1LL;   /* saturates: refused by the checks */
    }
    return c;
}

static int ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* [tune]: numeric settings no other section gives, a selection split that
 * is neither a test split nor one the grid reports. */
static int check_tune(const fl_grid *g) {
    const fl_grid_tune *t = &g->tune;
    const char *sel = fl_grid_select(g);
    if (!t->ndims) return t->select ? fl_err("%s: [tune] has select = %.*s but no setting to tune", g->source, QUOTE_MAX, sel) : 0;
    for (int i = 0; i < t->ndims; i++) {
        const fl_dim *d = &t->dims[i];
        const fl_setting *s = fl_setting_find(d->key);
        if (!s) return unknown_key(g->source, d->key);
        if (s->type != FL_SET_INT && s->type != FL_SET_FLOAT && s->type != FL_SET_SEED)
            return fl_err("%s: [tune] key '%s': not a numeric cell setting (tune lr, epochs, batch-size, ...; put '%s' in [grid])",
                          g->source, d->key, d->key);
        if (fl_grid_get(g, d->key))
            return fl_err("%s: key '%s' is in [tune] and in [grid] or [fixed]: give it in one of them", g->source, d->key);
        for (int v = 0; v < g->nvar; v++)
            if (dims_get(g->var[v].dims, g->var[v].ndims, d->key))
                return fl_err("%s: key '%s' is in [tune] and in [grid.%s]: give it in one of them", g->source, d->key, g->var[v].name);
        for (int j = 0; j < d->nvals; j++)
            if (check_one(g->source, s, d->vals[j]) != 0) return -1;
        if (first_repeat(g, d) != 0) return -1;
    }
    if (fl_tune_ncombos(g) > FL_GRID_MAX_CELLS) return fl_err("%s: [tune]: more than %d combinations", g->source, FL_GRID_MAX_CELLS);
    int known = 0;
    for (int i = 0; FL_SPLITS[i]; i++) known |= !strcmp(FL_SPLITS[i], sel);
    if (!known) {
        char all[256] = "";
        for (int i = 0; FL_SPLITS[i]; i++) snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", FL_SPLITS[i]);
        return fl_err("%s: [tune] select = %.*s: not a split (splits: %s)", g->source, QUOTE_MAX, sel, all);
    }
    if (ends_with(sel, "-test"))
        return fl_err("%s: [tune] select = %s: a test split never chooses settings (select on a validation split, e.g. %s)",
                      g->source, sel, FL_TUNE_SELECT);
    for (int v = -1; v < g->nvar; v++) {
        const fl_dim *e = v < 0 ? fl_grid_get(g, "eval") : dims_get(g->var[v].dims, g->var[v].ndims, "eval");
        for (int j = 0; e && j < e->nvals; j++)
            if (!strcmp(e->vals[j], sel)) {
                char where[64] = "";
                if (v >= 0) snprintf(where, sizeof where, " in [grid.%s]", g->var[v].name);
                return fl_err("%s: [tune] select = %s is also an evaluation set of the grid (eval%s): select on a split the grid does not report",
                              g->source, sel, where);
            }
    }
    return 0;
}

int fl_grid_check(const fl_grid *g) {
    if (check_dims(g, NULL) != 0) return -1;
    for (int v = 0; v < g->nvar; v++)
        if (check_dims(g, &g->var[v]) != 0) return -1;
    if (check_tune(g) != 0) return -1;
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

/* extra: text hashed after the settings (a tuning role), or NULL */
static int cell_identity(fl_cell_spec *c, const char *extra) {
    /* canonical: key=value\n in the settings table's order, so a grid may
     * list its keys in any order and the same cell keeps the same id. Sized
     * to fit: two cells that differ only past a fixed buffer must not share an id. */
    size_t len = 1 + (extra ? strlen(extra) : 0);
    for (int k = 0; k < FL_NSETTINGS; k++) {
        const char *v = fl_cell_get(c, FL_SETTINGS[k].key);
        if (v) len += strlen(FL_SETTINGS[k].key) + strlen(v) + 2;
    }
    char *canon = malloc(len);
    if (!canon) return fl_err("cell: out of memory");
    size_t n = 0;
    for (int k = 0; k < FL_NSETTINGS; k++) {
        const char *v = fl_cell_get(c, FL_SETTINGS[k].key);
        if (v) n += (size_t)snprintf(canon + n, len - n, "%s=%s\n", FL_SETTINGS[k].key, v);
    }
    if (extra) n += (size_t)snprintf(canon + n, len - n, "%s", extra);
    canon[n] = 0;
    unsigned char h[32];
    fl_sha256(canon, n, h);
    free(canon);
    for (int i = 0; i < 6; i++) snprintf(c->id + 2 * i, 3, "%02x", h[i]);
    const char *parts[] = { fl_cell_get(c, "criterion"), fl_cell_get(c, "sparsity"), fl_cell_get(c, "reconstruct") };
    size_t m = 0;
    for (int i = 0; i < 3; i++)
        if (parts[i]) m += snprintf(c->name + m, sizeof c->name - m, "%s%.40s", m ? "_" : "", parts[i]);
    const char *seed = fl_cell_get(c, "seed");
    if (seed) snprintf(c->name + m, sizeof c->name - m, "_s%.10s", seed);
    /* a directory name: keep letters, digits, '.', '-', '_' */
    for (char *p = c->name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') *p = '-';
    return 0;
}

/* A list setting (eval) is one value every cell gets whole, not a dimension. */
static int is_list(const char *key) {
    const fl_setting *s = fl_setting_find(key);
    return s && s->type == FL_SET_LIST;
}

/* The comma-joined value of a list dimension lives in the dimension. */
static int join_lists(fl_grid *g, fl_dim *dims, int n) {
    for (int i = 0; i < n; i++) {
        fl_dim *d = &dims[i];
        free(d->joined);
        d->joined = NULL;
        if (!is_list(d->key)) continue;
        size_t len = 1;
        for (int j = 0; j < d->nvals; j++) len += strlen(d->vals[j]) + 1;
        d->joined = calloc(1, len);
        if (!d->joined) return fl_err("%s: out of memory", g->source);
        for (int j = 0; j < d->nvals; j++) { if (j) strcat(d->joined, ","); strcat(d->joined, d->vals[j]); }
    }
    return 0;
}

/* The dimensions of product p: the main grid's (p = 0), or its keys with
 * variant p-1's replacing them and the variant's others after. */
static int product_dims(const fl_grid *g, int p, const fl_dim **eff) {
    int n = 0;
    const fl_grid_variant *v = p ? &g->var[p - 1] : NULL;
    for (int i = 0; i < g->ndims; i++) {
        const fl_dim *o = v ? dims_get(v->dims, v->ndims, g->dims[i].key) : NULL;
        eff[n++] = o ? o : &g->dims[i];
    }
    for (int i = 0; v && i < v->ndims; i++)
        if (!fl_grid_get(g, v->dims[i].key)) {
            if (n == FL_GRID_MAX_DIMS) return fl_err("%s: [grid.%s]: too many keys with the grid's", g->source, v->name);
            eff[n++] = &v->dims[i];
        }
    return n;
}

static long long product_count(const fl_grid *g, const fl_dim *const *eff, int n, long long total) {
    long long c = 1;
    for (int i = 0; i < n; i++) {
        if (is_list(eff[i]->key)) continue;
        c *= eff[i]->nvals;
        if (total + c > FL_GRID_MAX_CELLS) {
            fl_err("%s: more than %d cells (key '%s' takes it past the limit)", g->source, FL_GRID_MAX_CELLS, eff[i]->key);
            return -1;
        }
    }
    return c;
}

typedef struct { const char *id; int i; } id_ref;
static int cmp_ref(const void *a, const void *b) {
    const id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* A cell that is a cell already (the same settings: a variant's, or a
 * sub-cell two cells share) runs once: the first. */
static int dedup(const fl_grid *g, fl_cell_spec *cs, long long *total) {
    id_ref *r = malloc(sizeof *r * (size_t)(*total ? *total : 1));
    char *dup = calloc((size_t)(*total ? *total : 1), 1);
    if (!r || !dup) { free(r); free(dup); return fl_err("%s: out of memory", g->source); }
    for (long long k = 0; k < *total; k++) r[k] = (id_ref){ cs[k].id, (int)k };
    qsort(r, (size_t)*total, sizeof *r, cmp_ref);
    for (long long k = 1; k < *total; k++)
        if (!strcmp(r[k].id, r[k - 1].id)) dup[r[k].i] = 1;
    long long w = 0;
    for (long long k = 0; k < *total; k++)
        if (!dup[k]) cs[w++] = cs[k];
    free(r);
    free(dup);
    *total = w;
    return 0;
}

/* ---- tuning -------------------------------------------------------------- */

const char *fl_role_name(int role) { return role == FL_ROLE_TUNE ? "tune" : role == FL_ROLE_DENSE ? "dense" : "final"; }

/* Does a cell with this reconstructor train anything a [tune] key could
 * change? none recovers nothing, matrix-ls solves in closed form. */
static int recon_trains(const char *spec) {
    fl_recon_inst in;
    if (fl_recon_open(spec ? spec : "none", &in) != 0) return 0;   /* unchecked grids: fl_grid_check refuses them */
    int t = in.r->recover && !(in.r->flags & FL_REC_SOLVES);
    fl_recon_close(&in);
    return t;
}

/* The [tune] section in canonical form (settings-table order), hashed into
 * a tuned final cell's id: other values to choose from, another final. */
static char *tune_canon(const fl_grid *g) {
    const fl_grid_tune *t = &g->tune;
    size_t len = 32 + strlen(fl_grid_select(g));
    for (int i = 0; i < t->ndims; i++) {
        len += strlen(t->dims[i].key) + 2;
        for (int j = 0; j < t->dims[i].nvals; j++) len += strlen(t->dims[i].vals[j]) + 1;
    }
    char *c = malloc(len);
    if (!c) return NULL;
    size_t n = (size_t)snprintf(c, len, "tune:select=%s\n", fl_grid_select(g));
    for (int k = 0; k < FL_NSETTINGS; k++) {
        const fl_dim *d = dims_get(t->dims, t->ndims, FL_SETTINGS[k].key);
        if (!d) continue;
        n += (size_t)snprintf(c + n, len - n, "%s=", d->key);
        for (int j = 0; j < d->nvals; j++) n += (size_t)snprintf(c + n, len - n, "%s%s", j ? "," : "", d->vals[j]);
        n += (size_t)snprintf(c + n, len - n, "\n");
    }
    return c;
}

/* f's keys with the tuned keys at combination k after them (the last
 * [tune] key varies fastest). */
static int with_combo(const fl_grid *g, const fl_cell_spec *f, long long k, fl_cell_spec *out) {
    const fl_grid_tune *t = &g->tune;
    *out = *f;
    if (f->nkeys + t->ndims + 2 > FL_GRID_MAX_DIMS) return fl_err("%s: [tune]: too many keys with the grid's", g->source);
    long long rest = k;
    for (int i = t->ndims - 1; i >= 0; i--) {
        out->key[f->nkeys + i] = t->dims[i].key;
        out->val[f->nkeys + i] = t->dims[i].vals[rest % t->dims[i].nvals];
        rest /= t->dims[i].nvals;
    }
    out->nkeys = f->nkeys + t->ndims;
    return 0;
}

int fl_cell_tune_sub(const fl_grid *g, const fl_cell_spec *f, int k, fl_cell_spec *out) {
    if (with_combo(g, f, k, out) != 0) return -1;
    const char *eval = fl_setting_find("eval")->key;
    int e = 0;
    while (e < out->nkeys && strcmp(out->key[e], eval)) e++;
    if (e == out->nkeys) out->key[out->nkeys++] = eval;
    out->val[e] = fl_grid_select(g);   /* the selection split only: never a test split */
    /* nor the activation drift: a measurement of the final run, which
     * chooses nothing (0.6 s of a tiny cell's 7) */
    const char *dw = fl_setting_find("drift-windows")->key;
    int q = 0;
    while (q < out->nkeys && strcmp(out->key[q], dw)) q++;
    if (q == out->nkeys) out->key[out->nkeys++] = dw;
    out->val[q] = "0";
    /* nor zero-shot accuracy, which is measured on test data too (the
     * corpus tasks are built from sotu-test) and is most of a tuning run's
     * evaluation time */
    for (int k = 0; k < out->nkeys;) {
        if (!strcmp(out->key[k], fl_setting_find("eval-task")->key) || !strcmp(out->key[k], fl_setting_find("eval-task-limit")->key)) {
            memmove(&out->key[k], &out->key[k + 1], sizeof out->key[0] * (size_t)(out->nkeys - k - 1));
            memmove(&out->val[k], &out->val[k + 1], sizeof out->val[0] * (size_t)(out->nkeys - k - 1));
            out->nkeys--;
        } else k++;
    }
    out->role = FL_ROLE_TUNE;
    out->ntune = 0;
    memcpy(out->final_id, f->id, sizeof f->id);
    out->combo = k;
    if (cell_identity(out, "role=tune\n") != 0) return -1;
    size_t m = strlen(out->name);
    snprintf(out->name + m, sizeof out->name - m, "_tune%d", k + 1);
    return 0;
}

int fl_cell_tune_chosen(const fl_grid *g, const fl_cell_spec *f, int k, fl_cell_spec *out) {
    return with_combo(g, f, k, out);   /* f's id, name and eval */
}

/* Each cell that trains: its sub-cells, then itself as the final cell, its
 * id hashed with the [tune] section; the others as they are. */
static int tune_expand(const fl_grid *g, fl_cell_spec **cs, long long *total) {
    const long long K = fl_tune_ncombos(g);
    char *canon = tune_canon(g);
    if (!canon) return fl_err("%s: out of memory", g->source);
    char *trains = malloc((size_t)(*total ? *total : 1));
    if (!trains) { free(canon); return fl_err("%s: out of memory", g->source); }
    long long n = 0;
    const char *last = NULL;
    int last_t = 0;
    for (long long i = 0; i < *total; i++) {
        const char *r = fl_cell_get(&(*cs)[i], "reconstruct");
        if (!r || r != last) { last_t = recon_trains(r); last = r; }
        trains[i] = (char)last_t;
        n += last_t ? K + 1 : 1;
        if (n > FL_GRID_MAX_CELLS) {
            free(canon);
            free(trains);
            return fl_err("%s: more than %d cells with the [tune] sub-cells", g->source, FL_GRID_MAX_CELLS);
        }
    }
    fl_cell_spec *out = calloc((size_t)(n ? n : 1), sizeof *out);
    int rc = out ? 0 : fl_err("%s: out of memory", g->source);
    long long at = 0;
    for (long long i = 0; i < *total && !rc; i++) {
        fl_cell_spec f = (*cs)[i];
        if (!trains[i]) { out[at++] = f; continue; }
        f.ntune = (int)K;
        rc = cell_identity(&f, canon);
        for (long long k = 0; k < K && !rc; k++) rc = fl_cell_tune_sub(g, &f, (int)k, &out[at++]);
        out[at++] = f;
    }
    free(canon);
    free(trains);
    if (rc) { free(out); return -1; }
    free(*cs);
    *cs = out;
    *total = at;
    return dedup(g, out, total);
}

int fl_grid_cells(fl_grid *g, fl_cell_spec **cells, int *n) {
    /* checked after every factor, so the sum of products cannot overflow on the way */
    const fl_dim *eff[FL_GRID_MAX_DIMS];
    long long total = 0;
    for (int p = 0; p <= g->nvar; p++) {
        int nd = product_dims(g, p, eff);
        long long c = nd < 0 ? -1 : product_count(g, eff, nd, total);
        if (c < 0) return -1;
        total += c;
    }
    if (join_lists(g, g->dims, g->ndims) != 0) return -1;
    for (int v = 0; v < g->nvar; v++)
        if (join_lists(g, g->var[v].dims, g->var[v].ndims) != 0) return -1;
    fl_cell_spec *cs = calloc((size_t)(total ? total : 1), sizeof *cs);
    if (!cs) return fl_err("%s: %lld cells: out of memory", g->source, total);
    long long at = 0;
    for (int p = 0; p <= g->nvar; p++) {
        const int nd = product_dims(g, p, eff);
        const long long c = product_count(g, eff, nd, 0);
        int idx[FL_GRID_MAX_DIMS] = { 0 };
        for (long long k = 0; k < c; k++) {
            fl_cell_spec *s = &cs[at++];
            for (int i = 0; i < nd; i++) {
                s->key[i] = eff[i]->key;
                s->val[i] = eff[i]->joined ? eff[i]->joined : eff[i]->vals[idx[i]];
            }
            s->nkeys = nd;
            if (cell_identity(s, NULL) != 0) { free(cs); return -1; }
            for (int i = nd - 1; i >= 0; i--) {   /* odometer: the last key fastest */
                if (eff[i]->joined) continue;
                if (++idx[i] < eff[i]->nvals) break;
                idx[i] = 0;
            }
        }
    }
    if (g->nvar && dedup(g, cs, &total) != 0) { free(cs); return -1; }
    if (g->tune.ndims && tune_expand(g, &cs, &total) != 0) { free(cs); return -1; }
    *cells = cs;
    *n = (int)total;
    return 0;
}

/* What a dense model's perplexity depends on: the model and how it is
 * evaluated (the backend and threads only in the last bits, but a reference
 * is measured as its cells are), its zero-shot tasks included. */
static const char *const DENSE_KEYS[] = { "model", "eval", "eval-windows", "backend", "threads", "eval-task",
                                           "eval-task-limit" };
#define N_DENSE_KEYS (int)(sizeof DENSE_KEYS / sizeof *DENSE_KEYS)

int fl_grid_dense_refs(const fl_cell_spec *cells, int n, fl_cell_spec **refs, int *nrefs) {
    *refs = NULL;
    *nrefs = 0;
    fl_cell_spec *out = calloc((size_t)(n ? n : 1), sizeof *out);
    if (!out) return fl_err("dense references: out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (cells[i].role == FL_ROLE_TUNE) continue;
        fl_cell_spec s = { 0 };
        for (int k = 0; k < N_DENSE_KEYS; k++) {
            const char *v = fl_cell_get(&cells[i], DENSE_KEYS[k]);
            if (!v) continue;
            s.key[s.nkeys] = fl_setting_find(DENSE_KEYS[k])->key;
            s.val[s.nkeys++] = v;
        }
        s.role = FL_ROLE_DENSE;
        if (cell_identity(&s, "role=dense\n") != 0) { free(out); return -1; }
        snprintf(s.name, sizeof s.name, "dense");
        int seen = 0;
        for (int j = 0; j < m && !seen; j++) seen = !strcmp(out[j].id, s.id);
        if (!seen) out[m++] = s;
    }
    *refs = out;
    *nrefs = m;
    return 0;
}

/* A comma, or a blank at either end (kept by a quote, trimmed without one),
 * needs quotes to read back the same. */
static int needs_quotes(const char *v) {
    size_t n = strlen(v);
    return strchr(v, ',') || (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])));
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
            int is_dim = d->nvals > 1 && !is_list(d->key);
            if (is_dim != !sec) continue;
            ok = ok && fprintf(f, "%s = ", d->key) > 0;
            for (int j = 0; j < d->nvals; j++)
                ok = ok && fprintf(f, needs_quotes(d->vals[j]) ? "%s\"%s\"" : "%s%s", j ? ", " : "", d->vals[j]) > 0;
            ok = ok && fputc('\n', f) != EOF;
        }
    }
    if (g->tune.ndims || g->tune.select) {
        ok = ok && fprintf(f, "[tune]\n") > 0;
        for (int i = 0; i < g->tune.ndims; i++) {
            const fl_dim *d = &g->tune.dims[i];
            ok = ok && fprintf(f, "%s = ", d->key) > 0;
            for (int j = 0; j < d->nvals; j++) ok = ok && fprintf(f, "%s%s", j ? ", " : "", d->vals[j]) > 0;
            ok = ok && fputc('\n', f) != EOF;
        }
        ok = ok && fprintf(f, "select = %s\n", fl_grid_select(g)) > 0;
    }
    for (int v = 0; v < g->nvar; v++) {
        ok = ok && fprintf(f, "[grid.%s]\n", g->var[v].name) > 0;
        for (int i = 0; i < g->var[v].ndims; i++) {
            const fl_dim *d = &g->var[v].dims[i];
            ok = ok && fprintf(f, "%s = ", d->key) > 0;
            for (int j = 0; j < d->nvals; j++)
                ok = ok && fprintf(f, needs_quotes(d->vals[j]) ? "%s\"%s\"" : "%s%s", j ? ", " : "", d->vals[j]) > 0;
            ok = ok && fputc('\n', f) != EOF;
        }
    }
    return fl_tmp_commit(f, tmp, path, ok);
}
