/* Forward+backward speed of freelunch blocks and whole small models, for
 * each GEMM backend. One line per measurement:
 *
 *   RESULT speed <backend> <case> tok_s=<tokens/s> ms=<median ms/step>
 *          gflop=<GEMM GFLOP per step> gflops=<achieved GFLOP/s>
 *          tokens=<per step> times=<every timed step, ms, in run order>
 *
 * The same cases (names, shapes, work) are run on PyTorch by
 * bench/torch_bench.py; bench/run.sh pairs the lines up.
 *
 * A step is: zero the gradients, forward with the activations kept,
 * backward. Every parameter is trainable (block cases: a one-block model
 * with every parameter of the block trainable). Block cases feed a random
 * x [B,T,d] and a random dy [B,T,d] (the gradient w.r.t. the block output)
 * and do not ask for dx_in (PyTorch's x does not require grad either).
 * Model cases feed random tokens and targets through the embedding, all
 * blocks, the final norm, the LM head and the mean cross-entropy.
 *
 * The pretraining case (tiny-pretrain, issue 12 item 5) is the `tiny`
 * preset's exact configuration and step, taken from harness/presets.c (its
 * literal shapes below are checked against the preset at start): the whole
 * model with its tied head on B x T random tokens, forward, backward, then
 * the AdamW step `freelunch pretrain` takes (the preset's weight decay on
 * matrices, its gradient clipping, beta2 0.95; the update zeroes the
 * gradients, so the step zeroes nothing before). PyTorch's step is
 * zero_grad, forward, backward, clip_grad_norm_, AdamW.step.
 *
 * GFLOP counts only GEMMs (fl_flops); freelunch's attention computes only
 * the causal row blocks, so its count is below the dense 6*params*tokens
 * + full-T^2 attention that PyTorch's masked matmul+softmax performs.
 *
 * Usage: bench_speed [case ...]   (default: all cases)
 *        bench_speed --side-by-side [case ...]: GEMM dispatch by shape
 *        against both forced backends, interleaved (see side_by_side)
 * Env:   BENCH_BACKENDS="openblas onednn auto"  BENCH_MIN_REPS, BENCH_MAX_REPS,
 *        BENCH_SECONDS (target timed seconds per case), BENCH_THREADS. */
#include "benchutil.h"
#include "model/alloc.h"
#include "model/clock.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/model.h"
#include "datasets/corpus.h"
#include "harness/presets.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    fl_family fam;
    int d, L, H, KV, F, V, B, T;
    int whole;   /* 1 whole model with head, 0 block 0 only */
    int tied;    /* the head is the embedding (gpt2's always is) */
    const char *preset;   /* a pretraining step of this preset (its AdamW), else NULL */
} bcase;

/* Keep in sync with CASES in bench/torch_bench.py. */
static const bcase CASES[] = {
    { "llama-small-block", FL_LLAMA, 256, 4, 4, 2, 688, 4096, 8, 256, 0, 0, NULL },
    { "llama-small-model", FL_LLAMA, 256, 4, 4, 2, 688, 4096, 8, 256, 1, 0, NULL },
    { "gpt2-small-block", FL_GPT2, 256, 4, 4, 4, 1024, 4096, 8, 256, 0, 1, NULL },
    { "gpt2-small-model", FL_GPT2, 256, 4, 4, 4, 1024, 4096, 8, 256, 1, 1, NULL },
    { "gpt2-124m-block", FL_GPT2, 768, 1, 12, 12, 3072, 4096, 2, 1024, 0, 1, NULL },
    { "tiny-pretrain", FL_LLAMA, 192, 4, 6, 2, 512, 4096, 8, 256, 1, 1, "tiny" },
};
#define NCASES (int)(sizeof CASES / sizeof CASES[0])

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) { return bench_xorshift(&rng_s); }
static float frand(void) { return bench_frand(&rng_s); }

static void make_config(fl_config *c, const bcase *k) {
    memset(c, 0, sizeof *c);
    fl_config_family_defaults(c, k->fam);
    c->vocab = k->V; c->d = k->d; c->n_layer = k->L; c->n_head = k->H; c->n_kv_head = k->KV;
    c->head_dim = k->d / k->H; c->d_ff = k->F; c->max_pos = k->T; c->tied = k->tied;
}

/* A preset case's literal shapes (what torch_bench.py builds) must be the
 * preset's: -1 with a message when harness/presets.c has moved on. */
