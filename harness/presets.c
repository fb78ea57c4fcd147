#include "presets.h"
#include "reconstructors/recon.h"
#include "model/err.h"
#include "model/fileio.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reconstruction learning rates were chosen on `tiny` by sweeps over
 * {1e-4 (retraining only), 3e-4, 1e-3, 3e-3} with wanda at 50%, 64
 * calibration windows, one epoch, batch 2, seed 0, judged on the first 100
 * windows of sotu-val (never on a test split):
 *   matrix      99.73 / 98.54 / 98.10      -> recon_lr 3e-3
 *   sublayer    99.87 / 98.48 / 98.39      -> recon_lr 3e-3
 *   block      100.18 / 98.60 / 98.78      -> recon_lr_blocks 1e-3
 *   blocks:2    99.88 / 98.57 / 98.90
 *   blocks:all  99.48 / 99.13 / 99.74
 *   retrain:full 99.38 (1e-4) / 99.45 / 106.72 / 151.24 -> retrain_lr 1e-4
 * (freelunch study --grid with reconstruct x lr; the retraining sweep is
 * from the first session). Larger units want the smaller step. */

/* The ladder (issue 14): llama-family rungs of 2, 4, 6 and 8 layers whose
 * width grows with depth, so that non-embedding parameters span about 19x
 * (0.37M to 7.1M). `tiny` is the 4-layer rung, unchanged, so every earlier
 * result stays comparable. Every rung shares tiny's tokenizer (a BPE of 4096
 * entries trained on the SOTU train split: the training is deterministic,
 * so each rung's directory gets the same merges), context, batch, data and
 * token budget (1200 steps of 8 x 256 = 2.46M tokens, about 1.1 passes over
 * the 2.20M-token train split). Heads are 32 wide on every rung.
 *
 * Pretraining learning rate, per rung: lr = 3e-3 * 192 / d, i.e. tiny's rate
 * (chosen when tiny was built) scaled by 1/width, the usual rule for Adam on
 * hidden matrices (muP's; a rung twice as wide takes half the step). How it
 * is to be checked on sotu-val: pretrain each rung for its full budget at
 * {0.5, 1, 2} x the rule and keep the one with the lowest validation
 * perplexity (freelunch.json's val_ppl, sotu-val); the rule stands when the
 * middle value wins. That check costs three times the ladder's pretraining
 * and has not been run (docs/ARCHITECTURE.md, "The ladder").
 *
 * Training regime: the budget gives tiny 1.6 tokens per non-embedding
 * parameter, far below real LLMs' 20-2000. The -long variants train the
 * small rungs to at least 20 tokens per non-embedding parameter (repeating
 * the train split; the validation curve every eval_every steps shows any
 * overfitting). tiny-long costs about 13 times tiny's pretraining and is not
 * part of grids/ladder.ini.
 *
 * The reconstruction and retraining rates were swept on tiny (above); the
 * other rungs take tiny's rates scaled by the same 192 / d rule (RECON_AT),
 * unswept. The gpt2-family `tiny-gpt2` preset was removed: it was never
 * trained or checked, and the ladder is llama-family only. */
#define LADDER_LR(d) (3e-3f * 192.0f / (float)(d))
#define RECON_AT(d) .recon_lr = 3e-3f * 192.0f / (float)(d), .recon_lr_blocks = 1e-3f * 192.0f / (float)(d), \
                    .retrain_lr = 1e-4f * 192.0f / (float)(d)
#define LADDER_RECIPE(steps_, d_) .seqlen = 256, .tied = 1, .steps = (steps_), .batch = 8, .warmup = 60, \
    .lr = LADDER_LR(d_), .min_lr_frac = 0.1f, .weight_decay = 0.1f, .clip = 1.0f, .eval_every = 200, .eval_windows = 64, \
    .ckpt_every = 200, .seed = 1, RECON_AT(d_)
