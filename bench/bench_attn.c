/* Causal attention alone, forward+backward, at T = 256, 1024 and 2048 with
 * a GPT-2-sized layer (batch 2, 12 heads of 64): the O(T) kernel the model
 * uses (fl_attention_forward/backward: lse kept, probabilities recomputed)
 * against the reference kernel it replaced (fl_attention_*_ref: the
 * [B,H,T,T] probabilities kept). One line per kernel and length:
 *
 *   RESULT attn <kernel> <case> ms=<median ms per fwd+bwd> peak=<bytes>
 *          state=<bytes kept from forward to backward> times=<ms,...>
 *
 * peak is the tracked peak above the inputs q, k, v and dout: the output,
 * the kept state, the gradients dq, dk, dv and each kernel's scratch (the
 * same definition bench/torch_bench.py's attention cases measure for
 * PyTorch). Then, per case, the two ratios of the target:
 *
 *   RESULT attn-vs-ref <case> mem ratio=<ref peak / O(T) peak> higher=O(T)-smaller target=8
 *   RESULT attn-vs-ref <case> time ratio=<ref ms / O(T) ms> higher=O(T)-faster target=1
 *
 * (the T=2048 case carries the targets; the shorter ones report target=
 * none, only the ratio). Usage: bench_attn [case ...]. Env: BENCH_THREADS,
 * BENCH_SECONDS, BENCH_MIN_REPS, BENCH_MAX_REPS. */
#include "benchutil.h"
#include "model/alloc.h"
#include "model/clock.h"
#include "model/gemm.h"
#include "model/ops.h"
#include <stdio.h>
#include <string.h>

typedef struct { const char *name; int B, T, H, hd; } acase;
/* Keep in sync with ATTN_CASES in bench/torch_bench.py. */
static const acase CASES[] = {
    { "attn-T256", 2, 256, 12, 64 },
    { "attn-T1024", 2, 1024, 12, 64 },
    { "attn-T2048", 2, 2048, 12, 64 },
};
#define NCASES (int)(sizeof CASES / sizeof CASES[0])

typedef struct { double ms; size_t peak, state; } res;

/* One fwd+bwd of kernel `ref` (1 reference, 0 O(T)); state allocated here
 * and freed at the end, so the tracked peak covers all of it. */
static void step(int ref, const acase *k, const float *q, const float *kk, const float *v, const float *dout,
                 size_t *state) {
    const size_t nq = (size_t)k->B * k->T * k->H * k->hd;
    float *out = fl_allocf(nq), *dq = fl_allocf(nq), *dk = fl_allocf(nq), *dv = fl_allocf(nq);
    size_t ns = ref ? (size_t)k->B * k->H * k->T * k->T : (size_t)k->B * k->H * k->T;
    float *st = fl_allocf(ns);
    if (ref) {
        fl_attention_forward_ref(out, st, q, kk, v, k->B, k->T, k->H, k->H, k->hd);
        fl_attention_backward_ref(dq, dk, dv, dout, q, kk, v, st, k->B, k->T, k->H, k->H, k->hd);
    } else {
        fl_attention_forward(out, st, q, kk, v, k->B, k->T, k->H, k->H, k->hd);
        fl_attention_backward(dq, dk, dv, dout, q, kk, v, st, k->B, k->T, k->H, k->H, k->hd);
    }
    *state = ns * sizeof(float);
    fl_free(st); fl_free(out); fl_free(dq); fl_free(dk); fl_free(dv);
}

static res run(int ref, const acase *k, const float *q, const float *kk, const float *v, const float *dout) {
    res r = { 0 };
    size_t live = fl_mem_live();
    fl_mem_reset_peak();
    step(ref, k, q, kk, v, dout, &r.state);   /* warm-up, and the peak */
    r.peak = fl_mem_peak() - live;
    double t0 = fl_wall_s();
    step(ref, k, q, kk, v, dout, &r.state);
    double tw = fl_wall_s() - t0;
    int minr = bench_env_int("BENCH_MIN_REPS", 5), maxr = bench_env_int("BENCH_MAX_REPS", 15);
    int reps = (int)(bench_env_double("BENCH_SECONDS", 4.0) / 2 / tw);
    if (reps < minr) reps = minr;
    if (reps > maxr) reps = maxr;
    if (reps > 64) reps = 64;
    double ts[64];
    for (int i = 0; i < reps; i++) {
        double a = fl_wall_s();
        step(ref, k, q, kk, v, dout, &r.state);
        ts[i] = 1e3 * (fl_wall_s() - a);
    }
    char times[64 * 16] = "";
    for (int i = 0, o = 0; i < reps; i++) o += snprintf(times + o, sizeof times - o, "%s%.2f", i ? "," : "", ts[i]);
    r.ms = bench_median(ts, reps);
    printf("RESULT attn %s %s ms=%.2f peak=%zu state=%zu reps=%d times=%s\n", ref ? "reference" : "o(T)", k->name,
           r.ms, r.peak, r.state, reps, times);
    fflush(stdout);
    return r;
}

int main(int argc, char **argv) {
    int nt = fl_threads_init(bench_env_int("BENCH_THREADS", 0));
    printf("THREADS %d\n", nt);
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (int c = 0; c < NCASES; c++) {
        const acase *k = &CASES[c];
        int want = argc < 2;
        for (int j = 1; j < argc; j++) want |= strcmp(argv[j], k->name) == 0;
        if (!want) continue;
        const size_t nq = (size_t)k->B * k->T * k->H * k->hd;
        float *q = fl_allocf(nq), *kk = fl_allocf(nq), *v = fl_allocf(nq), *dout = fl_allocf(nq);
        for (size_t i = 0; i < nq; i++) { q[i] = bench_frand(&s); kk[i] = bench_frand(&s); v[i] = bench_frand(&s); dout[i] = bench_frand(&s); }
        /* alternate the two so a passing load hits both alike */
        res a = run(1, k, q, kk, v, dout), b = run(0, k, q, kk, v, dout);
        res a2 = run(1, k, q, kk, v, dout), b2 = run(0, k, q, kk, v, dout);
        double ta = a.ms < a2.ms ? a.ms : a2.ms, tb = b.ms < b2.ms ? b.ms : b2.ms;
        int last = k->T == 2048;
        printf("RESULT attn-vs-ref %s mem ratio=%.2f higher=O(T)-smaller%s\n", k->name, (double)a.peak / b.peak, last ? " target=8" : "");
        printf("RESULT attn-vs-ref %s time ratio=%.2f higher=O(T)-faster%s\n", k->name, ta / tb, last ? " target=1" : "");
        fflush(stdout);
        fl_free(q); fl_free(kk); fl_free(v); fl_free(dout);
    }
    return 0;
}
