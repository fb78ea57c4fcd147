/* Perplexity the way the SparseGPT and Wanda evaluations compute it: the
 * token stream is cut into non-overlapping windows of seqlen tokens (a
 * trailing partial window is dropped), each window is run on its own from
 * position 0, every next-token prediction inside a window counts (seqlen-1
 * per window), and ppl = exp(mean NLL over all of them). */
#ifndef FL_PPL_H
#define FL_PPL_H
#include "model/model.h"

typedef struct {
    double nll;        /* mean next-token NLL (nats) */
    double ppl;        /* exp(nll) */
    int64_t tokens;    /* predicted tokens */
    int windows;
} fl_ppl_result;

/* max_windows <= 0: all. batch: windows per forward pass (<= 0: 4).
 * progress: print plain progress lines to stderr when non-zero. */
int fl_eval_ppl(fl_model *m, const int32_t *tok, int64_t n, int seqlen, int max_windows,
                int batch, int progress, fl_ppl_result *out);

#endif
