/* Finite-difference checks of every backward pass: each op's analytic
 * gradient of L = sum(out * R) (R random) against central differences of L
 * on a sample of coordinates. The tolerance (3% of the gradient's scale,
 * per coordinate) is loose for float rounding yet catches a wrong sign, a
 * missing term or a factor of two, as test_fd_catches_wrong_gradient shows. */
#include "tests/testutil.h"
#include "model/alloc.h"
#include "model/gemm.h"
#include "model/model.h"
#include "model/ops.h"

typedef double (*loss_fn)(void *ctx);
#define TOL 3e-2
static int g_skip_kinks, g_skipped, g_sampled;

/* Compares grad[] with central differences of f w.r.t. x[], on up to 40
 * coordinates spread over the array. Returns the worst relative error. */
static double fd_check_floor(loss_fn f, void *ctx, float *x, const float *grad, int64_t n, float h, double floor_) {
    double gmax = floor_;  /* a gradient that is truly 0 (e.g. a key bias) is compared on this floor */
    for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    double worst = 0;
    int64_t step = n > 40 ? n / 40 : 1;
    for (int64_t i = step / 2; i < n; i += step) {
        float old = x[i];
        x[i] = old + h; double lp = f(ctx);
        x[i] = old - h; double lm = f(ctx);
        x[i] = old;
        double num = (lp - lm) / (2.0 * h);
        if (g_skip_kinks) {
            /* ReLU: a step that moves some pre-activation across 0 has
             * one-sided slopes far apart; such coordinates say nothing. */
            double l0 = f(ctx), sp = (lp - l0) / h, sm = (l0 - lm) / h;
            if (fabs(sp - sm) > 0.05 * gmax) { g_skipped++; continue; }
        }
        g_sampled++;
        double err = fabs(num - grad[i]) / gmax;
        if (err > worst) worst = err;
        if (err > TOL && getenv("FL_FD_VERBOSE")) fprintf(stderr, "  [%lld] numeric %.6g analytic %.6g\n", (long long)i, num, grad[i]);
    }
    return worst;
}
static double fd_check(loss_fn f, void *ctx, float *x, const float *grad, int64_t n, float h) {
    return fd_check_floor(f, ctx, x, grad, n, h, 1e-3);
}

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}


