/* The cell settings table; see settings.h. */
#include "settings.h"
#include "criteria/criterion.h"
#include "datasets/corpus.h"
#include "eval/mc_corpus.h"
#include "model/err.h"
#include "model/safetensors.h"
#include "reconstructors/recon.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- validators: each asks the registry that will interpret the value ---- */

/* opened and closed: its options and warm start are checked too */
static int check_criterion(const char *v) {
    fl_crit_inst ci;
    int rc = fl_criterion_open(v, &ci);
    fl_criterion_close(&ci);
    return rc;
}

static int check_reconstruct(const char *v) { return fl_recon_check(v); }

static int check_sparsity(const char *v) {
    fl_pattern p;
    return fl_pattern_parse(v, "row", &p);
}

/* A pattern shapes a fractional sparsity; any valid fraction asks for it. */
static int check_pattern(const char *v) {
    fl_pattern p;
    return fl_pattern_parse("0.5", v, &p);
}

static int check_propagation(const char *v) {
    fl_prop p;
    return fl_prop_parse(v, &p);
}

static int check_prune_stream(const char *v) {
    return strcmp(v, "sparse") && strcmp(v, "dense") ? fl_err("unknown prune stream '%s' (valid: sparse, dense)", v) : 0;
}

static int check_loss(const char *v) {
    fl_loss l;
    return fl_loss_parse(v, &l);
}

static int check_optimizer(const char *v) {
    fl_optim o;
    return fl_optim_parse(v, &o);
}

static int check_trainable(const char *v) {
    return strcmp(v, "all") && strcmp(v, "bias-norm") ? fl_err("unknown trainable '%s' (valid: all, bias-norm)", v) : 0;
}

static int check_split(const char *v) {
    for (int i = 0; FL_SPLITS[i]; i++)
        if (!strcmp(FL_SPLITS[i], v)) return 0;
    char all[256] = "";
    for (int i = 0; FL_SPLITS[i]; i++) snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", FL_SPLITS[i]);
    return fl_err("unknown split '%s' (splits: %s)", v, all);
}

/* A count where 0 is a value (off), kept as text: in fl_cell_cfg a number 0 means unset. */
static int check_count(const char *v) { return fl_parse_int(v, 0, FL_INT_MAX, NULL); }

static int check_backend(const char *v) {
    return strcmp(v, "auto") && strcmp(v, "openblas") && strcmp(v, "onednn")
               ? fl_err("unknown backend '%s' (valid: auto, openblas, onednn)", v) : 0;
}

static int check_save_dtype(const char *v) {
    fl_dtype d;
    return fl_dtype_parse(v, &d);
}

static int check_structure(const char *v) {
    fl_structure k;
    return fl_structure_parse(v, &k);
}

static int check_hidden(const char *v) { return fl_hidden_distill_parse(v, NULL, NULL); }

int fl_hidden_distill_parse(const char *v, float *weight, int *alone) {
    double w = 0;
    if (v && !strcmp(v, "alone")) w = 1;
    else if (!v || fl_parse_num(v, 0, FL_NUM_MAX, &w) != 0 || !(w > 0))
        return fl_err("hidden-distill '%.64s' is not a weight > 0 or 'alone'", v ? v : "");
    if (weight) *weight = (float)w;
    if (alone) *alone = v && !strcmp(v, "alone");
    return 0;
}

/* ---- the table ------------------------------------------------------------ */

#define F(field) offsetof(fl_cell_cfg, field)
#define ALL FL_FOR_ALL
#define REC FL_FOR_RECOVERY
#define DIS FL_FOR_DISTILL
#define RET FL_FOR_RETRAIN

/* The rows' order is the canonical order of a cell's id (grid.c) and of the
 * settings columns of results.csv: append only. Settings of the recovery
 * (propagation ... weight-decay, optimizer) are written for cells that reconstruct or
 * retrain, distill for the reconstructors that take it (FL_REC_DISTILL),
 * retrain-samples for the cells whose plan trains a model unit (the
 * retraining baselines; other cells ignore it and do not record it). For an N:M sparsity
 * the pattern is implied by the sparsity, so fl_cell_run writes none. */
