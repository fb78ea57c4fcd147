/* The shared training loop; see train.h. */
#include "train.h"
#include "err.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void fl_shuffle(int *perm, int n, uint64_t (*rng)(uint64_t *), uint64_t *state) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng(state) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int fl_train_steps(int nwin, int batch, int epochs, int accum) {
    const int micro = (nwin + batch - 1) / batch * epochs;
    return (micro + accum - 1) / accum;
}

int fl_train_loop(const fl_train_spec *s, int *steps, int *diverged) {
    const int micro = (s->nwin + s->batch - 1) / s->batch * s->epochs, total = fl_train_steps(s->nwin, s->batch, s->epochs, s->accum);
    int *perm = malloc(sizeof(int) * (size_t)s->nwin);
    if (!perm) return fl_err("%s: out of memory", s->what);
    for (int i = 0; i < s->nwin; i++) perm[i] = i;
    uint64_t state = s->state;
    int rc = 0, mb = 0, t = 0, tty = s->label && isatty(2);
    *diverged = 0;
    for (int ep = 0; ep < s->epochs && rc == 0; ep++) {
        fl_shuffle(perm, s->nwin, s->rng, &state);
        for (int w0 = 0; w0 < s->nwin && rc == 0; w0 += s->batch) {
            const int B = s->nwin - w0 < s->batch ? s->nwin - w0 : s->batch;
            double loss;
            if ((rc = s->forward(s->ctx, perm + w0, B, &loss)) != 0) break;
            if (!isfinite(loss)) {
                *diverged = 1;
                rc = fl_err("%s diverged at step %d (loss %g)", s->what, t + 1, loss);
                break;
            }
            if ((rc = s->backward(s->ctx, B)) != 0) break;
            if (++mb % s->accum == 0 || mb == micro) { s->step(s->ctx, s->accum); t++; }
            if (tty) { fprintf(stderr, "\r  %-22s step %d/%d loss %.5g   ", s->label, t, total, loss); fflush(stderr); }
        }
    }
    if (tty) fprintf(stderr, "\r%*s\r", 70, "");
    *steps = t;
    free(perm);
    return rc;
}
