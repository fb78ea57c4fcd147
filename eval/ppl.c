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

int fl_eval_ppl(fl_model *m, const int32_t *tok, int64_t n, int seqlen, int max_windows,
                int batch, int progress, fl_ppl_result *out) {
    if (seqlen < 2) return fl_err("seqlen %d: need at least 2 tokens per window", seqlen);
    if (seqlen > m->cfg.max_pos)
        return fl_err("seqlen %d exceeds the model's context of %d positions", seqlen, m->cfg.max_pos);
    int64_t nw = n / seqlen;
    if (nw == 0) return fl_err("%lld tokens: fewer than one window of %d", (long long)n, seqlen);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    if (batch <= 0) batch = 4;
    int32_t *tg = fl_alloc(sizeof(int32_t) * (size_t)batch * seqlen);
    double sum = 0, t0 = now();
    int64_t cnt = 0;
    for (int64_t w0 = 0; w0 < nw; w0 += batch) {
        int B = (int)(nw - w0 < batch ? nw - w0 : batch);
        const int32_t *in = tok + w0 * seqlen;
        /* targets: the next token inside the same window; the last has none */
        for (int b = 0; b < B; b++)
            for (int t = 0; t < seqlen; t++)
                tg[b * seqlen + t] = t + 1 < seqlen ? in[(int64_t)b * seqlen + t + 1] : -1;
        fl_fwd a = { .B = B, .T = seqlen, .tokens = in, .targets = tg };
        if (fl_forward(m, fl_range_whole(m), &a, NULL) != 0) { fl_free(tg); return -1; }
        sum += a.loss * a.n_targets;
        cnt += a.n_targets;
        if (progress) {
            double el = now() - t0, done = (double)(w0 + B) / nw;
            fprintf(stderr, "eval: %lld/%lld windows, nll %.4f, %.0f tok/s, eta %.0fs\n",
                    (long long)(w0 + B), (long long)nw, sum / cnt, cnt / el, el / done - el);
        }
    }
    fl_free(tg);
    out->nll = sum / cnt;
    out->ppl = exp(out->nll);
    out->tokens = cnt;
    out->windows = (int)nw;
    return 0;
}
