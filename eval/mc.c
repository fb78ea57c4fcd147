/* Multiple-choice log-likelihoods (see mc.h for the protocol). */
#include "mc.h"
#include "model/alloc.h"
#include "model/err.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int fl_py_len(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Python's str.isspace for the ASCII range (what rstrip removes). */
static int py_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }

int fl_mc_encode_pair(const fl_bpe *t, const char *ctx, const char *cont, int prefix, int32_t **ids, int *nctx,
                      int *ncont) {
    *ids = NULL;
    size_t lc = strlen(ctx), lk = strlen(cont), keep = lc;
    while (keep > 0 && py_space((unsigned char)ctx[keep - 1])) keep--;
    int32_t *whole = NULL, *ce = NULL;
    int64_t nw = 0, nc = 0;
    char *joined = malloc(lc + lk + 1);
    if (!joined) return fl_err("out of memory encoding a request");
    memcpy(joined, ctx, lc);
    memcpy(joined + lc, cont, lk + 1);
    /* the context loses its trailing whitespace, the continuation gains it:
     * ctx[:keep] and ctx[keep:] + cont; the whole string is unchanged */
    /* lm-eval's HFLM encodes a request's strings without special tokens
     * (tok_encode: add_special_tokens = False or add_bos_token, False by
     * default): no BOS a Llama tokenizer.json would put first */
    int rc = fl_bpe_encode_ex(t, joined, lc + lk, 0, &whole, &nw);
    if (rc == 0) rc = fl_bpe_encode_ex(t, ctx, keep, 0, &ce, &nc);
    free(joined);
    if (rc != 0) { free(whole); free(ce); return -1; }
    free(ce);
    int64_t k = nc > nw ? nw : nc;   /* continuation = whole[len(context_enc):] */
    if (nw - k < 1) { free(whole); return fl_err("a continuation encodes to no tokens"); }
    if (nw > (1 << 28)) { free(whole); return fl_err("a request of %lld tokens is too long", (long long)nw); }
    if (k == 0) {
        /* lm-eval: an empty context becomes the prefix token */
        if (prefix < 0) { free(whole); return fl_err("an empty context and no BOS/<|endoftext|> token to stand for it"); }
        int32_t *p = malloc(sizeof(int32_t) * (size_t)(nw + 1));
        if (!p) { free(whole); return fl_err("out of memory encoding a request"); }
        p[0] = prefix;
        memcpy(p + 1, whole, sizeof(int32_t) * (size_t)nw);
        free(whole);
        whole = p;
        k = 1;
        nw++;
    }
    *ids = whole;
    *nctx = (int)k;
    *ncont = (int)(nw - k);
    return 0;
}

typedef struct { int idx, len; } order_t;
static int by_len_desc(const void *a, const void *b) {
    const order_t *x = a, *y = b;
    if (x->len != y->len) return y->len - x->len;
    return x->idx - y->idx;
}

