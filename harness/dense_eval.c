/* The dense model's perplexity on a study's evaluation sets; see
 * dense_eval.h. */
#include "dense_eval.h"
#include "cli.h"
#include "share.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/gemm.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct { char *model, *set; int windows; } triple;

static int same(const triple *a, const char *model, const char *set, int w) {
    return a->windows == w && !strcmp(a->model, model) && !strcmp(a->set, set);
}

/* One (model, set, windows): from the shared entry, or measured and stored. */
static int measure(const triple *q, const char *cache, int share, fl_ppl_result *pr, int *reused) {
    fl_model m;
    *reused = 0;
    if (fl_model_load(&m, q->model) != 0) return -1;
    int32_t *tok = NULL;
    int64_t n = 0;
    struct stat st;
    int rc = stat(q->set, &st) == 0 || strstr(q->set, ".bin") ? fl_tokfile_read(q->set, m.cfg.vocab, &tok, &n)
                                                               : fl_split_tokens(cache, q->set, q->model, m.cfg.vocab, share, &tok, &n);
    const int T = m.cfg.max_pos;   /* the cells' evaluation: the model's context (cell.c) */
    char hex[65] = "", path[4200];
    if (rc == 0 && share) {
        fl_share_key k;
        rc = fl_share_key_init(&k, "dense-eval");
        if (rc == 0) {
            snprintf(path, sizeof path, "%.4000s/config.json", q->model);
            fl_share_key_file(&k, "config.json", path);
            fl_share_key_add(&k, "weights", m.data, sizeof(float) * m.n_floats);
            fl_share_key_add(&k, "tokens", tok, sizeof(int32_t) * (size_t)n);
            fl_share_key_int(&k, "seqlen", T);
            fl_share_key_int(&k, "windows", q->windows);
            fl_share_key_int(&k, "threads", fl_threads());
            fl_share_key_str(&k, "backend", fl_gemm_backend_name());
            rc = fl_share_key_final(&k, hex);
        }
        if (rc != 0) {   /* computed, not shared */
            fprintf(stderr, "share: dense perplexity not shared (%s)\n", fl_errmsg());
            fl_err_clear();
            share = 0;
            rc = 0;
        }
        uint8_t *buf;
        const uint8_t *p;
        size_t len;
        if (share && fl_share_load(cache, "dense-eval", hex, &buf, &p, &len)) {
            if (len == 24) {
                memcpy(&pr->ppl, p, 8);
                memcpy(&pr->nll, p + 8, 8);
                memcpy(&pr->tokens, p + 16, 8);
                *reused = 1;
            } else {
                fl_share_path(cache, "dense-eval", hex, path, sizeof path);
                fprintf(stderr, "share: %s: wrong length, ignored: computed again\n", path);
            }
            free(buf);
        }
    }
    if (rc == 0 && !*reused) {
        rc = fl_eval_ppl(&m, tok, n, T, 0, q->windows, 4, 0, pr);   /* as cell.c evaluates */
        fl_share_writer w;
        if (rc == 0 && share && fl_share_begin(&w, cache, "dense-eval", hex) == 0) {
            int64_t t64 = pr->tokens;
            fl_share_write(&w, &pr->ppl, 8);
            fl_share_write(&w, &pr->nll, 8);
            fl_share_write(&w, &t64, 8);
            fl_share_commit(&w);
        }
    }
    free(tok);
    fl_model_free(&m);
    return rc;
}

int fl_study_dense_eval(const fl_cell_spec *cells, int ncells, const char *cache, int share, const char *json_path) {
    triple *q = NULL;
    int nq = 0;
    for (int i = 0; i < ncells; i++) {
        const char *model = fl_cell_get(&cells[i], "model"), *ev = fl_cell_get(&cells[i], "eval"),
                   *wv = fl_cell_get(&cells[i], "eval-windows");
        if (!model) continue;
        int w = wv ? atoi(wv) : 0;
        char buf[4096];
        if (ev) snprintf(buf, sizeof buf, "%s", ev);
        else {
            buf[0] = 0;
            for (int k = 0; FL_TEST_SPLITS[k]; k++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", k ? "," : "", FL_TEST_SPLITS[k]);
        }
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
            int seen = 0;
            for (int k = 0; k < nq && !seen; k++) seen = same(&q[k], model, t, w);
            if (seen) continue;
            q = realloc(q, sizeof *q * (size_t)(nq + 1));
            q[nq++] = (triple){ strdup(model), strdup(t), w };
        }
    }
    cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "dense");
    int rc = 0, nok = 0;
    for (int k = 0; k < nq; k++) {
        fl_ppl_result pr;
        int reused;
        if (measure(&q[k], cache, share, &pr, &reused) != 0) {
            /* a cell on this model or set fails with the same message: its row says it */
            printf("dense: %s on %s: not measured (%s)\n", q[k].model, q[k].set, fl_errmsg());
            fl_err_clear();
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", q[k].model);
        cJSON_AddStringToObject(o, "eval_set", q[k].set);
        cJSON_AddNumberToObject(o, "eval_windows", q[k].windows);
        cJSON_AddNumberToObject(o, "ppl", pr.ppl);
        cJSON_AddNumberToObject(o, "nll", pr.nll);
        cJSON_AddNumberToObject(o, "tokens", (double)pr.tokens);
        cJSON_AddItemToArray(arr, o);
        char w[32];
        snprintf(w, sizeof w, "%d", q[k].windows);
        printf("dense: %s on %s (%s windows): ppl %.4f%s\n", q[k].model, q[k].set, q[k].windows ? w : "all", pr.ppl,
               reused ? " (shared: measured before)" : "");
        nok++;
    }
    fflush(stdout);
    char *js = cJSON_Print(j);
    cJSON_Delete(j);
    if (nok) rc = fl_write_file_atomic(json_path, js, strlen(js));
    free(js);
    for (int k = 0; k < nq; k++) { free(q[k].model); free(q[k].set); }
    free(q);
    return rc;
}
