#include "ppl.h"
#include "model/alloc.h"
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
    int32_t *tg = fl_try_alloc(sizeof(int32_t) * (size_t)batch * seqlen);
    int32_t *in = fl_try_alloc(sizeof(int32_t) * (size_t)batch * seqlen);
    if (!tg || !in) {
        fl_free(tg);
        fl_free(in);
        return fl_err("out of memory for a batch of %d windows of %d tokens", batch, seqlen);
    }
    double sum = 0, t0 = now(), last = t0;
    int64_t cnt = 0;
    for (int64_t w0 = 0; w0 < nw; w0 += batch) {
        int B = (int)(nw - w0 < batch ? nw - w0 : batch);
        for (int b = 0; b < B; b++) {
            int64_t start = (w0 + b) * stride;
            /* window 0 predicts tokens 1..seqlen-1; a later window only the
             * last `stride` tokens, which no earlier window predicted */
            int first = (w0 + b) == 0 ? 1 : seqlen - stride;
            memcpy(in + (int64_t)b * seqlen, tok + start, sizeof(int32_t) * seqlen);
            for (int t = 0; t < seqlen; t++)
                tg[b * seqlen + t] = (t + 1 >= first && t + 1 < seqlen) ? tok[start + t + 1] : -1;
        }
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
    fl_free(in);
    fl_free(tg);
    out->nll = sum / cnt;
    out->ppl = exp(out->nll);
    out->tokens = cnt;
    out->windows = (int)nw;
    return 0;
}