int fl_mc_loglik(fl_model *m, const fl_mc_req *r, int n, int window, int batch, int progress, double *ll,
                 uint8_t *greedy, int *cut) {
    if (window < 1 || window > m->cfg.max_pos)
        return fl_err("window %d: must be 1..%d (the model's context)", window, m->cfg.max_pos);
    if (batch <= 0) batch = 8;
    if (cut) *cut = 0;
    if (n <= 0) return 0;
    order_t *ord = malloc(sizeof(order_t) * (size_t)n);
    if (!ord) return fl_err("out of memory for %d requests", n);
    for (int i = 0; i < n; i++) {
        if (r[i].ncont < 1 || r[i].nctx < 1) { free(ord); return fl_err("request %d: an empty context or continuation", i); }
        int64_t L = (int64_t)r[i].nctx + r[i].ncont;
        if (cut && r[i].ncont > window) (*cut)++;
        ord[i].idx = i;
        ord[i].len = (int)(L - 1 > window ? window : L - 1);
    }
    qsort(ord, (size_t)n, sizeof *ord, by_len_desc);
    int T0 = ord[0].len;
    if (batch > n) batch = n;
    size_t cells = (size_t)batch * T0;
    /* the greedy check takes the forward's argmax per counted position:
     * no [B, T, V] logits (the forward computes the head only where a
     * target is counted, the continuation) */
    int32_t *in = fl_try_alloc(sizeof(int32_t) * cells), *tg = fl_try_alloc(sizeof(int32_t) * cells);
    float *nll = fl_try_alloc(sizeof(float) * cells);
    int32_t *am = greedy ? fl_try_alloc(sizeof(int32_t) * cells) : NULL;
    if (!in || !tg || !nll || (greedy && !am)) {
        fl_free(in); fl_free(tg); fl_free(nll); fl_free(am); free(ord);
        return fl_err("out of memory for a batch of %d requests of %d tokens", batch, T0);
    }
    double t0 = now(), last = t0;
    int rc = 0;
    for (int b0 = 0; b0 < n && rc == 0; b0 += batch) {
        int B = n - b0 < batch ? n - b0 : batch, T = ord[b0].len;
        for (int b = 0; b < B; b++) {
            const fl_mc_req *q = &r[ord[b0 + b].idx];
            int64_t L = (int64_t)q->nctx + q->ncont;
            int64_t s = L - 1 - window > 0 ? L - 1 - window : 0;   /* (ctx+cont)[-(window+1):] */
            int len = ord[b0 + b].len;
            for (int t = 0; t < T; t++) {
                int32_t *row = in + (size_t)b * T, *trow = tg + (size_t)b * T;
                if (t >= len) { row[t] = 0; trow[t] = -1; continue; }   /* right padding: causal, never seen */
                int64_t j = s + t;   /* input position t holds token j, predicts j+1 */
                row[t] = j < q->nctx ? q->ctx[j] : q->cont[j - q->nctx];
                trow[t] = j + 1 >= q->nctx ? q->cont[j + 1 - q->nctx] : -1;
            }
        }
        fl_fwd a = { .B = B, .T = T, .tokens = in, .targets = tg, .nll = nll, .argmax = am };
        if (fl_forward(m, fl_range_whole(m), &a, NULL) != 0) { rc = -1; break; }
        for (int b = 0; b < B; b++) {
            int i = ord[b0 + b].idx;
            double sum = 0;
            int ok = 1;
            for (int t = 0; t < T; t++) {
                int32_t y = tg[(size_t)b * T + t];
                if (y < 0) continue;
                sum -= nll[(size_t)b * T + t];
                if (greedy) ok &= am[(size_t)b * T + t] == y;
            }
            ll[i] = sum;
            if (greedy) greedy[i] = (uint8_t)ok;
        }
        double t = now();
        if (progress && (t - last > 1.0 || b0 + B == n)) {
            double el = t - t0, done = (double)(b0 + B) / n;
            fprintf(stderr, "eval: %d/%d requests, %.0f req/s, eta %.0fs\n", b0 + B, n, (b0 + B) / el, el / done - el);
            last = t;
        }
    }
    fl_free(in); fl_free(tg); fl_free(nll); fl_free(am); free(ord);
    return rc;
}

/* ---- tasks --------------------------------------------------------------- */

int fl_mc_task_add(fl_mc_task *t, int n, const char *const *ctx, const char *const *cont,
                   const char *const *choice_for_len, int label) {
    if (n < 1) return fl_err("an item without choices");
    if (label < 0 || label >= n) return fl_err("label %d out of range for %d choices", label, n);
    if ((t->n & (t->n - 1)) == 0) {   /* grow at powers of two */
        fl_mc_item *p = realloc(t->items, sizeof(fl_mc_item) * (size_t)(t->n ? 2 * t->n : 1));
        if (!p) return fl_err("out of memory for %d items", t->n + 1);
        t->items = p;
    }
    fl_mc_item *it = &t->items[t->n];
    memset(it, 0, sizeof *it);
    it->ctx = calloc((size_t)n, sizeof(char *));
    it->cont = calloc((size_t)n, sizeof(char *));
    it->chars = calloc((size_t)n, sizeof(int));
    it->n = n;
    it->label = label;
    t->n++;   /* counted now so fl_mc_task_free frees a half-built item */
    if (!it->ctx || !it->cont || !it->chars) return fl_err("out of memory for an item");
    for (int c = 0; c < n; c++) {
        it->ctx[c] = strdup(ctx[c]);
        it->cont[c] = strdup(cont[c]);
        if (!it->ctx[c] || !it->cont[c]) return fl_err("out of memory for an item");
        it->chars[c] = fl_py_len(choice_for_len[c]);
    }
    return 0;
}

