/* lambada-sotu and cloze-sotu (see mc_corpus.h). The sentence splitter is
 * written here: a few rules over one known corpus, documented in the
 * header, are easier to keep stable (and so the task files deterministic)
 * than a general segmenter, of which no Debian package offers a C one. */
#include "mc_corpus.h"
#include "datasets/corpus.h"
#include "eval/mc_tasks.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/rng.h"
#include "plots/sbuf.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const fl_corpus_task FL_CORPUS_TASKS[] = { { "lambada-sotu", "lambada" }, { "cloze-sotu", "mc" } };
const int FL_CORPUS_NTASKS = 2;

const fl_corpus_task *fl_corpus_task_find(const char *name) {
    for (int i = 0; i < FL_CORPUS_NTASKS; i++) if (!strcmp(FL_CORPUS_TASKS[i].name, name)) return &FL_CORPUS_TASKS[i];
    return NULL;
}

typedef struct { const char *s; size_t n; } span;
typedef struct { span *v; int n, cap; } spans;

static int push(spans *a, const char *s, size_t n) {
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 256;
        span *p = realloc(a->v, sizeof(span) * (size_t)cap);
        if (!p) return fl_err("out of memory splitting sentences");
        a->v = p, a->cap = cap;
    }
    a->v[a->n++] = (span){ s, n };
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }

/* The word ending just before s[e] ('.') is a title or an initial. */
static int abbreviation(const char *s, size_t b, size_t e) {
    static const char *const T[] = { "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Gen", "Sen", "Rep", "Gov", "Lt", "Col",
                                     "Sgt", "Capt", "Adm", "Prof", "Rev", "No", "vs", "etc", "Inc", "Co", "Corp", "Ft" };
    size_t w = e;
    while (w > b && !is_blank(s[w - 1]) && s[w - 1] != '.') w--;
    size_t len = e - w;
    if (len == 1 && is_upper(s[w])) return 1;   /* initials: U.S., John F. Kennedy */
    for (size_t i = 0; i < sizeof T / sizeof *T; i++)
        if (strlen(T[i]) == len && !strncmp(s + w, T[i], len)) return 1;
    return 0;
}

static int split_sentences(const char *s, size_t n, spans *out) {
    size_t b = 0;
    while (b < n && is_blank(s[b])) b++;
    for (size_t i = b; i < n; i++) {
        char c = s[i];
        if (c != '.' && c != '?' && c != '!') continue;
        size_t e = i + 1;
        while (e < n && (s[e] == '"' || s[e] == '\'' || s[e] == ')' || s[e] == ']')) e++;
        if (e >= n) break;
        if (!is_blank(s[e])) continue;
        size_t nx = e;
        while (nx < n && is_blank(s[nx])) nx++;
        if (nx >= n) break;
        char d = s[nx];
        if (!(is_upper(d) || (d >= '0' && d <= '9') || d == '"' || d == '\'')) continue;
        if (c == '.' && abbreviation(s, b, i)) continue;
        if (push(out, s + b, e - b) != 0) return -1;
        b = nx;
        i = nx - 1;
    }
    size_t e = n;
    while (e > b && is_blank(s[e - 1])) e--;
    if (e > b && push(out, s + b, e - b) != 0) return -1;
    return 0;
}

/* The sentences [a, a+k) of one address joined with single spaces. */
static void join(fl_sbuf *b, const spans *s, int a, int k) {
    for (int i = a; i < a + k; i++) {
        if (i > a) fl_sb_puts(b, " ");
        fl_sb_putn(b, s->v[i].s, s->v[i].n);
    }
}

static int alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (unsigned char)c >= 0x80; }

static void add_line(fl_sbuf *out, cJSON *o) {
    char *js = cJSON_PrintUnformatted(o);
    if (!js) { fprintf(stderr, "freelunch: out of memory\n"); abort(); }
    fl_sb_puts(out, js);
    fl_sb_puts(out, "\n");
    free(js);
    cJSON_Delete(o);
}

