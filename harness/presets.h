/* Presets: freelunch's own small models, trained from scratch on the SOTU
 * train split by `freelunch pretrain`. A preset fixes the architecture, the
 * tokenizer's vocabulary and the pretraining recipe. */
#ifndef FL_PRESETS_H
#define FL_PRESETS_H
#include "model/model.h"

typedef struct {
    const char *name, *desc;
    fl_family family;
    int vocab, d, n_layer, n_head, n_kv_head, d_ff, seqlen;
    int tied;
    /* pretraining recipe */
    int steps, batch, warmup;
    float lr, min_lr_frac, weight_decay, clip;
    int eval_every, eval_windows, ckpt_every;
    uint64_t seed;
    /* reconstruction defaults for models of this preset (freelunch prune
     * without --lr): local units (AdamW) and the retraining baselines */
    float recon_lr, retrain_lr;
} fl_preset;

extern const fl_preset FL_PRESETS[];
extern const int FL_N_PRESETS;
const fl_preset *fl_preset_find(const char *name);
/* The preset a model directory was pretrained from (its freelunch.json),
 * or NULL for any other model. */
const fl_preset *fl_preset_of_model(const char *dir);
/* The model config of a preset (context = its seqlen). */
void fl_preset_config(const fl_preset *p, fl_config *c);

#endif
