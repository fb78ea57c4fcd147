#include "ppl.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* A streamed model (checkpoint.h), layer by layer: every window's hidden
 * state [nw*T, d] is kept and moved through one block at a time, so each
 * block is converted once and only one is held. Each window meets exactly
 * the operations of a whole-model forward, in the same batches, so the
 * NLL is the same bit for bit (tests/test_stream.c). */
static int ppl_streamed(fl_model *m, const int32_t *in, const int32_t *tg, int64_t nw, int T, int batch, int progress,
                        double *sum, int64_t *cnt) {
    const int d = m->cfg.d, L = m->cfg.n_layer;
    float *X = fl_try_allocf((size_t)nw * T * d);
    if (!X) return fl_err("out of memory for the hidden states of %lld windows of %d tokens", (long long)nw, T);
    int rc = 0;
    double t0 = now();
    for (int l = -1; l <= L && rc == 0; l++) {
        /* l = -1: the embedding; 0..L-1: block l; L: the head */
        if (l >= 0 && l < L) rc = fl_model_hold(m, l, l + 1);
        else if (l == L) rc = fl_model_hold(m, 0, 0);
        for (int64_t w0 = 0; w0 < nw && rc == 0; w0 += batch) {
            const int B = (int)(nw - w0 < batch ? nw - w0 : batch);
            float *x = X + w0 * T * d;
            fl_fwd a = { .B = B, .T = T };
            fl_range r;
            if (l < 0) { r = (fl_range){ 0, 0, 1, 0 }; a.tokens = in + w0 * T; a.x_out = x; }
            else if (l < L) { r = fl_range_blocks(l, l); a.x_in = x; a.x_out = x; }
            else { r = (fl_range){ 2 * L, 2 * L, 0, 1 }; a.x_in = x; a.targets = tg + w0 * T; }
            rc = fl_forward(m, r, &a, NULL);
            if (rc == 0 && l == L) { *sum += a.loss * a.n_targets; *cnt += a.n_targets; }
        }
        if (progress && l >= 0 && l < L)
            fprintf(stderr, "eval (streamed): block %d/%d, %.0fs\n", l + 1, L, now() - t0);
    }
    fl_free(X);
    return rc;
}

int fl_eval_ppl(fl_model *m, const int32_t *tok, int64_t n, int seqlen, int stride, int max_windows,
                int batch, int progress, fl_ppl_result *out) {
    if (seqlen < 2) return fl_err("seqlen %d: need at least 2 tokens per window", seqlen);
    if (seqlen > m->cfg.max_pos)
        return fl_err("seqlen %d exceeds the model's context of %d positions", seqlen, m->cfg.max_pos);
    if (stride <= 0 || stride > seqlen) stride = seqlen;
    if (n < seqlen) return fl_err("%lld tokens: fewer than one window of %d", (long long)n, seqlen);
    int64_t nw = (n - seqlen) / stride + 1;
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    if (batch <= 0) batch = 4;
    /* the buffers follow the data: no batch is larger than the windows there are */
    if (batch > nw) batch = (int)nw;
    /* streamed: every window's tokens at once (they go through the model
     * a block at a time) */
    const int64_t nb = m->stream ? nw : batch;
    int32_t *tg = fl_try_alloc(sizeof(int32_t) * (size_t)nb * seqlen);
    int32_t *in = fl_try_alloc(sizeof(int32_t) * (size_t)nb * seqlen);
    if (!tg || !in) {
        fl_free(tg);
        fl_free(in);
        return fl_err("out of memory for a batch of %lld windows of %d tokens", (long long)nb, seqlen);
    }
    double sum = 0, t0 = now(), last = t0;
    int64_t cnt = 0;
    for (int64_t w0 = 0; w0 < nw; w0 += batch) {
        int B = (int)(nw - w0 < batch ? nw - w0 : batch);
        int32_t *bin = m->stream ? in + w0 * seqlen : in, *btg = m->stream ? tg + w0 * seqlen : tg;
        for (int b = 0; b < B; b++) {
            int64_t start = (w0 + b) * stride;
            /* window 0 predicts tokens 1..seqlen-1; a later window only the
             * last `stride` tokens, which no earlier window predicted */
            int first = (w0 + b) == 0 ? 1 : seqlen - stride;
            memcpy(bin + (int64_t)b * seqlen, tok + start, sizeof(int32_t) * seqlen);
            for (int t = 0; t < seqlen; t++)
                btg[b * seqlen + t] = (t + 1 >= first && t + 1 < seqlen) ? tok[start + t + 1] : -1;
        }
        if (m->stream) continue;   /* all windows first, then ppl_streamed */
        fl_fwd a = { .B = B, .T = seqlen, .tokens = in, .targets = tg };
        if (fl_forward(m, fl_range_whole(m), &a, NULL) != 0) { fl_free(tg); fl_free(in); return -1; }
        sum += a.loss * a.n_targets;
        cnt += a.n_targets;
        double t = now();
        if (progress && (t - last > 1.0 || w0 + B == nw)) {
            double el = t - t0, done = (double)(w0 + B) / nw;
            fprintf(stderr, "eval: %lld/%lld windows, nll %.4f, %.0f tok/s, eta %.0fs\n",
                    (long long)(w0 + B), (long long)nw, sum / cnt, cnt / el, el / done - el);
            last = t;
        }
    }
    if (m->stream && ppl_streamed(m, in, tg, nw, seqlen, batch, progress, &sum, &cnt) != 0) {
        fl_free(in);
        fl_free(tg);
        return -1;
    }
    fl_free(in);
    fl_free(tg);
    out->nll = sum / cnt;
    out->ppl = exp(out->nll);
    out->tokens = cnt;
    out->windows = (int)nw;
    return 0;
}
