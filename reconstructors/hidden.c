/* Hidden-state distillation: see hidden.h. */
#include "hidden.h"
#include "model/alloc.h"
#include "model/err.h"
#include <stdlib.h>
#include <string.h>

int fl_hidden_teacher(fl_model *t, const int32_t *tok, int B, int T, const int *map, int L, float *th) {
    const int Lt = t->cfg.n_layer, d = t->cfg.d;
    const size_t N = (size_t)B * T;
    float *x = fl_allocf(N * d);
    fl_fwd a = { .B = B, .T = T, .tokens = tok, .x_out = x };
    int rc = fl_forward(t, (fl_range){ 0, 0, 1, 0 }, &a, NULL);
    for (int b = 0; b < Lt && rc == 0; b++) {
        fl_fwd f = { .B = B, .T = T, .x_in = x, .x_out = x };
        rc = fl_forward(t, fl_range_blocks(b, b), &f, NULL);
        for (int i = 0; i < L && rc == 0; i++)   /* after block b stands the input of block b+1 */
            if (map[i] == b + 1) memcpy(th + (size_t)i * N * d, x, sizeof(float) * N * d);
    }
    for (int i = 0; i < L && rc == 0; i++)
        if (map[i] < 1 || map[i] > Lt) rc = fl_err("hidden-state distillation: layer map %d outside the teacher's 1..%d", map[i], Lt);
    fl_free(x);
    return rc;
}

void fl_hidden_free(fl_hidden_run *r) {
    if (r->acts) for (int i = 0; i <= r->L; i++) fl_acts_free(r->acts[i]);
    free(r->acts);
    fl_free(r->h);
    memset(r, 0, sizeof *r);
}

int fl_hidden_forward(fl_hidden_run *r, fl_model *m, const int32_t *tok, const int32_t *tg, const float *soft, int B, int T,
                      const float *th, float weight, int ce, double *loss, double *mse) {
    const int L = m->cfg.n_layer, d = m->cfg.d;
    const size_t N = (size_t)B * T;
    if (!r->acts || r->L != L || r->B != B || r->T != T) {
        fl_hidden_free(r);
        r->L = L; r->B = B; r->T = T;
        r->acts = calloc((size_t)L + 1, sizeof *r->acts);
        if (!r->acts) return fl_err("hidden-state distillation: out of memory");
        for (int i = 0; i <= L; i++) r->acts[i] = fl_acts_new();
        r->h = fl_allocf((size_t)L * N * d);
    }
    r->ce = ce;
    r->weight = weight;
    r->th = th;
    int rc = 0;
    double s = 0;
    for (int i = 0; i < L && rc == 0; i++) {
        float *h = r->h + (size_t)i * N * d;
        fl_fwd a = { .B = B, .T = T, .tokens = tok, .x_in = i ? h - N * d : NULL, .x_out = h };
        fl_range rg = { 2 * i, 2 * i + 2, i == 0, 0 };
        rc = fl_forward(m, rg, &a, r->acts[i]);
        const float *t = th + (size_t)i * N * d;
        for (size_t k = 0; k < N * d; k++) { double e = (double)h[k] - t[k]; s += e * e; }
    }
    *mse = s / ((double)L * N * d);
    *loss = weight * *mse;
    if (rc == 0 && ce) {
        fl_fwd a = { .B = B, .T = T, .x_in = r->h + (size_t)(L - 1) * N * d, .targets = tg, .soft = soft };
        rc = fl_forward(m, (fl_range){ 2 * L, 2 * L, 0, 1 }, &a, r->acts[L]);
        *loss += a.loss;
    }
    return rc;
}

int fl_hidden_backward(fl_hidden_run *r, fl_model *m) {
    const int L = r->L, d = m->cfg.d;
    const size_t N = (size_t)r->B * r->T;
    float *dx = fl_allocf(N * d), *dprev = fl_allocf(N * d);
    int rc = 0;
    if (r->ce) rc = fl_backward(m, (fl_range){ 2 * L, 2 * L, 0, 1 }, r->acts[L], NULL, dx);
    /* d/dh_i of w/(L N d) sum (h_i - t_i)^2 */
    const float g = (float)(2.0 * r->weight / ((double)L * N * d));
    for (int i = L - 1; i >= 0 && rc == 0; i--) {
        const float *h = r->h + (size_t)i * N * d, *t = r->th + (size_t)i * N * d;
        for (size_t k = 0; k < N * d; k++) dx[k] += g * (h[k] - t[k]);
        memset(dprev, 0, sizeof(float) * N * d);
        fl_range rg = { 2 * i, 2 * i + 2, i == 0, 0 };
        rc = fl_backward(m, rg, r->acts[i], dx, i ? dprev : NULL);
        float *tmp = dx; dx = dprev; dprev = tmp;
    }
    for (int i = 0; i <= L; i++) fl_acts_release(r->acts[i]);
    fl_free(dx);
    fl_free(dprev);
    return rc;
}