/* ---- LayerNorm --------------------------------------------------------- */
typedef struct { int N, C; float *x, *w, *b, *out, *mean, *rstd, *R; int rms; } norm_ctx;
static double norm_loss(void *p) {
    norm_ctx *c = p;
    if (c->rms) fl_rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-5f);
    else fl_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, 1e-5f);
    return dot(c->out, c->R, (int64_t)c->N * c->C);
}
static void check_norm(int rms) {
    norm_ctx c = { .N = 6, .C = 24, .rms = rms };
    int64_t n = c.N * c.C;
    c.x = fl_allocf(n); c.w = fl_allocf(c.C); c.b = fl_allocf(c.C); c.out = fl_allocf(n);
    c.mean = fl_allocf(c.N); c.rstd = fl_allocf(c.N); c.R = fl_allocf(n);
    tu_fill(c.x, n, 2.0f, 1); tu_fill(c.w, c.C, 1.0f, 2); tu_fill(c.b, c.C, 1.0f, 3); tu_fill(c.R, n, 1.0f, 4);
    float *dx = fl_allocf(n), *dw = fl_allocf(c.C), *db = fl_allocf(c.C);
    norm_loss(&c);
    if (rms) fl_rmsnorm_backward(dx, dw, c.R, c.x, c.w, c.rstd, c.N, c.C);
    else fl_layernorm_backward(dx, dw, db, c.R, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    assert_true(fd_check(norm_loss, &c, c.x, dx, n, 1e-2f) < TOL);
    assert_true(fd_check(norm_loss, &c, c.w, dw, c.C, 1e-2f) < TOL);
    if (!rms) assert_true(fd_check(norm_loss, &c, c.b, db, c.C, 1e-2f) < TOL);
    fl_free(c.x); fl_free(c.w); fl_free(c.b); fl_free(c.out); fl_free(c.mean); fl_free(c.rstd); fl_free(c.R);
    fl_free(dx); fl_free(dw); fl_free(db);
}
static void test_layernorm(void **s) { (void)s; check_norm(0); }
static void test_rmsnorm(void **s) { (void)s; check_norm(1); }

/* ---- matmul ------------------------------------------------------------ */
typedef struct { int N, I, O; float *x, *W, *b, *out, *R; } mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    fl_matmul_forward(c->out, c->x, c->W, c->b, c->N, c->I, c->O);
    return dot(c->out, c->R, (int64_t)c->N * c->O);
}
static void test_matmul(void **s) {
    (void)s;
    mm_ctx c = { .N = 5, .I = 7, .O = 9 };
    c.x = fl_allocf(35); c.W = fl_allocf(63); c.b = fl_allocf(9); c.out = fl_allocf(45); c.R = fl_allocf(45);
    tu_fill(c.x, 35, 1, 5); tu_fill(c.W, 63, 1, 6); tu_fill(c.b, 9, 1, 7); tu_fill(c.R, 45, 1, 8);
    float *dx = fl_allocf(35), *dW = fl_allocf(63), *db = fl_allocf(9);
    fl_matmul_backward(dx, dW, db, c.R, c.x, c.W, c.N, c.I, c.O);
    assert_true(fd_check(mm_loss, &c, c.x, dx, 35, 1e-2f) < TOL);
    assert_true(fd_check(mm_loss, &c, c.W, dW, 63, 1e-2f) < TOL);
    assert_true(fd_check(mm_loss, &c, c.b, db, 9, 1e-2f) < TOL);
    /* accumulate convention: a second backward doubles the gradients */
    float *dW2 = fl_allocf(63);
    memcpy(dW2, dW, sizeof(float) * 63);
    fl_matmul_backward(NULL, dW2, NULL, c.R, c.x, c.W, c.N, c.I, c.O);
    for (int i = 0; i < 63; i++) assert_true(fabsf(dW2[i] - 2 * dW[i]) <= 1e-5f * (1 + fabsf(dW[i])));
    fl_free(c.x); fl_free(c.W); fl_free(c.b); fl_free(c.out); fl_free(c.R); fl_free(dx); fl_free(dW); fl_free(db); fl_free(dW2);
}

/* ---- activations ------------------------------------------------------- */
typedef struct { int64_t n; int kind; float *x, *y, *out, *R; } act_ctx;
static double act_loss(void *p) {
    act_ctx *c = p;
    if (c->kind == 0) fl_gelu_forward(c->out, c->x, c->n);
    else if (c->kind == 1) fl_relu_forward(c->out, c->x, c->n);
    else fl_swiglu_forward(c->out, c->x, c->y, c->n);
    return dot(c->out, c->R, c->n);
}
static void check_act(int kind) {
    act_ctx c = { .n = 64, .kind = kind };
    c.x = fl_allocf(64); c.y = fl_allocf(64); c.out = fl_allocf(64); c.R = fl_allocf(64);
    tu_fill(c.x, 64, 3, 9); tu_fill(c.y, 64, 2, 10); tu_fill(c.R, 64, 1, 11);
    if (kind == 1) for (int i = 0; i < 64; i++) if (fabsf(c.x[i]) < 0.05f) c.x[i] = 0.5f; /* away from the kink */
    float *dx = fl_allocf(64), *dy = fl_allocf(64);
    if (kind == 0) fl_gelu_backward(dx, c.x, c.R, 64);
    else if (kind == 1) fl_relu_backward(dx, c.x, c.R, 64);
    else fl_swiglu_backward(dx, dy, c.R, c.x, c.y, 64);
    assert_true(fd_check(act_loss, &c, c.x, dx, 64, 1e-3f) < TOL);
    if (kind == 2) assert_true(fd_check(act_loss, &c, c.y, dy, 64, 1e-3f) < TOL);
    fl_free(c.x); fl_free(c.y); fl_free(c.out); fl_free(c.R); fl_free(dx); fl_free(dy);
}
static void test_gelu(void **s) { (void)s; check_act(0); }
static void test_relu(void **s) { (void)s; check_act(1); }
static void test_swiglu(void **s) { (void)s; check_act(2); }