static int check_preset(const bcase *k) {
    const fl_preset *p = fl_preset_find(k->preset);
    if (!p) return fl_err("%s: no preset %s", k->name, k->preset);
    fl_config a, b;
    fl_preset_config(p, &a);
    make_config(&b, k);
    if (a.family != b.family || a.vocab != b.vocab || a.d != b.d || a.n_layer != b.n_layer || a.n_head != b.n_head ||
        a.n_kv_head != b.n_kv_head || a.d_ff != b.d_ff || a.max_pos != b.max_pos || a.tied != b.tied ||
        p->batch != k->B || p->seqlen != k->T)
        return fl_err("%s: its shapes are no longer preset %s's (update CASES here and in bench/torch_bench.py)",
                      k->name, k->preset);
    return 0;
}

typedef struct {
    fl_model m;
    fl_acts *acts;
    fl_range r;
    fl_fwd f;
    fl_adamw opt;   /* preset cases: the pretraining optimiser */
    int has_opt;
    float *x, *y, *dy;
    int32_t *tok, *tgt;
} runner;

static int run_step(runner *u) {
    if (!u->has_opt) fl_model_zero_grad(&u->m);   /* AdamW's update zeroes them itself */
    if (fl_forward(&u->m, u->r, &u->f, u->acts) != 0) return -1;
    if (fl_backward(&u->m, u->r, u->acts, u->r.head ? NULL : u->dy, NULL) != 0) return -1;
    if (u->has_opt) fl_adamw_step(&u->opt);
    return 0;
}

static void runner_free(runner *u) {
    if (u->has_opt) fl_adamw_free(&u->opt);
    fl_acts_free(u->acts);
    fl_free(u->x); fl_free(u->y); fl_free(u->dy); free(u->tok); free(u->tgt);
    fl_model_free(&u->m);
}

static int runner_make(runner *u, const bcase *k) {
    fl_config c;
    make_config(&c, k);
    if (!k->whole) c.n_layer = 1;
    memset(u, 0, sizeof *u);
    if (fl_model_create(&u->m, &c) != 0) return -1;
    fl_model_init_random(&u->m, 1234);
    /* Model cases: every parameter. Block cases: every parameter of the
     * block, and only those (a one-block model), like PyTorch's lone Block
     * module: zeroing the gradients then touches the same tensors. */
    for (int i = 0; i < u->m.n_params; i++)
        if (k->whole || u->m.params[i].layer == 0) fl_param_set_trainable(&u->m.params[i], 1);
    if (k->preset) {   /* the optimiser `freelunch pretrain` builds (cmd_pretrain.c) */
        if (check_preset(k) != 0) return -1;
        const fl_preset *p = fl_preset_find(k->preset);
        fl_adamw_cfg oc = fl_preset_adamw(p, p->steps, 1.0);
        if (fl_adamw_init(&u->opt, &u->m, &oc) != 0) return -1;
        u->has_opt = 1;
    }
    u->acts = fl_acts_new();
    const size_t N = (size_t)k->B * k->T;
    u->f.B = k->B; u->f.T = k->T;
    if (k->whole) {
        u->r = fl_range_whole(&u->m);
        u->tok = malloc(N * sizeof(int32_t)); u->tgt = malloc(N * sizeof(int32_t));
        for (size_t i = 0; i < N; i++) { u->tok[i] = (int32_t)(rng() % k->V); u->tgt[i] = (int32_t)(rng() % k->V); }
        u->f.tokens = u->tok; u->f.targets = u->tgt;
    } else {
        u->r = fl_range_blocks(0, 0);
        u->x = fl_allocf(N * k->d); u->y = fl_allocf(N * k->d); u->dy = fl_allocf(N * k->d);
        for (size_t i = 0; i < N * k->d; i++) { u->x[i] = frand(); u->dy[i] = 1e-3f * frand(); }
        u->f.x_in = u->x; u->f.x_out = u->y;
    }
    return 0;
}

