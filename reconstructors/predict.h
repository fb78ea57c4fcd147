/* The shapes a memory prediction counts with, and the counts of the
 * routines several reconstructors share (predict.c). A reconstructor's
 * predict() gives the bytes of one unit; fl_recon_predict walks the plan
 * and adds what the cell holds meanwhile. Sizes are in elements unless a
 * name says bytes: b = min(batch, nwin) windows per optimiser batch, N = b*T
 * tokens, d hidden, qd = heads*hd, kvd = kv_heads*hd, F ffn, V vocab, nt =
 * OpenMP threads (the kernels' per-thread scratch). */
#ifndef FL_PREDICT_H
#define FL_PREDICT_H
#include "recon.h"

struct fl_shapes {
    const fl_config *c;
    int64_t b, T, N, d, qd, kvd, F, V, nt;
    int swiglu;
    int64_t nwin;   /* the windows the unit passes over (a model unit: --retrain-samples) */
};

/* GEMM FLOPs (2*M*N*K per call, as model/gemm.c counts them) of a forward
 * (bwd 0) or backward (bwd 1) over sublayers [s0, s1), with the head when
 * head, over W windows of s->T tokens issued in nb calls. train_w: the
 * weight gradients are formed (the linears', and the head's when head);
 * adapter 0 none, 1 LoRA, 2 MaskLoRA of this rank on every block linear
 * (MaskLoRA composes W_eff at every call, so nb matters). */
int64_t fl_pred_pass_flops(const fl_shapes *s, int s0, int s1, int head, int64_t W, int64_t nb, int bwd, int train_w,
                           int adapter, int rank);

/* The model's parameters, unpadded (fl_model_num_params), in elements: all
 * of them, or biases and norms only. */
int64_t fl_pred_all_params(const fl_shapes *s, int bias_norm_only);

/* predict() of the shared routines: fl_recover_adam on a range or a linear
 * unit, fl_recover_ls on a linear unit, fl_retrain_full on the model. */
int fl_pred_range_adam(const fl_predict_job *j, fl_predict_unit *out);
int fl_pred_linear_adam(const fl_predict_job *j, fl_predict_unit *out);
int fl_pred_linear_ls(const fl_predict_job *j, fl_predict_unit *out);
void fl_pred_retrain(const fl_shapes *s, int bias_norm, fl_optim optim, int epochs, fl_predict_unit *out);

#endif
