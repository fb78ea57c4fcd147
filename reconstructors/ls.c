/* matrix-ls: each pruned linear reconstructed exactly by least squares over
 * the kept weights of each row: for output row i with kept inputs K,
 *     min_{w_K, b_i} || X_K w_K + b_i - Y_i ||^2,
 * solved through the masked normal equations (G_KK + lambda I) w = R_K,i
 * with G = X'^T X', R = X'^T Y, X' = [X, 1] when the linear has a bias,
 * lambda = damp * mean(diag G), by Cholesky (LAPACK dpotrf/dpotrs in double).
 * This is the convex optimum that matrix-granularity AdamW approaches. */
#include "recon.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/lapack.h"
#include <omp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/clock.h"


int fl_recover_ls(const fl_recover_job *j, fl_unit_report *rep) {
    fl_model *m = j->m;
    const fl_unit *u = j->u;
    const float *X = j->X, *Y = j->Y;
    const int nwin = j->nwin, T = j->T;
    const fl_recon_opts *o = j->o;
    if (u->kind != FL_UNIT_LINEAR) return fl_err("%s: matrix-ls reconstructs single linears only", u->name);
    double t0 = fl_wall_s();
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    snprintf(rep->name, sizeof rep->name, "%s", u->name);
    fl_param *W = u->w;
    const int in = W->cols, out = W->rows, hb = u->b != NULL, ia = in + hb;
    const int64_t N = (int64_t)nwin * T;
    rep->tokens = N;   /* one pass builds the normal equations; no backward, no epochs */
    /* loss before, with the pruned weights */
    float *yb = fl_allocf((size_t)T * out);
    double before = 0;
    for (int w = 0; w < nwin; w++) {
        fl_linear_forward(W, u->b, X + (int64_t)w * T * in, yb, T);
        before += fl_recon_loss(o->loss, yb, Y + (int64_t)w * T * out, T, out, NULL);
    }
    rep->loss_before = before / nwin;
    /* G' = X'^T X' and R = X'^T Y */
    float *G = fl_allocf((size_t)in * in), *R = fl_allocf((size_t)ia * out);
    fl_gemm(1, 0, in, in, (int)N, 1.0f, X, in, X, in, 0.0f, G, in);
    fl_gemm(1, 0, in, out, (int)N, 1.0f, X, in, Y, out, 0.0f, R, out);
    double *xs = fl_alloc(sizeof(double) * in);   /* column sums of X: the bias row/column of G' */
    if (hb) {
        for (int64_t n = 0; n < N; n++) for (int j = 0; j < in; j++) xs[j] += X[n * in + j];
        for (int i = 0; i < out; i++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += Y[n * out + i];
            R[(size_t)in * out + i] = (float)s;
        }
    }
    double md = 0;
    for (int j = 0; j < in; j++) md += G[(size_t)j * in + j];
    md /= in;
    const double lam = (o->ls_damp > 0 ? o->ls_damp : 0.01) * md;
    int bad = 0;
    /* Per thread, one row's system sized for every input (kept list, normal
     * matrix, right-hand side): allocated once for the most threads a team
     * can have, as model/ops.c sizes its scratch, and tracked, since
     * ia^2 doubles per thread is this routine's largest buffer. */
    const int nt = omp_get_max_threads();
    int *Ks = fl_alloc(sizeof(int) * (size_t)nt * ia);
    double *As = fl_alloc(sizeof(double) * (size_t)nt * ia * ia), *rhss = fl_alloc(sizeof(double) * (size_t)nt * ia);
    #pragma omp parallel
    {
        const int th = omp_get_thread_num();
        int *K = Ks + (size_t)th * ia;
        double *A = As + (size_t)th * ia * ia, *rhs = rhss + (size_t)th * ia;
        #pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < out; i++) {
            int k = 0;
            for (int j = 0; j < in; j++) if (!W->mask || W->mask[(size_t)i * in + j]) K[k++] = j;
            if (hb) K[k++] = in;   /* the bias as one more always-kept input */
            if (k == 0) continue;
            for (int a = 0; a < k; a++) {
                for (int b = 0; b <= a; b++) {
                    int ja = K[a], jb = K[b];
                    double g = ja == in ? (jb == in ? (double)N : xs[jb]) : jb == in ? xs[ja] : G[(size_t)ja * in + jb];
                    A[(size_t)a * k + b] = A[(size_t)b * k + a] = g;
                }
                A[(size_t)a * k + a] += lam;
                rhs[a] = R[(size_t)K[a] * out + i];
            }
            int info = 0, one = 1;
            dpotrf_("L", &k, A, &k, &info, 1);
            if (info == 0) dpotrs_("L", &k, &one, A, &k, rhs, &k, &info, 1);
            if (info != 0) {
                #pragma omp atomic write
                bad = i + 1;
                continue;
            }
            float *wr = W->w + (size_t)i * in;
            for (int j = 0; j < in; j++) wr[j] = 0.0f;
            for (int a = 0; a < k; a++) {
                if (K[a] == in) u->b->w[i] = (float)rhs[a];
                else wr[K[a]] = (float)rhs[a];
            }
        }
    }
    fl_free(Ks); fl_free(As); fl_free(rhss);
    fl_free(xs);
    fl_free(G); fl_free(R);
    if (bad) { fl_free(yb); return fl_err("%s: least squares failed at row %d (matrix not positive definite)", u->name, bad - 1); }
    double after = 0;
    for (int w = 0; w < nwin; w++) {
        fl_linear_forward(W, u->b, X + (int64_t)w * T * in, yb, T);
        after += fl_recon_loss(o->loss, yb, Y + (int64_t)w * T * out, T, out, NULL);
    }
    fl_free(yb);
    rep->loss_after = after / nwin;
    rep->steps = 1;
    rep->working_bytes = fl_mem_peak() - live0 + fl_unit_param_bytes(m, u);
    rep->peak_bytes = fl_mem_peak();
    rep->seconds = fl_wall_s() - t0;
    return 0;
}
