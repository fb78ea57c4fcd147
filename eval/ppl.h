/* Perplexity the way the SparseGPT and Wanda evaluations compute it: the
 * token stream is cut into non-overlapping windows of seqlen tokens (a
 * trailing partial window is dropped), each window is run on its own from
 * position 0, every next-token prediction inside a window counts (seqlen-1
 * per window), and ppl = exp(mean NLL over all of them).
 *
 * With a stride s < seqlen the windows overlap (HF's sliding-window
 * perplexity): window k starts at k*s, and only the tokens not already
 * predicted by an earlier window count, each with up to seqlen-1 tokens of
 * context. Windows that would run past the end are dropped. */
#ifndef FL_PPL_H
#define FL_PPL_H
#include "model/model.h"

typedef struct {
    double nll;        /* mean next-token NLL (nats) */
    double ppl;        /* exp(nll) */
    int64_t tokens;    /* predicted tokens */
    int windows;
} fl_ppl_result;

/* max_windows <= 0: all. stride <= 0 or >= seqlen: non-overlapping.
 * batch: windows per forward pass (<= 0: 4).
 * progress: print plain progress lines to stderr when non-zero. */
int fl_eval_ppl(fl_model *m, const int32_t *tok, int64_t n, int seqlen, int stride, int max_windows,
                int batch, int progress, fl_ppl_result *out);

#endif
