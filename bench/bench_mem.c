/* Peak tracked memory of reconstructing one block: a one-block model is
 * created, its block made trainable with AdamW moments beside it, and one
 * forward (activations kept) + backward is run. The measured figure is
 * fl_mem_peak() - fl_mem_live() taken before the model was created, so it
 * counts every tracked byte this work allocates and nothing else.
 *
 * The analytic count, in fp32 floats (N = B*T tokens, d hidden, qd = H*hd,
 * kvd = KV*hd, F ffn, V vocab, P positions):
 *   parameters   every tensor of the one-block model: the block (norms,
 *                q/k/v/o, MLP, biases), the embedding [V,d], learned
 *                positions [P,d] (gpt2), final norm, untied LM head [V,d]
 *                (llama), plus the RoPE cos/sin tables 2*P*hd/2 (llama)
 *   gradients    the block's parameters (only the block is trainable)
 *   Adam states  m and v for the block's parameters (2 x block), allocated
 *                here with fl_allocf as an optimiser would
 *   I/O          x_in, x_out and dy, each [N,d]
 *   saved acts   attention: x, mean, rstd, xn, q, k, v (after RoPE),
 *                the attention's row log-sum-exp att [B,H,T], ao;  MLP: x,
 *                mean, rstd, xn, h, (up), a
 *                (model.c's sub_acts; mean is kept even for RMSNorm)
 *   transients   the larger of the forward's residual stream [N,d] and the
 *                backward's peak: the residual-stream gradient in and out
 *                (2 [N,d]) plus the larger sublayer's scratch:
 *                  MLP:  dxn [N,d], da, dh [N,F] (+ dup [N,F] SwiGLU)
 *                  attn: dxn [N,d], dao, dq [N,qd], dk, dv [N,kvd],
 *                        the per-thread P and dS rows threads*2*64*T
 *                (per-thread column-sum partials, threads*d, are left out:
 *                 a few KB)
 *
 *   RESULT mem <case> measured=<bytes> analytic=<bytes> ratio=<m/a>
 *
 * Env: BENCH_THREADS. */
#include "benchutil.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/model.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    fl_family fam;
    int d, H, KV, F, V, B, T;
} mcase;

static const mcase CASES[] = {
    { "gpt2-124m-block", FL_GPT2, 768, 12, 12, 3072, 4096, 2, 1024 },
    { "gpt2-small-block", FL_GPT2, 256, 4, 4, 1024, 4096, 8, 256 },
    { "llama-small-block", FL_LLAMA, 256, 4, 2, 688, 4096, 8, 256 },
};

static double mb(double floats) { return floats * 4.0 / (1 << 20); }