const fl_setting FL_SETTINGS[] = {
    { "model", FL_SET_STR, NULL, 0, NULL, NULL, "DIR", "the dense model (a HF directory)", "model", "model", ALL, F(model_dir) },
    { "criterion", FL_SET_STR, NULL, 0, check_criterion, NULL, "C",
      "NAME or NAME:key=value,... or NAME:v1:v2 (e.g. ria:alpha=1,\n"
      "sparseswaps:wanda:100); see 'freelunch list'",
      "criterion", "criterion", ALL, F(criterion) },
    { "sparsity", FL_SET_STR, NULL, 0, check_sparsity, NULL, "S", "fraction pruned in (0,1), or N:M (N kept of every M inputs)",
      "sparsity", "sparsity", ALL, F(sparsity) },
    { "pattern", FL_SET_STR, "row", 0, check_pattern, NULL, "P",
      "row (each row loses the same fraction) or matrix; N:M implies its own", "pattern", "pattern", ALL, F(pattern) },
    { "reconstruct", FL_SET_STR, "none", 0, check_reconstruct, NULL, "R",
      "none, matrix, matrix-ls, sublayer, block, blocks:K, blocks:all, retrain:full,\n"
      "retrain:bias-norm, retrain:lora, retrain:masklora[:rank=R,alpha=A]", "reconstruct", "reconstruct", ALL, F(reconstruct) },
    { "propagation", FL_SET_STR, "sparse", 0, check_propagation, NULL, "M", "sparse, dense or dense-target: the stream each unit learns from",
      "propagation", "propagation", REC, F(propagation) },
    { "loss", FL_SET_STR, "mse", 0, check_loss, NULL, "L",
      "mse, nmse (sum (y-t)^2 / sum t^2 over a batch; alias mse_normalized, the\n"
      "paper's code's name, which it never defines) or cosine", "loss", "loss", REC, F(loss) },
    { "trainable", FL_SET_STR, "all", 0, check_trainable, NULL, "T", "all or bias-norm", "trainable", "trainable", REC, F(trainable) },
    { "lr", FL_SET_FLOAT, NULL, 1e-30, NULL, NULL, "X",
      "learning rate (default: the preset's tuned value for freelunch's\n"
      "own models: tiny 3e-3 matrix/sublayer, 1e-3 block and larger, 1e-4\n"
      "retraining; else 1e-3 local, 1e-5 retraining)", "lr", "lr", REC, F(lr) },
    { "epochs", FL_SET_INT, "1", 1, NULL, NULL, "E", "passes over the calibration windows", "epochs", "epochs", REC, F(epochs) },
    { "batch-size", FL_SET_INT, "2", 1, NULL, NULL, "B", "windows per step", "batch_size", "batch_size", REC, F(recon_batch) },
    { "grad-accum", FL_SET_INT, "1", 1, NULL, NULL, "K", "micro-batches per optimiser step", "grad_accum", "grad_accum", REC, F(grad_accum) },
    { "weight-decay", FL_SET_FLOAT, "0", 0, NULL, NULL, "W", "weight decay of matrices (AdamW: decoupled; SGD: L2 in the gradient)", "weight_decay", "weight_decay", REC, F(weight_decay) },
    { "distill", FL_SET_FLAG, "false", 0, NULL, NULL, "", "retraining: KL to the dense model's next-token distribution",
      "distill", "distill", DIS, F(distill) },
    { "calib", FL_SET_STR, NULL, 0, NULL, "calib-split", "FILE.bin", "calibration token file (one document)", "calib", "calib", ALL,
      F(calib_file) },
    { "calib-split", FL_SET_STR, "sotu-train", 0, check_split, "calib", "S", "calibration split, tokenized with the model's tokenizer",
      "calib", "calib", ALL, F(calib_split) },
    { "calib-samples", FL_SET_INT, "128", 1, NULL, NULL, "N", "calibration windows", "calib_samples", "calib_samples", ALL,
      F(calib_samples) },
    { "seqlen", FL_SET_INT, NULL, 2, NULL, NULL, "T", "window length (default: the model's context)", "seqlen", "seqlen", ALL, F(seqlen) },
    { "seed", FL_SET_SEED, "0", 0, NULL, NULL, "S", "calibration draw and random criteria", "seed", "seed", ALL, F(seed) },
    { "eval", FL_SET_LIST, NULL, 0, NULL, NULL, "E", "token file or split; repeatable (default: the test splits)", NULL, NULL, ALL,
      F(evals) },
    { "eval-windows", FL_SET_INT, NULL, 1, NULL, NULL, "K", "evaluate at most K windows per set (default: all)", "eval_windows",
      "eval_windows", ALL, F(eval_max_windows) },
    /* where a cell runs: the profile in freelunch.json records them */
    { "backend", FL_SET_COMMON, NULL, 0, check_backend, NULL, "NAME", "GEMM backend", NULL, "backend", ALL, 0 },
    { "threads", FL_SET_COMMON, NULL, 1, NULL, NULL, "N", "threads", NULL, "threads", ALL, 0 },
    /* added after the table: appended, so earlier cells keep their ids */
    { "prune-stream", FL_SET_STR, "sparse", 0, check_prune_stream, NULL, "M",
      "sparse or dense: the activations each block's pruning statistics come\n"
      "from (the model pruned and recovered so far, or the dense model: the\n"
      "same masks for every reconstructor)", "prune_stream", "prune_stream", ALL, F(prune_stream) },
    { "optimizer", FL_SET_STR, "adamw", 0, check_optimizer, NULL, "O",
      "adamw or sgd (momentum 0.9, as the paper's code): every training loop of\n"
      "recovery, local, retraining and adapters", "optimizer", "optimizer", REC, F(optimizer) },
    /* issue 13: the retraining baselines on a budget of their own */
    { "retrain-samples", FL_SET_INT, NULL, 1, NULL, NULL, "N",
      "retraining baselines: windows they train on, drawn with the seed from the\n"
      "calibration split, the calibration windows first (default: calib-samples)",
      "retrain_samples", "retrain_samples", RET, F(retrain_samples) },
    /* activation drift after recovery (eval/drift.h); the windows' seed is
     * fixed, so every cell of a grid measures on the same tokens */
    { "drift-windows", FL_SET_STR, "8", 0, check_count, NULL, "K",
      "activation drift against the dense model on K windows of --seqlen tokens\n"
      "(0: not measured)", "drift_windows", "drift_windows", ALL, F(drift_windows) },
    { "drift-data", FL_SET_STR, NULL, 0, NULL, NULL, "FILE.bin",
      "drift token file (one document; default: the --calib file if given,\n"
      "else sotu-val; a fixed draw)", "drift_data", "drift_data", ALL, F(drift_data) },
    /* a [tune] list relative to each reconstructor's own preset learning
     * rate (the default study's: issue 19), where one absolute list would
     * waste sub-cells on rates far from a reconstructor's preset */
    { "lr-scale", FL_SET_FLOAT, NULL, 1e-30, NULL, "lr", "F",
      "multiplies the default learning rate (the preset's, see --lr); cannot\n"
      "be given with --lr (e.g. a [tune] list 0.3333, 1, 3 around the preset)", "lr_scale", "lr_scale", REC, F(lr_scale) },
    /* issue 17: zero-shot accuracy beside perplexity (eval/mc.h) */
    { "eval-task", FL_SET_LIST, NULL, 0, fl_mc_spec_check, NULL, "T",
      "zero-shot task after perplexity: lambada-sotu, cloze-sotu or NAME:FILE\n"
      "(freelunch eval --help); repeatable (default: none)", NULL, NULL, ALL, F(eval_tasks) },
    { "eval-task-limit", FL_SET_INT, NULL, 1, NULL, NULL, "K", "score only the first K items of each --eval-task (default: all)",
      "eval_task_limit", "eval_task_limit", ALL, F(eval_task_limit) },
    /* issue 15: structured pruning */
    { "structure", FL_SET_STR, "none", 0, check_structure, NULL, "S",
      "none, heads, channels or layers: remove whole key/value head groups, MLP\n"
      "channels or blocks with a structured criterion (magnitude-sp, wanda-sp,\n"
      "flap; block-influence, angular, layer-ppl); --sparsity is then the\n"
      "fraction of them removed and the saved model is smaller", "structure", "structure", ALL, F(structure) },
    { "hidden-distill", FL_SET_STR, NULL, 0, check_hidden, NULL, "W|alone",
      "retraining: MSE between the model's and the dense model's hidden state\n"
      "after every block (across removed blocks, at the dense span's end), with\n"
      "weight W added to the next-token loss, or alone (default: off)",
      "hidden_distill", "hidden_distill", DIS, F(hidden_distill) },
    /* issue 18: the checkpoint streamed block by block, saved in a dtype */
    { "stream", FL_SET_FLAG, "false", 0, NULL, NULL, "",
      "keep the checkpoint memory-mapped and convert one block at a time to\n"
      "fp32 (bf16/fp16/fp32 files), spilling pruned blocks to a temporary\n"
      "file: memory grows with a block, not the model (README \"Streamed\n"
      "weights\"; retraining and --eval-task hold every block; drift and\n"
      "inference speed are not measured; no --structure)", "stream", "stream", ALL, F(stream) },
    { "save-dtype", FL_SET_STR, "fp32", 0, check_save_dtype, NULL, "D",
      "fp32, bf16 or fp16: the dtype of the saved model, rounded to nearest\n"
      "even; pruned zeros stay zeros and no kept weight becomes 0 (masks\n"
      "exactly preserved)", "save_dtype", "save_dtype", ALL, F(save_dtype) },
};
const int FL_NSETTINGS = (int)(sizeof FL_SETTINGS / sizeof *FL_SETTINGS);