/* ---- RoPE -------------------------------------------------------------- */
typedef struct { int B, T, nh, hd; float *x, *y, *R, *cs, *sn; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    int64_t n = (int64_t)c->B * c->T * c->nh * c->hd;
    memcpy(c->y, c->x, sizeof(float) * n);
    fl_rope_forward(c->y, c->cs, c->sn, c->B, c->T, c->nh, c->hd, 3);
    return dot(c->y, c->R, n);
}
static void test_rope(void **s) {
    (void)s;
    rope_ctx c = { .B = 2, .T = 5, .nh = 2, .hd = 8 };
    int64_t n = 2 * 5 * 2 * 8;
    c.x = fl_allocf(n); c.y = fl_allocf(n); c.R = fl_allocf(n); c.cs = fl_allocf(16 * 4); c.sn = fl_allocf(16 * 4);
    fl_rope_table(c.cs, c.sn, 16, 8, 10000.0f);
    tu_fill(c.x, n, 1, 12); tu_fill(c.R, n, 1, 13);
    float *dx = fl_allocf(n);
    memcpy(dx, c.R, sizeof(float) * n);
    fl_rope_backward(dx, c.cs, c.sn, c.B, c.T, c.nh, c.hd, 3);
    assert_true(fd_check(rope_loss, &c, c.x, dx, n, 1e-2f) < TOL);
    /* rotation preserves norms: a check independent of the backward */
    rope_loss(&c);
    assert_true(fabs(dot(c.x, c.x, n) - dot(c.y, c.y, n)) < 1e-4 * dot(c.x, c.x, n));
    fl_free(c.x); fl_free(c.y); fl_free(c.R); fl_free(c.cs); fl_free(c.sn); fl_free(dx);
}

/* ---- attention --------------------------------------------------------- */
/* The O(T) kernel (lse kept, probabilities recomputed in backward) by
 * finite differences, and against the reference kernel that keeps the
 * [B,H,T,T] probabilities: same output and same gradients. */