static int bench_case(const bcase *k, const char *backend) {
    runner u;
    const size_t N = (size_t)k->B * k->T;
    if (runner_make(&u, k) != 0) goto fail;
    /* warm-up: two steps, the second one timed to size the repetitions */
    if (run_step(&u) != 0) goto fail;
    double t0 = fl_wall_s();
    fl_flops_reset();
    if (run_step(&u) != 0) goto fail;
    double tw = fl_wall_s() - t0;
    uint64_t flops = fl_flops();
    int minr = bench_env_int("BENCH_MIN_REPS", 5), maxr = bench_env_int("BENCH_MAX_REPS", 15);
    int reps = (int)(bench_env_double("BENCH_SECONDS", 4.0) / tw);
    if (reps < minr) reps = minr;
    if (reps > maxr) reps = maxr;
    double ts[64];
    if (reps > 64) reps = 64;
    for (int i = 0; i < reps; i++) {
        double a = fl_wall_s();
        if (run_step(&u) != 0) goto fail;
        ts[i] = fl_wall_s() - a;
    }
    char times[64 * 16] = "";
    for (int i = 0, o = 0; i < reps; i++)
        o += snprintf(times + o, sizeof times - o, "%s%.2f", i ? "," : "", 1e3 * ts[i]);
    double med = bench_median(ts, reps);
    printf("RESULT speed %s %s tok_s=%.1f ms=%.2f min_ms=%.2f reps=%d gflop=%.3f gflops=%.1f tokens=%zu times=%s\n",
           backend, k->name, (double)N / med, 1e3 * med, 1e3 * ts[0], reps, flops * 1e-9, flops * 1e-9 / med, N,
           times);
    fflush(stdout);
    runner_free(&u);
    return 0;
fail:
    fprintf(stderr, "bench_speed: %s: %s\n", k->name, fl_errmsg());
    return -1;
}

/* --side-by-side: the dispatch by shape against both forced backends on
 * one model, step by step in turn (openblas, onednn, auto, the order
 * rotating each round), so load that comes and goes falls on all three:
 *
 *   RESULT dispatch <case> ratio=<auto tok/s / the better forced backend's> higher=auto-faster
 *          target=0.97 auto_tok_s= openblas_tok_s= onednn_tok_s=
 *          auto_vs_openblas= auto_vs_onednn= shapes= on_onednn= measure_s=
 *          gemm_ms_openblas= gemm_ms_onednn= gemm_ms_auto=
 *
 * (medians over the rounds; gemm_ms_*: one step's GEMM time per side, from
 * each shape's per-call mean inside the steps; gemm_nested_ms_auto: the part
 * of auto's issued inside parallel regions, summed over the threads). The target: auto no slower than the better
 * forced backend beyond the margin it calls a tie (FL_GEMM_MARGIN). Auto's
 * choices come from the cache directory ($FL_CACHE or ~/.cache/freelunch),
 * timed during the warm-up steps when it has none for a shape. */
