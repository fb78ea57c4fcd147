/* Speed of the zero-shot evaluator (eval/mc.h) on a model of the tiny
 * preset's shape: requests shaped like cloze-sotu's (a context of 150-220
 * tokens, a choice of 15-45, four per item) scored by fl_mc_loglik, against
 * the perplexity evaluator's tokens/s on full windows of the same model.
 * The ratio is the cost of right-padding rows of unequal length plus the
 * per-request bookkeeping; target 0.7.
 *   RESULT mc items_s=X requests_s=Y tokens_s=Z items=N
 *   RESULT mc ratio=R target=0.7 higher=less-padding-cost ppl_tokens_s=P */
#include "bench/benchutil.h"
#include "eval/mc.h"
#include "eval/ppl.h"
#include "model/clock.h"
#include "model/gemm.h"
#include <stdio.h>

int main(void) {
    fl_threads_init(bench_env_int("BENCH_THREADS", 0));
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);   /* the tiny preset's shape (harness/presets.c) */
    c.vocab = 4096; c.d = 192; c.n_layer = 4; c.n_head = 6; c.n_kv_head = 2; c.head_dim = 32; c.d_ff = 512; c.max_pos = 256;
    c.tied = 1;
    fl_model m;
    if (fl_model_create(&m, &c) != 0) return 1;
    fl_model_init_random(&m, 1);
    int items = bench_env_int("BENCH_MC_ITEMS", 60), nr = 4 * items;
    uint64_t s = 7;
    int32_t *tok = malloc(sizeof(int32_t) * 300 * (size_t)nr);
    fl_mc_req *r = malloc(sizeof *r * (size_t)nr);
    double *ll = malloc(sizeof(double) * (size_t)nr);
    int64_t ntok = 0;
    for (int i = 0; i < nr; i++) {
        int nc = 150 + (int)(bench_xorshift(&s) % 71), nk = 15 + (int)(bench_xorshift(&s) % 31);
        int32_t *p = tok + (size_t)i * 300;
        for (int j = 0; j < nc + nk; j++) p[j] = (int32_t)(bench_xorshift(&s) % 4096);
        r[i] = (fl_mc_req){ p, nc, p + nc, nk };
        ntok += nc + nk - 1;
    }
    double t0 = fl_wall_s();
    if (fl_mc_loglik(&m, r, nr, 256, 8, 0, ll, NULL, NULL) != 0) return 1;
    double dt = fl_wall_s() - t0;
    printf("RESULT mc items_s=%.2f requests_s=%.2f tokens_s=%.0f items=%d\n", items / dt, nr / dt, ntok / dt, items);
    /* the same number of tokens through the perplexity evaluator */
    int64_t n = ntok + 256;
    int32_t *st = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t j = 0; j < n; j++) st[j] = (int32_t)(bench_xorshift(&s) % 4096);
    fl_ppl_result pr;
    t0 = fl_wall_s();
    if (fl_eval_ppl(&m, st, n, 256, 0, 0, 8, 0, &pr) != 0) return 1;
    double pt = pr.tokens / (fl_wall_s() - t0);
    printf("RESULT mc ratio=%.3f target=0.7 higher=less-padding-cost ppl_tokens_s=%.0f\n", (ntok / dt) / pt, pt);
    free(st); free(tok); free(r); free(ll);
    fl_model_free(&m);
    return 0;
}