typedef struct { int B, T, H, KV, hd; float *q, *k, *v, *out, *lse, *R; } att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    fl_attention_forward(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->H, c->KV, c->hd);
    return dot(c->out, c->R, (int64_t)c->B * c->T * c->H * c->hd);
}
static void check_attention(int T, int H, int KV) {
    att_ctx c = { .B = 2, .T = T, .H = H, .KV = KV, .hd = 8 };
    int64_t nq = (int64_t)c.B * T * H * 8, nk = (int64_t)c.B * T * KV * 8;
    c.q = fl_allocf(nq); c.k = fl_allocf(nk); c.v = fl_allocf(nk); c.out = fl_allocf(nq); c.R = fl_allocf(nq);
    c.lse = fl_allocf((size_t)c.B * H * T);
    tu_fill(c.q, nq, 1.5f, 14); tu_fill(c.k, nk, 1.5f, 15); tu_fill(c.v, nk, 1, 16); tu_fill(c.R, nq, 1, 17);
    float *dq = fl_allocf(nq), *dk = fl_allocf(nk), *dv = fl_allocf(nk);
    att_loss(&c);
    fl_attention_backward(dq, dk, dv, c.R, c.q, c.k, c.v, c.lse, c.B, T, H, KV, 8);
    assert_true(fd_check(att_loss, &c, c.q, dq, nq, 1e-2f) < TOL);
    assert_true(fd_check(att_loss, &c, c.k, dk, nk, 1e-2f) < TOL);
    assert_true(fd_check(att_loss, &c, c.v, dv, nk, 1e-2f) < TOL);
    /* causality: the first row's output is exactly its own value vector */
    for (int i = 0; i < 8; i++) assert_true(fabsf(c.out[i] - c.v[i]) < 1e-6f);
    /* inference path (no lse kept) gives the same output */
    att_loss(&c);
    float *o2 = fl_allocf(nq);
    fl_attention_forward(o2, NULL, c.q, c.k, c.v, c.B, T, H, KV, 8);
    double e2 = tu_relerr(o2, c.out, nq, 1e-6);
    if (e2 >= 1e-5) print_error("inference attention differs: %g\n", e2);
    assert_true(e2 < 1e-5);
    /* the reference kernel: same output, same gradients, and the lse is
     * the log of the reference's softmax normaliser (row 0's only column
     * has probability 1, so lse = its own scaled score) */
    float *att = fl_allocf((size_t)c.B * H * T * T), *o3 = fl_allocf(nq);
    float *rq = fl_allocf(nq), *rk = fl_allocf(nk), *rv = fl_allocf(nk);
    fl_attention_forward_ref(o3, att, c.q, c.k, c.v, c.B, T, H, KV, 8);
    fl_attention_backward_ref(rq, rk, rv, c.R, c.q, c.k, c.v, att, c.B, T, H, KV, 8);
    double eo = tu_relerr(o3, c.out, nq, 1e-6), eq = tu_relerr(dq, rq, nq, 1e-6);
    double ek = tu_relerr(dk, rk, nk, 1e-6), ev = tu_relerr(dv, rv, nk, 1e-6);
    if (eo >= 1e-5 || eq >= 1e-4 || ek >= 1e-4 || ev >= 1e-4)
        print_error("O(T) attention vs reference: out %g dq %g dk %g dv %g\n", eo, eq, ek, ev);
    assert_true(eo < 1e-5 && eq < 1e-4 && ek < 1e-4 && ev < 1e-4);
    double s00 = 0;
    for (int i = 0; i < 8; i++) s00 += (double)c.q[i] * c.k[i];
    assert_true(fabs(c.lse[0] - s00 / sqrt(8.0)) < 1e-5 * (1 + fabs(s00)));
    fl_free(att); fl_free(o3); fl_free(rq); fl_free(rk); fl_free(rv);
    fl_free(o2);
    fl_free(c.q); fl_free(c.k); fl_free(c.v); fl_free(c.out); fl_free(c.R); fl_free(c.lse);
    fl_free(dq); fl_free(dk); fl_free(dv);
}
static void test_attention_mha(void **s) { (void)s; check_attention(6, 2, 2); }
static void test_attention_gqa(void **s) { (void)s; check_attention(7, 4, 2); }
/* T beyond one row block (64) exercises the blocked causal GEMMs */
static void test_attention_long(void **s) { (void)s; check_attention(150, 2, 1); }

/* ---- vectorised paths --------------------------------------------------- */
/* GELU and cross-entropy go 8 lanes at a time through SLEEF, in chunks
 * (GELU 512, the log-sum-exp 256), with scalar tails: sizes that cross a
 * chunk and end off a multiple of 8 against the formulas in double. */