#undef F
#undef ALL
#undef REC
#undef DIS
#undef RET

const fl_setting *fl_setting_find(const char *key) {
    for (int i = 0; i < FL_NSETTINGS; i++)
        if (!strcmp(FL_SETTINGS[i].key, key)) return &FL_SETTINGS[i];
    return NULL;
}

const char *fl_setting_def(const char *key) {
    const fl_setting *s = fl_setting_find(key);
    return s ? s->def : NULL;
}

int fl_setting_true(const char *v) { return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"); }

/* ---- numbers ---------------------------------------------------------------- */

static int all_digits(const char **p) {
    const char *s = *p;
    while (isdigit((unsigned char)**p)) (*p)++;
    return (int)(*p - s);
}

int fl_parse_int(const char *v, long long lo, long long hi, long long *out) {
    const char *p = v + (*v == '-');
    int n = all_digits(&p);
    if (n && !*p) {
        /* ERANGE: beyond long long, so beyond any bound we take */
        errno = 0;
        long long x = strtoll(v, NULL, 10);
        if (errno != ERANGE && x >= lo && x <= hi) {
            if (out) *out = x;
            return 0;
        }
    }
    return fl_err("'%s' is not an integer in [%lld, %lld]", v, lo, hi);
}

int fl_parse_num(const char *v, double lo, double hi, double *out) {
    /* the grammar first: strtod alone also takes hex, inf, nan and leading spaces */
    const char *p = v + (*v == '-');
    int n = all_digits(&p);
    if (*p == '.') { p++; n += all_digits(&p); }
    int ok = n > 0;
    if (ok && (*p == 'e' || *p == 'E')) {
        p++;
        p += *p == '-' || *p == '+';
        ok = all_digits(&p) > 0;
    }
    if (ok && !*p) {
        double x = strtod(v, NULL);   /* an overflow is inf, outside every range; an underflow is ~0 */
        if (isfinite(x) && x >= lo && x <= hi) {
            if (out) *out = x;
            return 0;
        }
    }
    return fl_err("'%s' is not a number in [%g, %g]", v, lo, hi);
}

/* threads is an integer although it has no fl_cell_cfg field */
static int is_integer(const fl_setting *s) {
    return s->type == FL_SET_INT || s->type == FL_SET_SEED || (s->type == FL_SET_COMMON && !s->check);
}

/* A numeric setting's value, parsed with its bounds: integers into *i, reals into *x. */
static int setting_number(const fl_setting *s, const char *v, long long *i, double *x) {
    if (is_integer(s)) return fl_parse_int(v, (long long)s->lo, FL_INT_MAX, i);
    return fl_parse_num(v, s->lo, FL_NUM_MAX, x);
}

int fl_setting_check(const fl_setting *s, const char *v) {
    if (s->type == FL_SET_FLAG)
        return fl_setting_true(v) || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") ? 0
                                                                                                : fl_err("'%s' is not true or false", v);
    long long i;
    double x;
    if (s->type == FL_SET_FLOAT || is_integer(s)) return setting_number(s, v, &i, &x);
    return s->check ? s->check(v) : 0;
}

/* A list setting's field is an array of FL_MAX_EVALS strings followed by
 * its int count (evals/n_evals, eval_tasks/n_eval_tasks). */
_Static_assert(offsetof(fl_cell_cfg, n_evals) == offsetof(fl_cell_cfg, evals) + sizeof(const char *) * FL_MAX_EVALS,
               "a list's count follows its array");
_Static_assert(offsetof(fl_cell_cfg, n_eval_tasks) == offsetof(fl_cell_cfg, eval_tasks) + sizeof(const char *) * FL_MAX_EVALS,
               "a list's count follows its array");
static int *list_count(char *field) { return (int *)(field + sizeof(const char *) * FL_MAX_EVALS); }

int fl_setting_set(const fl_setting *s, const char *v, fl_cell_cfg *c) {
    char *field = (char *)c + s->off;
    if (s->type == FL_SET_FLAG && !v) { *(int *)field = 1; return 0; }
    if (s->type == FL_SET_COMMON) return fl_err("--%s is not a cell setting", s->key);
    if (s->type != FL_SET_STR && s->type != FL_SET_LIST && fl_setting_check(s, v) != 0) return -1;
    long long i = 0;
    double x = 0;
    if (s->type == FL_SET_INT || s->type == FL_SET_FLOAT || s->type == FL_SET_SEED) setting_number(s, v, &i, &x);
    /* the casts below are of values already within FL_INT_MAX / FL_NUM_MAX */
    switch (s->type) {
    case FL_SET_STR: *(const char **)field = v; break;
    case FL_SET_INT: *(int *)field = (int)i; break;
    case FL_SET_FLOAT: *(float *)field = (float)x; break;   /* as a double, then rounded: like the CLI always did */
    case FL_SET_SEED: *(uint64_t *)field = (uint64_t)i; break;
    case FL_SET_FLAG: *(int *)field = fl_setting_true(v); break;
    case FL_SET_LIST: {
        const char **arr = (const char **)field;
        int *cnt = list_count(field);
        if (*cnt == FL_MAX_EVALS) return fl_err("too many --%s values (at most %d)", s->key, FL_MAX_EVALS);
        arr[(*cnt)++] = v;
        break;
    }
    case FL_SET_COMMON: break;
    }
    return 0;
}

static int is_unset(const fl_setting *s, const fl_cell_cfg *c) {
    const char *field = (const char *)c + s->off;
    switch (s->type) {
    case FL_SET_STR: return !*(const char *const *)field;
    case FL_SET_INT: case FL_SET_FLAG: return !*(const int *)field;
    case FL_SET_FLOAT: return *(const float *)field == 0.0f;
    case FL_SET_SEED: return !*(const uint64_t *)field;
    case FL_SET_LIST: return !*list_count((char *)field);
    case FL_SET_COMMON: return 0;
    }
    return 0;
}

int fl_settings_exclusive(const fl_cell_cfg *c) {
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        if (s->excl && !is_unset(s, c) && !is_unset(fl_setting_find(s->excl), c))
            return fl_err("give --%s or --%s, not both", s->key, s->excl);
    }
    return 0;
}