int fl_corpus_tasks_build(const char *cache, int *items) {
    fl_split sp;
    if (fl_split_load(cache, "sotu-test", &sp) != 0) return -1;
    spans *S = calloc((size_t)sp.n, sizeof *S);
    int rc = S ? 0 : fl_err("out of memory");
    for (int d = 0; d < sp.n && rc == 0; d++) rc = split_sentences(sp.docs[d].text, sp.docs[d].len, &S[d]);
    fl_sbuf lam = { 0 }, clo = { 0 };
    int nl = 0, nc = 0;
    uint64_t rng = FL_CORPUS_SEED;
    const int K = FL_CORPUS_PASSAGE;
    for (int d = 0; d < sp.n && rc == 0; d++) {
        for (int a = 0; a + K <= S[d].n; a += K) {
            fl_sbuf p = { 0 };
            join(&p, &S[d], a, K);
            /* lambada: the passage without its final punctuation, so its
             * last space-separated word is a word */
            size_t e = p.len;
            while (e > 0 && !alnum(p.s[e - 1])) e--;
            char *txt = strndup(p.s, e);
            cJSON *o = cJSON_CreateObject();
            if (!txt || !o || !cJSON_AddStringToObject(o, "text", txt)) { fprintf(stderr, "freelunch: out of memory\n"); abort(); }
            free(txt);
            add_line(&lam, o);
            nl++;
            if (a + K < S[d].n && sp.n > 1) {
                /* cloze: the true next sentence at a drawn position among
                 * three sentences of other addresses */
                int label = (int)fl_rand_below(&rng, 4);
                cJSON *ch = cJSON_CreateArray();
                for (int c = 0; c < 4; c++) {
                    span v;
                    if (c == label) v = S[d].v[a + K];
                    else {
                        int od;
                        do od = (int)fl_rand_below(&rng, (uint64_t)sp.n); while (od == d || S[od].n == 0);
                        v = S[od].v[fl_rand_below(&rng, (uint64_t)S[od].n)];
                    }
                    char *t = strndup(v.s, v.n);
                    if (!t) { fprintf(stderr, "freelunch: out of memory\n"); abort(); }
                    cJSON_AddItemToArray(ch, cJSON_CreateString(t));
                    free(t);
                }
                cJSON *q = cJSON_CreateObject();
                cJSON_AddStringToObject(q, "context", fl_sb_str(&p));
                cJSON_AddItemToObject(q, "choices", ch);
                cJSON_AddNumberToObject(q, "label", label);
                cJSON_AddStringToObject(q, "address", sp.docs[d].name);
                add_line(&clo, q);
                nc++;
            }
            fl_sb_free(&p);
        }
    }
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%.4000s/tasks", cache);
    if (rc == 0) rc = fl_mkdir_p(dir);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/lambada-sotu.jsonl", dir);
        rc = fl_write_file_atomic(path, fl_sb_str(&lam), lam.len);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/cloze-sotu.jsonl", dir);
        rc = fl_write_file_atomic(path, fl_sb_str(&clo), clo.len);
    }
    if (rc == 0 && items) items[0] = nl, items[1] = nc;
    for (int d = 0; d < sp.n && S; d++) free(S[d].v);
    free(S);
    fl_sb_free(&lam);
    fl_sb_free(&clo);
    fl_split_free(&sp);
    return rc;
}

int fl_corpus_task_path(const char *cache, const fl_corpus_task *t, char *path, size_t n) {
    snprintf(path, n, "%.4000s/tasks/%s.jsonl", cache, t->name);
    struct stat st;
    if (stat(path, &st) == 0) return 0;
    return fl_corpus_tasks_build(cache, NULL);
}

int fl_mc_spec_check(const char *spec) {
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    char name[64];
    if (nl == 0 || nl >= sizeof name) return fl_err("--task '%s': expected NAME:FILE or a corpus task name", spec);
    memcpy(name, spec, nl);
    name[nl] = 0;
    if (!colon) {
        if (fl_corpus_task_find(name)) return 0;
        return fl_err("--task '%s': not a corpus task (lambada-sotu, cloze-sotu); a dataset needs NAME:FILE", spec);
    }
    if (!fl_mc_format_find(name)) return fl_err("--task '%s': unknown format '%s' (see freelunch eval --help)", spec, name);
    if (!colon[1]) return fl_err("--task '%s': no file after the ':'", spec);
    return 0;
}

int fl_mc_task_open(const char *spec, const char *cache, int limit, fl_mc_task *t) {
    if (fl_mc_spec_check(spec) != 0) return -1;
    const char *colon = strchr(spec, ':');
    if (colon) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - spec), spec);
        return fl_mc_task_load(fl_mc_format_find(name), colon + 1, limit, t);
    }
    const fl_corpus_task *ct = fl_corpus_task_find(spec);
    char path[4400];
    if (fl_corpus_task_path(cache, ct, path, sizeof path) != 0) return -1;
    if (fl_mc_task_load(fl_mc_format_find(ct->format), path, limit, t) != 0) return -1;
    snprintf(t->name, sizeof t->name, "%s", ct->name);
    return 0;
}