static void test_vector_paths(void **s) {
    (void)s;
    const int n = 1037;
    float *x = fl_allocf(n), *y = fl_allocf(n), *d = fl_allocf(n), *g = fl_allocf(n);
    tu_fill(x, n, 4, 21); tu_fill(d, n, 1, 22);
    fl_gelu_forward(y, x, n);
    fl_gelu_backward(g, x, d, n);
    double ey = 0, eg = 0;
    for (int i = 0; i < n; i++) {
        double z = x[i], u = 0.7978845608028654 * (z + 0.044715 * z * z * z), t = tanh(u);
        double f = 0.5 * z * (1 + t), df = 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * z * z);
        /* relative to 1 + |value|: for z << 0 both are 1 + tanh(u) with
         * tanh near -1, whose cancellation costs any float formula */
        ey = fmax(ey, fabs(y[i] - f) / (1 + fabs(f)));
        eg = fmax(eg, fabs(g[i] - d[i] * df) / (1 + fabs(d[i] * df)));
    }
    if (ey > 2e-6 || eg > 2e-6) print_error("gelu vs double: fwd %g bwd %g\n", ey, eg);
    assert_true(ey <= 2e-6 && eg <= 2e-6);
    fl_free(x); fl_free(y); fl_free(d); fl_free(g);
    const int N = 3, V = 301;
    float *l = fl_allocf((size_t)N * V), *dl = fl_allocf((size_t)N * V), *nll = fl_allocf(N);
    tu_fill(l, (int64_t)N * V, 6, 23);
    int32_t t[3] = { 5, 300, 137 };
    int64_t cnt = 0;
    double sum = fl_crossentropy_forward(nll, l, t, N, V, &cnt);
    fl_crossentropy_backward(dl, l, t, N, V, 0.5f);
    double el = 0, ed = 0, tot = 0;
    for (int r = 0; r < N; r++) {
        const float *lr = l + (int64_t)r * V;
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, lr[j]);
        for (int j = 0; j < V; j++) z += exp(lr[j] - mx);
        double lse = mx + log(z);
        el = fmax(el, fabs(nll[r] - (lse - lr[t[r]])));
        tot += lse - lr[t[r]];
        for (int j = 0; j < V; j++) {
            double ref = 0.5 * (exp(lr[j] - lse) - (j == t[r]));
            ed = fmax(ed, fabs(dl[(int64_t)r * V + j] - ref));
        }
    }
    if (el > 1e-5 || ed > 1e-7 || fabs(sum - tot) > 1e-5 || cnt != N)
        print_error("cross-entropy vs double: nll %g dlogits %g sum %g\n", el, ed, fabs(sum - tot));
    assert_true(el <= 1e-5 && ed <= 1e-7 && fabs(sum - tot) <= 1e-5 && cnt == N);
    fl_free(l); fl_free(dl); fl_free(nll);
}

/* ---- embedding and cross-entropy -------------------------------------- */
typedef struct { int B, T, C; int32_t *tok; float *wte, *wpe, *out, *R; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    fl_embed_forward(c->out, c->tok, c->wte, c->wpe, c->B, c->T, c->C, 2);
    return dot(c->out, c->R, (int64_t)c->B * c->T * c->C);
}
static void test_embed(void **s) {
    (void)s;
    emb_ctx c = { .B = 2, .T = 4, .C = 5 };
    int32_t tok[8] = { 1, 3, 3, 0, 2, 1, 1, 4 };  /* repeated ids accumulate */
    c.tok = tok;
    c.wte = fl_allocf(25); c.wpe = fl_allocf(30); c.out = fl_allocf(40); c.R = fl_allocf(40);
    tu_fill(c.wte, 25, 1, 18); tu_fill(c.wpe, 30, 1, 19); tu_fill(c.R, 40, 1, 20);
    float *dwte = fl_allocf(25), *dwpe = fl_allocf(30);
    fl_embed_backward(dwte, dwpe, c.R, tok, 2, 4, 5, 2);
    assert_true(fd_check(emb_loss, &c, c.wte, dwte, 25, 1e-2f) < TOL);
    assert_true(fd_check(emb_loss, &c, c.wpe, dwpe, 30, 1e-2f) < TOL);
    /* positions 0 and 1 of the table are never used with offset 2 */
    for (int i = 0; i < 10; i++) assert_true(dwpe[i] == 0.0f);
    fl_free(c.wte); fl_free(c.wpe); fl_free(c.out); fl_free(c.R); fl_free(dwte); fl_free(dwpe);
}