void fl_mc_task_free(fl_mc_task *t) {
    for (int i = 0; i < t->n; i++) {
        fl_mc_item *it = &t->items[i];
        for (int c = 0; c < it->n; c++) {
            if (it->ctx) free(it->ctx[c]);
            if (it->cont) free(it->cont[c]);
        }
        free(it->ctx); free(it->cont); free(it->chars);
    }
    free(t->items);
    memset(t, 0, sizeof *t);
}

int fl_mc_argmax(const double *ll, const int *chars, int n, int norm) {
    int best = -1;
    double bv = 0;
    for (int c = 0; c < n; c++) {
        /* lm-eval divides by len(choice) with numpy: x/0 is +-inf (or nan
         * for 0/0, which argmax takes as the max); no task here has an
         * empty choice, the formats refuse them */
        double v = norm ? ll[c] / (double)chars[c] : ll[c];
        if (best < 0 || v > bv || (isnan(v) && !isnan(bv))) best = c, bv = v;
    }
    return best;
}

int fl_mc_eval(fl_model *m, const fl_bpe *t, const fl_mc_task *task, int limit, int window, int batch,
               int progress, fl_mc_result *res, double **ll_out, uint8_t **greedy_out) {
    int ni = limit > 0 && limit < task->n ? limit : task->n;
    double t0 = now();
    int64_t nr = 0;
    for (int i = 0; i < ni; i++) nr += task->items[i].n;
    if (nr > (1 << 30)) return fl_err("%s: too many requests", task->name);
    fl_mc_req *rq = calloc((size_t)nr + 1, sizeof *rq);
    int32_t **ids = calloc((size_t)nr + 1, sizeof *ids);
    double *ll = malloc(sizeof(double) * ((size_t)nr + 1));
    uint8_t *gr = task->kind == FL_MC_LOGLIK ? malloc((size_t)nr + 1) : NULL;
    int rc = (!rq || !ids || !ll || (task->kind == FL_MC_LOGLIK && !gr)) ? fl_err("out of memory for %s", task->name) : 0;
    int prefix = m->cfg.bos_id >= 0 ? m->cfg.bos_id : fl_bpe_eot(t);
    int64_t k = 0;
    for (int i = 0; i < ni && rc == 0; i++)
        for (int c = 0; c < task->items[i].n && rc == 0; c++, k++) {
            int nc, nk;
            if (fl_mc_encode_pair(t, task->items[i].ctx[c], task->items[i].cont[c], prefix, &ids[k], &nc, &nk) != 0) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s", fl_errmsg());
                rc = fl_err("%s item %d choice %d: %s", task->name, i, c, msg);
                break;
            }
            for (int j = 0; j < nc + nk; j++)
                if (ids[k][j] < 0 || ids[k][j] >= m->cfg.vocab) {
                    rc = fl_err("%s: token %d is outside the model's vocabulary of %d", task->name, ids[k][j], m->cfg.vocab);
                    break;
                }
            rq[k] = (fl_mc_req){ ids[k], nc, ids[k] + nc, nk };
        }
    int cut = 0;
    if (rc == 0 && fl_mc_loglik(m, rq, (int)nr, window, batch, progress, ll, gr, &cut) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        rc = fl_err("%s: %s", task->name, msg);
    }
    if (rc == 0) {
        double acc = 0, accn = 0, sll = 0;
        k = 0;
        for (int i = 0; i < ni; i++) {
            const fl_mc_item *it = &task->items[i];
            if (task->kind == FL_MC_LOGLIK) {
                acc += gr[k];
                sll += ll[k];
            } else {
                acc += fl_mc_argmax(ll + k, it->chars, it->n, 0) == it->label;
                accn += fl_mc_argmax(ll + k, it->chars, it->n, 1) == it->label;
            }
            k += it->n;
        }
        res->n = ni;
        res->acc = ni ? acc / ni : NAN;
        res->acc_norm = task->kind == FL_MC_CHOICE && task->norm && ni ? accn / ni : NAN;
        res->ppl = task->kind == FL_MC_LOGLIK && ni ? exp(-sll / ni) : NAN;
        res->seconds = now() - t0;
        res->cut = cut;
    }
    for (int64_t j = 0; j < nr && ids; j++) free(ids[j]);
    free(ids);
    free(rq);
    if (rc == 0 && ll_out) *ll_out = ll; else free(ll);
    if (rc == 0 && greedy_out) *greedy_out = gr; else free(gr);
    return rc;
}
