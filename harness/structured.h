/* Structured pruning (issue 15): one step before recovery that removes
 * whole heads (key/value groups), MLP channels or blocks and builds a truly
 * smaller model (tensors of the new shapes, a config that says so). The
 * criteria are plug-ins (criteria/criterion.h, "structured pruning"). */
#ifndef FL_STRUCTURED_H
#define FL_STRUCTURED_H
#include "criteria/criterion.h"
#include "model/model.h"

/* What the builder keeps of a dense model. Blocks may keep different
 * numbers of groups and channels (FLAP's global ratio): the config then
 * carries per-layer sizes (fl_config.layer_kv, layer_ff). comp_o / comp_fc2 [L*d] (dense block index): added to the bias
 * of o / fc2 (created, zero, when the model has none, with the biases
 * HF's config key brings along: llama's attention_bias is q/k/v/o, its
 * mlp_bias gate/up/down; OPT's enable_bias is every linear's). */
typedef struct {
    const uint8_t *keep_layer;   /* [L], NULL: all */
    const uint8_t *keep_kv;      /* [L * n_kv_head], NULL: all */
    const uint8_t *keep_ch;      /* [L * d_ff], NULL: all */
    const float *comp_o, *comp_fc2;
} fl_struct_keep;

/* out: a new model holding the kept structures of src. 0 or -1 with a message. */
int fl_struct_build(const fl_model *src, const fl_struct_keep *k, fl_model *out);

typedef struct {
    fl_structure kind;
    int n, k;                    /* structures per block (blocks for layers), removed (per block; in all with global) */
    int global;                  /* the criterion's global ratio: blocks lost different counts (keep says which) */
    int removed_block[FL_MAX_LAYERS];   /* width structures: how many each dense block lost */
    int64_t params_before, params_after;
    int n_dense_layers;
    int dense_block[FL_MAX_LAYERS];   /* the dense block each kept block was (n_layer of the result) */
    uint8_t *keep;               /* what was kept, 1 a byte: [n_layer * n] per block in depth order, or [n_layer] blocks */
    size_t nkeep;
} fl_struct_report;
void fl_struct_report_free(fl_struct_report *r);

/* Scores and removes: statistics from one pass of the dense model over the
 * calibration windows' embeddings X [nwin*T, d] (tok: their tokens, for
 * layer-ppl's losses), the criterion's choice, the smaller model in out.
 * Checks the criterion removes this structure and the fraction keeps one. */
int fl_struct_prune(fl_model *m, const fl_crit_inst *ci, fl_structure kind, double frac, const float *X, const int32_t *tok,
                    int nwin, int T, int batch, int verbose, fl_model *out, fl_struct_report *rep);

/* The config fl_struct_prune's result will have, from the shapes alone
 * (for the memory prediction, reconstructors/predict.c): every block loses
 * the same count, so the removal's shapes do not depend on the scores; -1
 * with a message for a bad pair or fraction, and for a criterion's global
 * ratio (FLAP's), whose per-block sizes do. */
int fl_struct_config(const fl_config *c, const fl_crit_inst *ci, fl_structure kind, double frac, fl_config *out);

/* The structure a criterion/structure pair is valid for: -1 with one
 * message line if the criterion does not remove this structure (or is a
 * weight criterion given a structure, or the reverse), or the family
 * cannot hold the result (fewer heads for gpt2/opt). */
int fl_struct_check(const fl_criterion *c, fl_structure kind, const fl_config *cfg);

#endif