typedef struct { int N, V; float *l; int32_t *t; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    int64_t k;
    return fl_crossentropy_forward(NULL, c->l, c->t, c->N, c->V, &k) / (double)k;
}
static void test_crossentropy(void **s) {
    (void)s;
    int32_t t[4] = { 3, -1, 0, 6 };
    ce_ctx c = { .N = 4, .V = 7, .t = t };
    c.l = fl_allocf(28);
    tu_fill(c.l, 28, 3, 21);
    float *d = fl_allocf(28);
    fl_crossentropy_backward(d, c.l, t, 4, 7, 1.0f / 3);
    assert_true(fd_check(ce_loss, &c, c.l, d, 28, 1e-2f) < TOL);
    for (int j = 0; j < 7; j++) assert_true(d[7 + j] == 0.0f);  /* ignored row */
    /* a uniform row has loss log V */
    float u[7] = { 0 };
    int32_t t0 = 2;
    int64_t k;
    assert_true(fabs(fl_crossentropy_forward(NULL, u, &t0, 1, 7, &k) - log(7.0)) < 1e-6);
    fl_free(c.l); fl_free(d);
}

typedef struct { int N, V; float *l, *p; int32_t *t; } sce_ctx;
static double sce_loss(void *q) {
    sce_ctx *c = q;
    int64_t k;
    return fl_softce_forward(c->l, c->p, c->t, c->N, c->V, &k) / (double)k;
}
static void test_soft_crossentropy(void **s) {
    (void)s;
    int32_t t[4] = { 0, -1, 0, 0 };
    sce_ctx c = { .N = 4, .V = 7, .t = t };
    c.l = fl_allocf(28); c.p = fl_allocf(28);
    tu_fill(c.l, 28, 3, 22);
    tu_fill(c.p, 28, 1, 23);
    for (int n = 0; n < 4; n++) {   /* rows of p: probability distributions */
        double z = 0;
        for (int j = 0; j < 7; j++) { c.p[n * 7 + j] = expf(c.p[n * 7 + j]); z += c.p[n * 7 + j]; }
        for (int j = 0; j < 7; j++) c.p[n * 7 + j] /= (float)z;
    }
    float *d = fl_allocf(28);
    fl_softce_backward(d, c.l, c.p, t, 4, 7, 1.0f / 3);
    assert_true(fd_check(sce_loss, &c, c.l, d, 28, 1e-2f) < TOL);
    /* with one-hot p it equals the hard cross-entropy */
    memset(c.p, 0, sizeof(float) * 28);
    int32_t h[4] = { 2, -1, 5, 1 };
    for (int n = 0; n < 4; n++) if (h[n] >= 0) c.p[n * 7 + h[n]] = 1.0f;
    int64_t k1, k2;
    double a = fl_softce_forward(c.l, c.p, h, 4, 7, &k1), b = fl_crossentropy_forward(NULL, c.l, h, 4, 7, &k2);
    assert_true(fabs(a - b) < 1e-5 * fabs(b) && k1 == k2);
    fl_free(c.l); fl_free(c.p); fl_free(d);
}

/* The checker itself must reject a wrong gradient: flip one sign. */
static void test_fd_catches_wrong_gradient(void **s) {
    (void)s;
    mm_ctx c = { .N = 5, .I = 7, .O = 9 };
    c.x = fl_allocf(35); c.W = fl_allocf(63); c.b = fl_allocf(9); c.out = fl_allocf(45); c.R = fl_allocf(45);
    tu_fill(c.x, 35, 1, 5); tu_fill(c.W, 63, 1, 6); tu_fill(c.b, 9, 1, 7); tu_fill(c.R, 45, 1, 8);
    float *dW = fl_allocf(63);
    fl_matmul_backward(NULL, dW, NULL, c.R, c.x, c.W, c.N, c.I, c.O);
    for (int i = 0; i < 63; i++) dW[i] *= 0.5f;   /* a missing factor of two */
    assert_true(fd_check(mm_loss, &c, c.W, dW, 63, 1e-2f) > TOL);
    fl_free(c.x); fl_free(c.W); fl_free(c.b); fl_free(c.out); fl_free(c.R); fl_free(dW);
}