static int run(const mcase *k, int nt) {
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, k->fam);
    c.vocab = k->V; c.d = k->d; c.n_layer = 1; c.n_head = k->H; c.n_kv_head = k->KV;
    c.head_dim = k->d / k->H; c.d_ff = k->F; c.max_pos = k->T;

    /* ---- analytic, in floats ---- */
    const double N = (double)k->B * k->T, d = k->d, hd = c.head_dim, qd = k->H * hd, kvd = k->KV * hd;
    const double F = k->F, V = k->V, Pn = k->T;
    const int llama = k->fam == FL_LLAMA;
    double blk = 0;
    blk += llama ? 2 * d : 4 * d;                                 /* two norms (w, b) */
    blk += qd * d + 2 * kvd * d + d * qd;                         /* q, k, v, o */
    blk += llama ? 0 : qd + 2 * kvd + d;                          /* their biases */
    blk += llama ? 3 * F * d : 2 * F * d + F + d;                 /* MLP */
    double rest = V * d + (llama ? V * d + d : Pn * d + 2 * d);   /* embed + head or pos, final norm */
    double rope = llama ? 2 * Pn * hd / 2 : 0;
    double grads = blk, adam = 2 * blk, io = 3 * N * d;
    double acts_attn = 2 * N * d + 2 * N + 2 * N * qd + 2 * N * kvd + (double)k->B * k->H * k->T;
    double acts_mlp = 2 * N * d + 2 * N + (llama ? 3 : 2) * N * F;
    double nacts = acts_attn + acts_mlp;
    double t_mlp = N * d + (llama ? 3 : 2) * N * F;
    double t_attn = N * d + 2 * N * qd + 2 * N * kvd + (double)nt * 2 * 64 * k->T;
    double t_bwd = 2 * N * d + (t_mlp > t_attn ? t_mlp : t_attn);
    double trans = t_bwd > N * d ? t_bwd : N * d;
    double analytic = blk + rest + rope + grads + adam + io + nacts + trans;

    /* ---- measured ---- */
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    fl_model m;
    if (fl_model_create(&m, &c) != 0) { fprintf(stderr, "bench_mem: %s\n", fl_errmsg()); return -1; }
    fl_model_init_random(&m, 7);
    size_t after_model = fl_mem_live() - live0;
    for (int i = 0; i < m.n_params; i++) {
        fl_param *p = &m.params[i];
        if (p->layer != 0) continue;
        fl_param_set_trainable(p, 1);
        p->m = fl_allocf((size_t)p->n);   /* AdamW moments; fl_model_free frees them */
        p->v = fl_allocf((size_t)p->n);
    }
    size_t after_opt = fl_mem_live() - live0;
    size_t Nd = (size_t)k->B * k->T * k->d;
    float *x = fl_allocf(Nd), *y = fl_allocf(Nd), *dy = fl_allocf(Nd);
    for (size_t i = 0; i < Nd; i++) { x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f; dy[i] = 1e-3f * x[(i * 7) % Nd]; }
    fl_acts *acts = fl_acts_new();
    fl_range r = fl_range_blocks(0, 0);
    fl_fwd f = { .B = k->B, .T = k->T, .x_in = x, .x_out = y };
    if (fl_forward(&m, r, &f, acts) != 0) { fprintf(stderr, "bench_mem: %s\n", fl_errmsg()); return -1; }
    size_t acts_bytes = fl_acts_bytes(acts);
    size_t peak_fwd = fl_mem_peak() - live0;
    if (fl_backward(&m, r, acts, dy, NULL) != 0) { fprintf(stderr, "bench_mem: %s\n", fl_errmsg()); return -1; }
    size_t peak = fl_mem_peak() - live0;
    size_t live_end = fl_mem_live() - live0;

    printf("-- %s: B=%d T=%d d=%d heads=%d kv=%d ffn=%d vocab=%d, threads %d\n", k->name, k->B, k->T, k->d, k->H,
           k->KV, k->F, k->V, nt);
    printf("   analytic (MiB): block params %.2f, other params %.2f, rope %.2f, grads %.2f, adam %.2f, io %.2f,\n"
           "                   acts %.2f (attn %.2f [att %.2f], mlp %.2f), transients %.2f (bwd: attn %.2f, mlp %.2f)\n",
           mb(blk), mb(rest), mb(rope), mb(grads), mb(adam), mb(io), mb(nacts), mb(acts_attn),
           mb((double)k->B * k->H * k->T), mb(acts_mlp), mb(trans), mb(2 * N * d + t_attn),
           mb(2 * N * d + t_mlp));
    printf("   measured (MiB): model %.2f, +grads+adam %.2f, fl_acts_bytes %.2f (analytic %.2f), "
           "forward peak %.2f, fwd+bwd peak %.2f, live after %.2f\n",
           after_model / 1048576.0, (after_opt - after_model) / 1048576.0, acts_bytes / 1048576.0, mb(nacts),
           peak_fwd / 1048576.0, peak / 1048576.0, live_end / 1048576.0);
    printf("RESULT mem %s measured=%zu analytic=%.0f ratio=%.4f acts_ratio=%.4f\n", k->name, peak, analytic * 4,
           peak / (analytic * 4), acts_bytes / (nacts * 4));
    fflush(stdout);
    fl_acts_free(acts);
    fl_free(x); fl_free(y); fl_free(dy);
    fl_model_free(&m);
    return 0;
}

int main(void) {
    int nt = fl_threads_init(bench_env_int("BENCH_THREADS", 0));
    printf("THREADS %d\n", nt);
    int rc = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (run(&CASES[i], nt) != 0) rc = 1;
    return rc;
}
