/* Presets: freelunch's own small models, trained from scratch on the SOTU
 * train split by `freelunch pretrain`. A preset fixes the architecture, the
 * tokenizer's vocabulary and the pretraining recipe. */
#ifndef FL_PRESETS_H
#define FL_PRESETS_H
#include "model/model.h"
#include "model/adamw.h"

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
     * without --lr): matrix and sublayer units, block-sized units (block,
     * blocks:K, blocks:all), and the retraining baselines */
    float recon_lr, recon_lr_blocks, retrain_lr;
} fl_preset;

extern const fl_preset FL_PRESETS[];
extern const int FL_N_PRESETS;
const fl_preset *fl_preset_find(const char *name);
/* What `freelunch pretrain` recorded in a model directory's freelunch.json:
 * the preset it was trained from (NULL when none, or not one of ours) and
 * the tokens it trained on, steps x batch x seqlen (repetitions of the
 * split included; NAN when not recorded). The file is input: only a
 * "pretrained" record with positive whole counts below 2^31 (as pretrain
 * writes them) is taken. Returns 0 when such a record was read, -1 when
 * the directory has none (an HF model) or it cannot be read; fl_err is
 * left clear either way. */
typedef struct {
    const fl_preset *preset;
    double train_tokens;
} fl_pretrain_record;
int fl_pretrain_record_read(const char *dir, fl_pretrain_record *out);
/* The preset a model directory was pretrained from, or NULL for any other
 * model (fl_pretrain_record_read's preset). */
const fl_preset *fl_preset_of_model(const char *dir);
/* The default learning rate of a reconstructor ("sublayer", "blocks:2",
 * "retrain:full", ...) for a model of preset p, or for any other model
 * (p NULL): 1e-3 local, the paper's 1e-5 for retraining. */
float fl_preset_lr(const fl_preset *p, const char *reconstruct);
/* The model config of a preset (context = its seqlen). */
void fl_preset_config(const fl_preset *p, fl_config *c);
/* The AdamW of P's pretraining over STEPS steps at LR_SCALE x its peak
 * rate: warm-up, cosine decay to its floor, weight decay on matrices,
 * gradient clipping, beta2 0.95 (`freelunch pretrain`, and the
 * pretraining benchmark's step). */
fl_adamw_cfg fl_preset_adamw(const fl_preset *p, int steps, double lr_scale);
/* A llama-family preset's parameter count; *nonemb (if not NULL) gets the
 * count without the token embedding (and LM head): the ladder's size axis. */
int64_t fl_preset_params(const fl_preset *p, int64_t *nonemb);
/* Any model's parameters without token embedding, untied head and learned
 * positions (an HF directory's config as much as a preset's). */
int64_t fl_config_nonemb_params(const fl_config *c);
/* Tokens its pretraining pushes through the model: steps x batch x seqlen. */
int64_t fl_preset_tokens(const fl_preset *p);

#endif