/* ---- whole models and submodels ---------------------------------------- */

static void small_config(fl_config *c, fl_family f) {
    memset(c, 0, sizeof *c);
    fl_config_family_defaults(c, f);
    c->vocab = 37; c->d = 16; c->n_layer = 2; c->n_head = 4; c->head_dim = 4;
    c->n_kv_head = (f == FL_LLAMA || f == FL_QWEN2) ? 2 : 4;
    c->d_ff = 24; c->max_pos = 16;
    if (f == FL_QWEN2) c->tied = 1;
}

typedef struct { fl_model *m; fl_range r; fl_fwd a; float *R; int64_t nout; } mdl_ctx;
static double mdl_loss(void *p) {
    mdl_ctx *c = p;
    fl_fwd a = c->a;
    assert_int_equal(fl_forward(c->m, c->r, &a, NULL), 0);
    if (c->r.head) return a.loss;
    return dot(a.x_out, c->R, c->nout);
}

static void randomize(fl_model *m, uint64_t seed) {
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        tu_fill(p->w, p->n, p->kind == FL_PK_NORM_W ? 0.3f : 0.4f, seed + i);
        if (p->kind == FL_PK_NORM_W) for (int64_t j = 0; j < p->n; j++) p->w[j] += 1.0f;
    }
}

/* Gradient of every parameter of the range, and of x_in, by finite
 * differences; masks on two linears must give exactly zero there. */
static void check_model(fl_family f, fl_range r, int use_mask) {
    fl_config cfg;
    small_config(&cfg, f);
    fl_model m;
    assert_int_equal(fl_model_create(&m, &cfg), 0);
    randomize(&m, 100 + f);
    const int B = 2, T = 5, N = B * T, d = cfg.d;
    int32_t tok[10], tgt[10];
    for (int i = 0; i < N; i++) { tok[i] = (i * 7 + 3) % cfg.vocab; tgt[i] = (i * 5 + 1) % cfg.vocab; }
    tgt[4] = -1;
    if (use_mask) {
        uint8_t *mk = malloc((size_t)m.layers[0].fc1_w->n);
        for (int64_t i = 0; i < m.layers[0].fc1_w->n; i++) mk[i] = (i % 3) != 0;
        fl_param_set_mask(m.layers[0].fc1_w, mk);
        fl_param_set_mask(m.layers[1].fc1_w, mk);
        free(mk);
        for (int64_t i = 0; i < m.layers[0].q_w->n; i++) if (i % 2) m.layers[0].q_w->w[i] = 0;  /* zero, not masked */
    }
    fl_model_set_all_trainable(&m, 1);
    mdl_ctx c = { .m = &m, .r = r };
    float *x_in = fl_allocf((size_t)N * d), *x_out = fl_allocf((size_t)N * d), *dx = fl_allocf((size_t)N * d);
    c.R = fl_allocf((size_t)N * d); c.nout = (int64_t)N * d;
    tu_fill(x_in, (size_t)N * d, 1.0f, 50); tu_fill(c.R, (size_t)N * d, 1.0f, 51);
    c.a = (fl_fwd){ .B = B, .T = T, .tokens = tok, .x_in = x_in, .x_out = x_out, .targets = tgt, .pos0 = 1 };
    fl_acts *acts = fl_acts_new();
    fl_fwd a = c.a;
    assert_int_equal(fl_forward(&m, r, &a, acts), 0);
    double l_train = r.head ? a.loss : dot(x_out, c.R, c.nout);
    assert_true(fabs(l_train - mdl_loss(&c)) <= 1e-5 * (1 + fabs(l_train)));  /* train == inference */
    assert_int_equal(fl_backward(&m, r, acts, c.R, r.embed ? NULL : dx), 0);
    if (!r.embed) assert_true(fd_check(mdl_loss, &c, x_in, dx, (int64_t)N * d, 1e-2f) < TOL);
    int checked = 0;
    for (int i = 0; i < m.n_params; i++) {
        fl_param *p = &m.params[i];
        int in_range = p->layer >= 0 ? (2 * p->layer + 1 >= r.s0 && 2 * p->layer < r.s1) : (r.embed || r.head);
        if (!in_range) continue;
        double e = fd_check_floor(mdl_loss, &c, p->w, p->g, p->n, 4e-3f, 1e-2);
        if (e >= TOL) print_error("%s %s: fd error %.3g\n", fl_family_name(f), p->name, e);
        assert_true(e < TOL);
        if (p->mask) for (int64_t j = 0; j < p->n; j++) if (!p->mask[j]) assert_true(p->g[j] == 0.0f);
        checked++;
    }
    assert_true(checked > 0);
    fl_acts_free(acts);
    fl_free(x_in); fl_free(x_out); fl_free(dx); fl_free(c.R);
    fl_model_free(&m);
}