void fl_settings_defaults(fl_cell_cfg *c) {
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        if (!s->def || s->type == FL_SET_COMMON || !is_unset(s, c)) continue;
        if (s->excl && !is_unset(fl_setting_find(s->excl), c)) continue;   /* the other one was given */
        fl_setting_set(s, s->def, c);   /* the defaults are static strings: keeping the pointer is safe */
    }
}

void fl_settings_help(FILE *f) {
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        if (s->type == FL_SET_COMMON) continue;
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", s->key, *s->arg ? " " : "", s->arg);
        fprintf(f, "  %-17s ", left);
        for (const char *p = s->help; *p; p++) {
            fputc(*p, f);
            if (*p == '\n') fprintf(f, "%20s", "");
        }
        if (s->def && s->type != FL_SET_FLAG) fprintf(f, " (default %s)", s->def);
        fputc('\n', f);
    }
}

void fl_settings_to_json(const fl_cell_cfg *c, int scope, cJSON *obj) {
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        if (!s->json || !(s->scope & scope)) continue;
        const char *field = (const char *)c + s->off;
        switch (s->type) {
        case FL_SET_STR:
            if (*(const char *const *)field) cJSON_AddStringToObject(obj, s->json, *(const char *const *)field);
            break;
        case FL_SET_INT: cJSON_AddNumberToObject(obj, s->json, *(const int *)field); break;
        case FL_SET_FLOAT:   /* 0 without a default is unset (lr-scale): not written */
            if (*(const float *)field != 0 || s->def) cJSON_AddNumberToObject(obj, s->json, *(const float *)field);
            break;
        case FL_SET_SEED: cJSON_AddNumberToObject(obj, s->json, (double)*(const uint64_t *)field); break;
        case FL_SET_FLAG: cJSON_AddBoolToObject(obj, s->json, *(const int *)field); break;
        case FL_SET_LIST: case FL_SET_COMMON: break;
        }
    }
}
