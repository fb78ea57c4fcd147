/* The pipeline of one grid cell; see cell.h and design.md. */
#include "cell.h"
#include "cli.h"
#include "criteria/criterion.h"
#include "datasets/bpe.h"
#include "datasets/calib.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/model.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static size_t peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss;
}

static int file_exists(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

static int copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return fl_err("%s: cannot open", src);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp", dst);
    FILE *out = fopen(tmp, "wb");
    if (!out) { fclose(in); return fl_err("%s: cannot write", tmp); }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ok &= fwrite(buf, 1, n, out) == n;
    fclose(in);
    ok &= fclose(out) == 0;
    if (!ok || rename(tmp, dst) != 0) return fl_err("%s: write failed", dst);
    return 0;
}

/* ---- statistics collection through forward hooks ------------------------ */

typedef struct { fl_stats st[4]; } block_stats;   /* one per fl_site */

static void collect_hook(void *ctx, int layer, fl_site site, const float *x, int N, int cols) {
    (void)layer; (void)cols;
    block_stats *bs = ctx;
    fl_stats_add(&bs->st[site], x, N);
}

/* Which site feeds each linear of a block (order of fl_layer_linears). */
static fl_site site_of(const char *short_name) {
    if (!strcmp(short_name, "o")) return FL_SITE_O;
    if (!strcmp(short_name, "fc2") || !strcmp(short_name, "down")) return FL_SITE_MLP_OUT;
    if (!strcmp(short_name, "fc1") || !strcmp(short_name, "gate") || !strcmp(short_name, "up")) return FL_SITE_MLP_IN;
    return FL_SITE_QKV;
}

/* ||X D^T||^2 / ||X W^T||^2 with D = W - W', from the Gram matrix G = X^T X:
 * tr(D G D^T) / tr(W G W^T). */
static double layer_error(const float *W, const float *Wp, int rows, int cols, const float *G) {
    float *D = fl_allocf((size_t)rows * cols), *DG = fl_allocf((size_t)rows * cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) D[i] = W[i] - Wp[i];
    double num = 0, den = 0;
    fl_gemm(0, 0, rows, cols, cols, 1.0f, D, cols, G, cols, 0.0f, DG, cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) num += (double)DG[i] * D[i];
    fl_gemm(0, 0, rows, cols, cols, 1.0f, W, cols, G, cols, 0.0f, DG, cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) den += (double)DG[i] * W[i];
    fl_free(D); fl_free(DG);
    return den > 0 ? num / den : 0.0;
}

/* Runs block l of m over every calibration window of the stream X
 * [nwin*T, d], in batches; with a hook, collects; with advance, writes the
 * block's output back into X. */
static int block_pass(fl_model *m, int l, float *X, int nwin, int T, int batch, fl_hook hook, void *ctx, int advance) {
    const int d = m->cfg.d;
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        float *x = X + (int64_t)w0 * T * d;
        fl_fwd a = { .B = B, .T = T, .x_in = x, .x_out = advance ? x : NULL, .hook = hook, .hook_ctx = ctx };
        if (fl_forward(m, fl_range_blocks(l, l), &a, NULL) != 0) return -1;
    }
    return 0;
}

/* ---- evaluation sets ---------------------------------------------------- */

static int eval_tokens(const fl_cell_cfg *c, const char *spec, int vocab, int32_t **tok, int64_t *n) {
    if (file_exists(spec) || strstr(spec, ".bin")) return fl_tokfile_read(spec, vocab, tok, n);
    return fl_split_tokens(c->cache, spec, c->model_dir, vocab, tok, n);
}

/* ---- the cell ----------------------------------------------------------- */