const fl_preset FL_PRESETS[] = {
    { .name = "tiny", .desc = "llama family, d=192, 4 layers, GQA 6/2 heads, SwiGLU 512, vocab 4096, context 256",
      .family = FL_LLAMA, .vocab = 4096, .d = 192, .n_layer = 4, .n_head = 6, .n_kv_head = 2, .d_ff = 512,
      .seqlen = 256, .tied = 1,
      .steps = 1200, .batch = 8, .warmup = 60, .lr = 3e-3f, .min_lr_frac = 0.1f, .weight_decay = 0.1f, .clip = 1.0f,
      .eval_every = 200, .eval_windows = 64, .ckpt_every = 200, .seed = 1,
      .recon_lr = 3e-3f, .recon_lr_blocks = 1e-3f, .retrain_lr = 1e-4f },
    { .name = "micro", .desc = "llama family for tests: d=64, 2 layers, 4/2 heads, vocab 512, context 64",
      .family = FL_LLAMA, .vocab = 512, .d = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .d_ff = 128,
      .seqlen = 64, .tied = 1,
      .steps = 60, .batch = 8, .warmup = 6, .lr = 5e-3f, .min_lr_frac = 0.1f, .weight_decay = 0.1f, .clip = 1.0f,
      .eval_every = 30, .eval_windows = 16, .ckpt_every = 20, .seed = 1,
      .recon_lr = 3e-3f, .recon_lr_blocks = 3e-3f, .retrain_lr = 1e-4f },   /* not tuned */
    /* micro's deeper twin: tests/cli_ladder.sh runs a two-rung ladder of them end to end */
    { .name = "micro-4", .desc = "llama family for tests: micro with 4 layers",
      .family = FL_LLAMA, .vocab = 512, .d = 64, .n_layer = 4, .n_head = 4, .n_kv_head = 2, .d_ff = 128,
      .seqlen = 64, .tied = 1,
      .steps = 60, .batch = 8, .warmup = 6, .lr = 5e-3f, .min_lr_frac = 0.1f, .weight_decay = 0.1f, .clip = 1.0f,
      .eval_every = 30, .eval_windows = 16, .ckpt_every = 20, .seed = 1,
      .recon_lr = 3e-3f, .recon_lr_blocks = 3e-3f, .retrain_lr = 1e-4f },   /* not tuned */
    { .name = "ladder-2", .desc = "ladder rung: llama family, d=128, 2 layers, GQA 4/2 heads, SwiGLU 352, vocab 4096, context 256",
      .family = FL_LLAMA, .vocab = 4096, .d = 128, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .d_ff = 352,
      LADDER_RECIPE(1200, 128) },
    { .name = "ladder-6", .desc = "ladder rung: llama family, d=256, 6 layers, GQA 8/2 heads, SwiGLU 688, vocab 4096, context 256",
      .family = FL_LLAMA, .vocab = 4096, .d = 256, .n_layer = 6, .n_head = 8, .n_kv_head = 2, .d_ff = 688,
      LADDER_RECIPE(1200, 256) },
    { .name = "ladder-8", .desc = "ladder rung: llama family, d=288, 8 layers, GQA 9/3 heads, SwiGLU 768, vocab 4096, context 256",
      .family = FL_LLAMA, .vocab = 4096, .d = 288, .n_layer = 8, .n_head = 9, .n_kv_head = 3, .d_ff = 768,
      LADDER_RECIPE(1200, 288) },
    /* 3700 x 2048 = 7.58M tokens = 20.5 per non-embedding parameter (3.4 passes over the split) */
    { .name = "ladder-2-long", .desc = "ladder-2 trained to 20 tokens per non-embedding parameter",
      .family = FL_LLAMA, .vocab = 4096, .d = 128, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .d_ff = 352,
      LADDER_RECIPE(3700, 128) },
    /* 15400 x 2048 = 31.5M tokens = 20.0 per non-embedding parameter (14 passes) */
    { .name = "tiny-long", .desc = "tiny trained to 20 tokens per non-embedding parameter",
      .family = FL_LLAMA, .vocab = 4096, .d = 192, .n_layer = 4, .n_head = 6, .n_kv_head = 2, .d_ff = 512,
      LADDER_RECIPE(15400, 192) },
};
const int FL_N_PRESETS = sizeof FL_PRESETS / sizeof *FL_PRESETS;