static int side_by_side(const bcase *k) {
    runner u;
    const size_t N = (size_t)k->B * k->T;
    static const fl_backend BE[3] = { FL_BACKEND_OPENBLAS, FL_BACKEND_ONEDNN, FL_BACKEND_AUTO };
    if (runner_make(&u, k) != 0) goto fail;
    fl_gemm_dispatch_reset();
    double tw = 0;
    for (int b = 0; b < 3; b++) {   /* warm-up: each side twice (auto times its new shapes here) */
        fl_gemm_set_backend(BE[b]);
        if (run_step(&u) != 0) goto fail;
        double t0 = fl_wall_s();
        if (run_step(&u) != 0) goto fail;
        tw += fl_wall_s() - t0;
    }
    int minr = bench_env_int("BENCH_MIN_REPS", 5), maxr = bench_env_int("BENCH_MAX_REPS", 15);
    int rounds = (int)(bench_env_double("BENCH_SECONDS", 4.0) / tw);
    if (rounds < minr) rounds = minr;
    if (rounds > maxr) rounds = maxr;
    double ts[3][64], med[3];
    if (rounds > 64) rounds = 64;
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < 3; j++) {
            int b = (r + j) % 3;
            fl_gemm_set_backend(BE[b]);
            double a = fl_wall_s();
            if (run_step(&u) != 0) goto fail;
            ts[b][r] = fl_wall_s() - a;
        }
    for (int b = 0; b < 3; b++) med[b] = (double)N / bench_median(ts[b], rounds);
    /* what auto chose: shapes, and how many of them run on oneDNN */
    fl_gemm_shape sh[512];
    int ns = fl_gemm_shapes(sh, 512), on_dnnl = 0;
    for (int i = 0; i < ns && i < 512; i++) on_dnnl += sh[i].decided && sh[i].choice == FL_BACKEND_ONEDNN;
    /* BENCH_VERBOSE=1: per shape, auto's choice against what each backend
     * took per call inside the steps (both ran every shape: the forced
     * steps), to see whether a timing taken alone held in the model */
    for (int i = 0; bench_env_int("BENCH_VERBOSE", 0) && i < ns && i < 512; i++) {
        const fl_gemm_shape *q = &sh[i];
        printf("SHAPE %s %dx%dx%d %c%c%s choice=%s why=%s timed_us=%.1f/%.1f in_steps_us=%.1f/%.1f calls=%llu/%llu\n",
               k->name, q->m, q->n, q->k, q->ta ? 'T' : 'N', q->tb ? 'T' : 'N', q->nested ? " nested" : "",
               q->choice == FL_BACKEND_ONEDNN ? "onednn" : "openblas", fl_gemm_why_name(q->why), 1e6 * q->t_openblas,
               1e6 * q->t_onednn, q->calls[0] ? 1e6 * q->seconds[0] / q->calls[0] : 0,
               q->calls[1] ? 1e6 * q->seconds[1] / q->calls[1] : 0, (unsigned long long)q->calls[0],
               (unsigned long long)q->calls[1]);
    }
    /* The GEMM time of one step per side, from the per-call means inside
     * the steps (every shape ran on both backends in the forced steps):
     * sum over shapes of calls per step x the mean of the backend that side
     * uses. Less noisy than the step times (it averages many calls) and
     * blind to what is not GEMM. */
    double gms[3] = { 0, 0, 0 }, nested = 0;
    const int steps = 3 * (rounds + 2);
    for (int i = 0; i < ns && i < 512; i++) {
        const fl_gemm_shape *q = &sh[i];
        if (!q->calls[0] || !q->calls[1]) continue;
        double per = (double)(q->calls[0] + q->calls[1]) / steps, t0 = q->seconds[0] / q->calls[0],
               t1 = q->seconds[1] / q->calls[1];
        gms[0] += per * t0; gms[1] += per * t1; gms[2] += per * (q->choice == FL_BACKEND_ONEDNN ? t1 : t0);
        if (q->nested) nested += per * (q->choice == FL_BACKEND_ONEDNN ? t1 : t0);
    }
    double best = med[0] > med[1] ? med[0] : med[1];
    printf("RESULT dispatch %s ratio=%.3f target=0.97 higher=auto-faster auto_tok_s=%.1f openblas_tok_s=%.1f onednn_tok_s=%.1f "
           "auto_vs_openblas=%.3f auto_vs_onednn=%.3f rounds=%d shapes=%d on_onednn=%d measure_s=%.3f "
           "gemm_ms_openblas=%.1f gemm_ms_onednn=%.1f gemm_ms_auto=%.1f gemm_nested_ms_auto=%.1f threads=%d\n",
           k->name, med[2] / best, med[2], med[0], med[1], med[2] / med[0], med[2] / med[1], rounds, ns, on_dnnl,
           fl_gemm_measure_seconds(), 1e3 * gms[0], 1e3 * gms[1], 1e3 * gms[2], 1e3 * nested, fl_threads());
    fflush(stdout);
    runner_free(&u);
    return 0;
fail:
    fprintf(stderr, "bench_speed: %s: %s\n", k->name, fl_errmsg());
    return -1;
}

int main(int argc, char **argv) {
    int nt = fl_threads_init(bench_env_int("BENCH_THREADS", 0));
    printf("THREADS %d\n", nt);
    const char *bes = getenv("BENCH_BACKENDS");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", bes && *bes ? bes : "openblas onednn auto");
    int rc = 0;
    /* auto (a backend of the list, or --side-by-side) keeps its choices
     * where the CLI does */
    char cache[4096];
    fl_gemm_set_cache_dir(fl_cache_dir(cache, sizeof cache, NULL));
    if (argc > 1 && !strcmp(argv[1], "--side-by-side")) {
        for (int i = 0; i < NCASES; i++) {
            int want = argc < 3;
            for (int j = 2; j < argc; j++) want |= strcmp(argv[j], CASES[i].name) == 0;
            if (want && side_by_side(&CASES[i]) != 0) rc = 1;
        }
        return rc;
    }
    for (char *save = NULL, *be = strtok_r(buf, " ,", &save); be; be = strtok_r(NULL, " ,", &save)) {
        if (fl_gemm_set_backend_name(be) != 0) { fprintf(stderr, "bench_speed: %s\n", fl_errmsg()); return 2; }
        for (int i = 0; i < NCASES; i++) {
            int want = argc < 2;
            for (int j = 1; j < argc; j++) want |= strcmp(argv[j], CASES[i].name) == 0;
            if (want && bench_case(&CASES[i], be) != 0) rc = 1;
        }
    }
    return rc;
}