int fl_cell_run(const fl_cell_cfg *c, fl_cell_result *r) {
    memset(r, 0, sizeof *r);
    const fl_criterion *crit;
    const char *carg;
    if (fl_criterion_find(c->criterion, &crit, &carg) != 0) return -1;
    fl_pattern pat;
    if (fl_pattern_parse(c->sparsity, c->pattern, &pat) != 0) return -1;
    if (c->reconstruct && strcmp(c->reconstruct, "none") != 0)
        return fl_err("reconstructor '%s' is not available yet (valid: none)", c->reconstruct);
    if (c->calib_samples < 1) return fl_err("--calib-samples must be at least 1");
    const int batch = c->batch > 0 ? c->batch : 8;
    double t0 = now_s();
    fl_flops_reset();

    /* 1. model and calibration windows */
    fl_mem_phase("calibration");
    fl_model m;
    if (fl_model_load(&m, c->model_dir) != 0) return -1;
    const int T = c->seqlen > 0 ? c->seqlen : m.cfg.max_pos, d = m.cfg.d, L = m.cfg.n_layer;
    if (T > m.cfg.max_pos) {
        fl_model_free(&m);
        return fl_err("%s/config.json: --seqlen %d exceeds the model's context of %d positions", c->model_dir, T, m.cfg.max_pos);
    }
    for (int l = 0; l < L; l++) {   /* every linear of every block is pruned: fail early on a bad N:M */
        fl_param *w[7];
        const char *nm[7];
        int k = fl_layer_linears(&m, l, w, NULL, nm);
        for (int i = 0; i < k; i++)
            if (fl_pattern_check(&pat, w[i]->rows, w[i]->cols, w[i]->name) != 0) { fl_model_free(&m); return -1; }
    }
    fl_calib cal = { 0 };
    int rc;
    if (c->calib_file) rc = fl_calib_sample_file(c->calib_file, m.cfg.vocab, c->calib_samples, T, c->seed, &cal);
    else {
        fl_split sp;
        fl_bpe *tok;
        const char *sname = c->calib_split ? c->calib_split : "sotu-train";
        if (fl_split_load(c->cache, sname, &sp) != 0) { fl_model_free(&m); return -1; }
        if (fl_bpe_load(&tok, c->model_dir) != 0) { fl_split_free(&sp); fl_model_free(&m); return -1; }
        rc = fl_calib_sample_split(&sp, tok, c->calib_samples, T, c->seed, &cal);
        fl_bpe_free(tok);
        fl_split_free(&sp);
    }
    if (rc != 0) { fl_model_free(&m); return -1; }
    char path[4200];
    if (mkdir(c->out_dir, 0755) != 0 && errno != EEXIST) { fl_calib_free(&cal); fl_model_free(&m); return fl_err("%s: cannot create directory", c->out_dir); }
    snprintf(path, sizeof path, "%.4000s/calib.bin", c->out_dir);
    if (fl_calib_write(&cal, path) != 0) { fl_calib_free(&cal); fl_model_free(&m); return -1; }
    const int nwin = cal.n;
    float *X = fl_allocf((size_t)nwin * T * d);    /* the sparse stream */
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        fl_fwd a = { .B = B, .T = T, .tokens = cal.tokens + (int64_t)w0 * T, .x_out = X + (int64_t)w0 * T * d };
        if (fl_forward(&m, (fl_range){ 0, 0, 1, 0 }, &a, NULL) != 0) { fl_free(X); fl_calib_free(&cal); fl_model_free(&m); return -1; }
    }
    fl_calib_free(&cal);
    r->secs_calib = now_s() - t0;

    /* 2-4. block by block: statistics on the sparse stream, prune, advance */
    fl_mem_phase("pruning");
    r->lin = calloc((size_t)L * 7, sizeof(fl_linear_report));
    int64_t pruned_total = 0, weights_total = 0;
    for (int l = 0; l < L && rc == 0; l++) {
        double ts = now_s();
        block_stats bs;
        fl_stats_kind need = fl_criterion_stats(crit, carg);
        (void)need;   /* the Gram is always collected: the layer error needs it */
        int widths[4] = { d, m.cfg.n_head * m.cfg.head_dim, d, m.cfg.d_ff };
        for (int s = 0; s < 4; s++) fl_stats_init(&bs.st[s], FL_STATS_GRAM, widths[s]);
        rc = block_pass(&m, l, X, nwin, T, batch, collect_hook, &bs, 0);
        r->secs_stats += now_s() - ts;
        ts = now_s();
        fl_param *w[7];
        const char *nm[7];
        int k = fl_layer_linears(&m, l, w, NULL, nm);
        for (int i = 0; i < k && rc == 0; i++) {
            fl_param *p = w[i];
            float *W0 = fl_allocf((size_t)p->n);
            memcpy(W0, p->w, sizeof(float) * p->n);
            uint8_t *mask = fl_alloc((size_t)p->n);
            fl_prune_job job = { .arg = carg, .W = p->w, .rows = p->rows, .cols = p->cols,
                                 .st = &bs.st[site_of(nm[i])], .pat = pat, .mask = mask,
                                 .seed = c->seed * 1000003ull + (uint64_t)(l * 8 + i) };
            rc = fl_criterion_run(crit, &job);
            if (rc == 0) rc = fl_param_set_mask(p, mask);
            if (rc == 0) {
                fl_linear_report *lr = &r->lin[r->n_linears++];
                snprintf(lr->name, sizeof lr->name, "%s", p->name);
                lr->sparsity = fl_mask_sparsity(mask, p->n);
                lr->err = layer_error(W0, p->w, p->rows, p->cols, bs.st[site_of(nm[i])].gram);
                pruned_total += (int64_t)llround(lr->sparsity * p->n);
                weights_total += p->n;
            }
            fl_free(W0);
            fl_free(mask);
        }
        for (int s = 0; s < 4; s++) fl_stats_free(&bs.st[s]);
        if (rc == 0) rc = block_pass(&m, l, X, nwin, T, batch, NULL, NULL, 1);
        r->secs_prune += now_s() - ts;
        if (c->progress) {
            fprintf(stderr, "prune: block %d/%d done (%s, %.1fs)\n", l + 1, L, crit->name, now_s() - t0);
        }
    }
    fl_free(X);
    r->peak_prune_bytes = fl_mem_phase_peak("pruning");
    if (rc != 0) { fl_model_free(&m); return -1; }
    r->sparsity = weights_total ? (double)pruned_total / weights_total : 0;

    /* 5. save the pruned model with its tokenizer */
    if (fl_model_save(&m, c->out_dir) != 0) { fl_model_free(&m); return -1; }
    const char *tokfiles[] = { "vocab.json", "merges.txt" };
    for (int i = 0; i < 2; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof src, "%.4000s/%s", c->model_dir, tokfiles[i]);
        snprintf(dst, sizeof dst, "%.4000s/%s", c->out_dir, tokfiles[i]);
        if (file_exists(src) && copy_file(src, dst) != 0) { fl_model_free(&m); return -1; }
    }

    /* 6. evaluate */
    fl_mem_phase("evaluation");
    double te = now_s();
    const char *const *evals = c->n_evals ? c->evals : FL_TEST_SPLITS;
    int ne = c->n_evals;
    if (!ne) while (FL_TEST_SPLITS[ne]) ne++;
    for (int i = 0; i < ne && i < FL_MAX_EVALS; i++) {
        int32_t *tok;
        int64_t n;
        if (eval_tokens(c, evals[i], m.cfg.vocab, &tok, &n) != 0) { fl_model_free(&m); return -1; }
        fl_ppl_result pr;
        int es = c->eval_seqlen > 0 ? c->eval_seqlen : m.cfg.max_pos;
        rc = fl_eval_ppl(&m, tok, n, es, 0, c->eval_max_windows, 4, 0, &pr);
        free(tok);
        if (rc != 0) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", fl_errmsg());
            fl_model_free(&m);
            return fl_err("%s: %s", evals[i], msg);
        }
        snprintf(r->eval_name[i], sizeof r->eval_name[i], "%s", evals[i]);
        r->ppl[i] = pr.ppl; r->nll[i] = pr.nll; r->eval_tokens[i] = pr.tokens;
        r->n_evals = i + 1;
    }
    r->secs_eval = now_s() - te;
    r->peak_eval_bytes = fl_mem_phase_peak("evaluation");
    r->peak_rss_kb = peak_rss_kb();
    r->flops = fl_flops();

    /* provenance */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "pruned");
    cJSON_AddStringToObject(j, "source_model", c->model_dir);
    cJSON *cell = cJSON_AddObjectToObject(j, "cell");
    cJSON_AddStringToObject(cell, "criterion", c->criterion);
    cJSON_AddStringToObject(cell, "sparsity", c->sparsity);
    cJSON_AddStringToObject(cell, "pattern", pat.kind == FL_PAT_NM ? "nm" : pat.kind == FL_PAT_MATRIX ? "matrix" : "row");
    cJSON_AddStringToObject(cell, "reconstruct", c->reconstruct ? c->reconstruct : "none");
    cJSON_AddStringToObject(cell, "calib", c->calib_file ? c->calib_file : c->calib_split ? c->calib_split : "sotu-train");
    cJSON_AddNumberToObject(cell, "calib_samples", c->calib_samples);
    cJSON_AddNumberToObject(cell, "seqlen", T);
    cJSON_AddNumberToObject(cell, "seed", (double)c->seed);
    cJSON_AddNumberToObject(j, "sparsity", r->sparsity);
    cJSON *lins = cJSON_AddArrayToObject(j, "linears");
    for (int i = 0; i < r->n_linears; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->lin[i].name);
        cJSON_AddNumberToObject(o, "sparsity", r->lin[i].sparsity);
        cJSON_AddNumberToObject(o, "error", r->lin[i].err);
        cJSON_AddItemToArray(lins, o);
    }
    cJSON *ev = cJSON_AddObjectToObject(j, "perplexity");
    for (int i = 0; i < r->n_evals; i++) cJSON_AddNumberToObject(ev, r->eval_name[i], r->ppl[i]);
    cJSON *pf = cJSON_AddObjectToObject(j, "profile");
    cJSON_AddNumberToObject(pf, "seconds_calibration", r->secs_calib);
    cJSON_AddNumberToObject(pf, "seconds_statistics", r->secs_stats);
    cJSON_AddNumberToObject(pf, "seconds_pruning", r->secs_prune);
    cJSON_AddNumberToObject(pf, "seconds_evaluation", r->secs_eval);
    cJSON_AddNumberToObject(pf, "peak_bytes_pruning", (double)r->peak_prune_bytes);
    cJSON_AddNumberToObject(pf, "peak_bytes_evaluation", (double)r->peak_eval_bytes);
    cJSON_AddNumberToObject(pf, "peak_rss_kb", (double)r->peak_rss_kb);
    cJSON_AddNumberToObject(pf, "flops", (double)r->flops);
    cJSON_AddNumberToObject(pf, "threads", fl_threads());
    cJSON_AddStringToObject(pf, "backend", fl_gemm_backend_name());
    char *js = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%.4000s/freelunch.json", c->out_dir);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    rc = f ? 0 : fl_err("%s: cannot write", tmp);
    if (f) {
        int ok = fputs(js, f) >= 0;
        ok &= fclose(f) == 0;
        if (!ok || rename(tmp, path) != 0) rc = fl_err("%s: write failed", path);
    }
    free(js);
    fl_model_free(&m);
    return rc;
}

void fl_cell_result_free(fl_cell_result *r) {
    free(r->lin);
    r->lin = NULL;
}