float fl_preset_lr(const fl_preset *p, const char *reconstruct) {
    /* the reconstructor says which of the preset's rates applies; a bad
     * spec gets the local rate here and its error from the cell */
    fl_recon_inst in;
    fl_lr_class k = FL_LR_LOCAL;
    if (fl_recon_open(reconstruct ? reconstruct : "none", &in) == 0) {
        k = in.r->lr_class;
        fl_recon_close(&in);
    }
    fl_err_clear();
    if (!p) return k == FL_LR_RETRAIN ? 1e-5f : 1e-3f;   /* HF models (OPT, Qwen, ...): the paper's rates */
    return k == FL_LR_RETRAIN ? p->retrain_lr : k == FL_LR_BLOCKS ? p->recon_lr_blocks : p->recon_lr;
}

const fl_preset *fl_preset_find(const char *name) {
    for (int i = 0; i < FL_N_PRESETS; i++)
        if (!strcmp(FL_PRESETS[i].name, name)) return &FL_PRESETS[i];
    return NULL;
}

void fl_preset_config(const fl_preset *p, fl_config *c) {
    memset(c, 0, sizeof *c);
    fl_config_family_defaults(c, p->family);
    c->vocab = p->vocab; c->d = p->d; c->n_layer = p->n_layer; c->n_head = p->n_head;
    c->n_kv_head = p->n_kv_head; c->head_dim = p->d / p->n_head; c->d_ff = p->d_ff;
    c->max_pos = p->seqlen; c->tied = p->tied;
}

fl_adamw_cfg fl_preset_adamw(const fl_preset *p, int steps, double lr_scale) {
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = (float)(p->lr * lr_scale); oc.warmup_steps = p->warmup; oc.total_steps = steps; oc.sched = FL_SCHED_COSINE;
    oc.min_lr_frac = p->min_lr_frac; oc.weight_decay = p->weight_decay; oc.clip_norm = p->clip;
    oc.beta2 = 0.95f;
    return oc;
}

static int whole_count(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 2147483648.0 && v->valuedouble == floor(v->valuedouble);
}

int fl_pretrain_record_read(const char *dir, fl_pretrain_record *out) {
    out->preset = NULL;
    out->train_tokens = NAN;
    char path[4200], *text = NULL;
    snprintf(path, sizeof path, "%.4000s/freelunch.json", dir);
    cJSON *j = fl_read_file(path, &text, NULL) == 0 ? cJSON_Parse(text) : NULL;
    free(text);
    fl_err_clear();
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "kind");
    int rec = cJSON_IsString(k) && !strcmp(k->valuestring, "pretrained");
    if (rec) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "preset"), *st = cJSON_GetObjectItemCaseSensitive(j, "steps"),
                    *b = cJSON_GetObjectItemCaseSensitive(j, "batch"), *T = cJSON_GetObjectItemCaseSensitive(j, "seqlen");
        if (cJSON_IsString(p)) out->preset = fl_preset_find(p->valuestring);
        if (whole_count(st) && whole_count(b) && whole_count(T))
            out->train_tokens = st->valuedouble * b->valuedouble * T->valuedouble;
    }
    cJSON_Delete(j);
    return rec ? 0 : -1;
}

const fl_preset *fl_preset_of_model(const char *dir) {
    fl_pretrain_record r;
    fl_pretrain_record_read(dir, &r);
    return r.preset;
}

int64_t fl_config_nonemb_params(const fl_config *c) {
    /* the token embedding, an untied LM head and learned positions are the
     * embedding parameters (the scaling-law convention); the rest, blocks and
     * final norm, is the model's size on the ladder's axis */
    int64_t emb = (int64_t)c->vocab * c->d * (c->tied ? 1 : 2);
    if (c->learned_pos) emb += ((int64_t)c->max_pos + c->pos_offset) * c->d;
    return fl_config_num_params(c) - emb;
}

int64_t fl_preset_params(const fl_preset *p, int64_t *nonemb) {
    fl_config c;
    fl_preset_config(p, &c);
    if (nonemb) *nonemb = fl_config_nonemb_params(&c);
    return fl_config_num_params(&c);
}

int64_t fl_preset_tokens(const fl_preset *p) { return (int64_t)p->steps * p->batch * p->seqlen; }
