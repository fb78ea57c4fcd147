/* The dense model's perplexity on a study's evaluation sets, measured once
 * per (model, evaluation set, eval-windows) before the cells run, the way a
 * cell evaluates (eval/ppl.h: the model's context, 4 windows per batch),
 * and written to OUT/dense.json ({"dense": [{model, eval_set,
 * eval_windows, ppl, nll, tokens}, ...]}: the report's dense reference). With share, each value is also
 * an entry of the cache's shared work (share.h, kind "dense-eval", keyed
 * by the binary, the model's config and weights, the set's tokens, the
 * windows, threads and backend), so a later study reuses it. A model or
 * set that cannot be measured is a line on stdout, not a failure: the
 * cells on it fail with the reason in their rows. */
#ifndef FL_DENSE_EVAL_H
#define FL_DENSE_EVAL_H
#include "grid.h"

int fl_study_dense_eval(const fl_cell_spec *cells, int ncells, const char *cache, int share, const char *json_path);

#endif
