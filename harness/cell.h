/* One grid cell (docs/ARCHITECTURE.md, "One cell"): load the dense model,
 * draw the calibration windows, build the reconstructor's plan and walk it
 * (each block pruned whole from one pass through it on the prune stream,
 * then the recovery units inside it, each against its dense weights'
 * output, the streams advanced), save the pruned model, evaluate. */
#ifndef FL_CELL_H
#define FL_CELL_H
#include <stddef.h>
#include <stdint.h>
#include "reconstructors/recon.h"
#include "profile.h"
#include "eval/drift.h"

#define FL_MAX_EVALS 16

typedef struct {
    const char *model_dir;
    const char *criterion;     /* "wanda", "sparseswaps:wanda", ... */
    const char *sparsity;      /* "0.5" or "2:4" */
    const char *pattern;       /* "row" (default) or "matrix" */
    const char *reconstruct;   /* a reconstructor spec: "none", "sublayer", "blocks:2", "retrain:masklora:rank=4", ... */
    const char *propagation;   /* "sparse" (default), "dense", "dense-target" */
    const char *prune_stream;  /* "sparse" (default) or "dense": where pruning statistics come from */
    const char *loss;          /* "mse" (default), "nmse", "cosine" */
    const char *trainable;     /* "all" (default) or "bias-norm" */
    float lr, weight_decay;    /* reconstruction AdamW */
    float lr_scale;            /* multiplies the derived default lr (0: unset, 1) */
    const char *optimizer;     /* "adamw" (default) or "sgd": every recovery training loop */
    int epochs, recon_batch, grad_accum;
    int distill;               /* retraining: KL to the dense model instead of cross-entropy */
    const char *calib_file;    /* a token file, one document, or NULL */
    const char *calib_split;   /* or a corpus split */
    int calib_samples, seqlen;
    int retrain_samples;       /* windows a model unit trains on, the calibration windows first (0: calib_samples) */
    uint64_t seed;
    const char *evals[FL_MAX_EVALS];  /* token files or split names; none = the test splits */
    int n_evals;
    int eval_seqlen;           /* 0: the model's context */
    int eval_max_windows;      /* 0: all */
    const char *out_dir;
    const char *cache;         /* corpus cache (resolved) */
    int batch;                 /* windows per forward pass in the pruning pass (0: 8) */
    /* Tests only: called instead of the reconstructor's routine, with the
     * same arguments (the unit, its inputs X and targets Y). */
    int (*recover_override)(const fl_recover_job *j, fl_unit_report *rep);
    int progress;
    int no_model;              /* do not write the pruned model (a grid without --keep-models) */
    const char *drift_windows; /* activation drift windows, an integer >= 0 as text (0: none); settings.c */
    const char *drift_data;    /* their token file, or NULL: sotu-val (eval/drift.h, FL_DRIFT_SEED) */
    /* zero-shot tasks (eval/mc.h) evaluated after perplexity: corpus task
     * names or NAME:FILE; laid out like evals/n_evals (a list setting's
     * count follows its array, settings.c) */
    const char *eval_tasks[FL_MAX_EVALS];
    int n_eval_tasks;
    int eval_task_limit;       /* items per task (0: all) */
    int share;                 /* reuse and store shared work in the cache (harness/share.h): a study's cells */
    const char *structure;     /* "none" (default), "heads", "channels", "layers": structured pruning (harness/structured.h) */
    const char *hidden_distill;/* retraining: "W" or "alone" (reconstructors/hidden.h), NULL: off */
    /* issue 18: weights streamed block by block from the mapped checkpoint
     * (checkpoint.h, fl_model_load_streamed; docs/ARCHITECTURE.md "Streamed
     * weights"), and the dtype the pruned model is saved in (NULL: fp32) */
    int stream;
    const char *save_dtype;
    int no_layer_error;        /* skip the layer-wise error of each linear (NaN in the report) */
} fl_cell_cfg;

typedef struct {
    char name[64];
    double sparsity, err;      /* achieved sparsity; ||XW^T - XW'^T||^2 / ||XW^T||^2 */
} fl_linear_report;

typedef struct {
    double sparsity;           /* over every pruned linear */
    char mask_sha256[65];      /* SHA-256 of every mask in depth order (cell.c, mask_sha256) */
    int n_linears;
    fl_linear_report *lin;
    int n_evals;
    char eval_name[FL_MAX_EVALS][256];
    double ppl[FL_MAX_EVALS], nll[FL_MAX_EVALS];
    int64_t eval_tokens[FL_MAX_EVALS];
    /* profile per phase */
    double secs_calib, secs_stats, secs_prune, secs_recover, secs_eval;
    size_t peak_prune_bytes, peak_recover_bytes, peak_eval_bytes, peak_rss_kb;
    size_t working_bytes;      /* largest recovery working set of any unit */
    int64_t recovery_tokens;   /* training tokens recovery pushed through forward+backward, epochs included:
                                  the largest of the units' fl_unit_report.tokens (each unit passes over the
                                  same windows, so this counts one pass over the data, not one per unit) */
    /* one report per reconstructed unit */
    int n_units, cap_units;
    fl_unit_report *units;
    uint64_t flops;
    fl_prof prof;              /* per phase: wall, CPU, FLOPs, peaks */
    double wall, cpu;          /* the whole cell */
    fl_drift_result drift;     /* after recovery, against the dense model (n = 0: not measured) */
    /* zero-shot accuracy, one per eval-task (NAN where a task has no such figure) */
    int n_tasks;
    char task_name[FL_MAX_EVALS][64];
    int task_items[FL_MAX_EVALS], task_norm[FL_MAX_EVALS];
    double task_acc[FL_MAX_EVALS], task_acc_norm[FL_MAX_EVALS], task_ppl[FL_MAX_EVALS];
    const char *shared_pruning; /* the pruning pass: "off" (no --share), "unshareable" (its masks depend on
                                  recovery), "computed" (and stored for other cells) or "reused" (from the cache) */
    int64_t params, params_dense;   /* parameters of the saved model and of the dense one (structured pruning: fewer) */
    double infer_tok_s, infer_tok_s_dense;   /* forward tokens/s on the evaluation windows, same process */
    size_t infer_peak_bytes, infer_peak_bytes_dense;   /* the same passes' memory: the model's parameters
                                                          and the tracked peak of its forward batches */
    uint64_t spill_bytes;      /* --stream: bytes of blocks written to the spill file */
} fl_cell_result;

int fl_cell_run(const fl_cell_cfg *c, fl_cell_result *r);
void fl_cell_result_free(fl_cell_result *r);

#endif