static void check_family(fl_family f) {
    fl_config cfg; small_config(&cfg, f);
    g_skip_kinks = cfg.act == FL_ACT_RELU;
    g_skipped = g_sampled = 0;
    fl_range whole = { 0, 4, 1, 1 };
    check_model(f, whole, 1);
    check_model(f, fl_range_attn(1), 0);
    check_model(f, fl_range_mlp(0), 1);
    check_model(f, fl_range_blocks(0, 1), 1);
    /* skipping must stay the exception, or the check would be vacuous */
    assert_true(g_skipped * 10 < g_sampled);
    g_skip_kinks = 0;
}
static void test_model_gpt2(void **s) { (void)s; check_family(FL_GPT2); }
static void test_model_opt(void **s) { (void)s; check_family(FL_OPT); }
static void test_model_llama(void **s) { (void)s; check_family(FL_LLAMA); }
static void test_model_qwen2(void **s) { (void)s; check_family(FL_QWEN2); }

/* Frozen parameters get no gradient; backward stops early when nothing
 * below is trainable and no input gradient is wanted. */
static void test_frozen_subset(void **s) {
    (void)s;
    fl_config cfg; small_config(&cfg, FL_LLAMA);
    fl_model m; assert_int_equal(fl_model_create(&m, &cfg), 0);
    randomize(&m, 7);
    fl_param_set_trainable(m.layers[1].fc2_w, 1);
    const int N = 10;
    int32_t tok[10], tgt[10];
    for (int i = 0; i < N; i++) { tok[i] = i; tgt[i] = i + 1; }
    fl_fwd a = { .B = 2, .T = 5, .tokens = tok, .targets = tgt };
    fl_acts *acts = fl_acts_new();
    fl_range r = fl_range_whole(&m);
    assert_int_equal(fl_forward(&m, r, &a, acts), 0);
    assert_true(fl_acts_bytes(acts) > 0);
    assert_int_equal(fl_backward(&m, r, acts, NULL, NULL), 0);
    for (int i = 0; i < m.n_params; i++) {
        fl_param *p = &m.params[i];
        if (p == m.layers[1].fc2_w) {
            double nrm = dot(p->g, p->g, p->n);
            assert_true(nrm > 0);
        } else assert_null(p->g);
    }
    fl_acts_free(acts);
    fl_model_free(&m);
}

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_catches_wrong_gradient),
        cmocka_unit_test(test_layernorm), cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gelu), cmocka_unit_test(test_vector_paths), cmocka_unit_test(test_relu), cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rope), cmocka_unit_test(test_attention_mha), cmocka_unit_test(test_attention_gqa),
        cmocka_unit_test(test_attention_long), cmocka_unit_test(test_embed), cmocka_unit_test(test_crossentropy), cmocka_unit_test(test_soft_crossentropy),
        cmocka_unit_test(test_model_gpt2), cmocka_unit_test(test_model_opt), cmocka_unit_test(test_model_llama),
        cmocka_unit_test(test_model_qwen2), cmocka_unit_test(test_frozen_subset),
    };
    return cmocka_run_group_tests_name("grad", tests, NULL, NULL);
}
