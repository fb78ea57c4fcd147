/* AdamW (Loshchilov & Hutter): Adam with bias correction and decoupled
 * weight decay, over the trainable parameters of a model, with a learning
 * rate schedule (linear warm-up, then constant, linear or cosine decay) and
 * optional clipping of the global gradient norm. Masked weights get no
 * update and are re-zeroed after every step, so they stay exactly 0. */
#ifndef FL_ADAMW_H
#define FL_ADAMW_H
#include "model.h"

typedef enum { FL_SCHED_CONSTANT = 0, FL_SCHED_LINEAR, FL_SCHED_COSINE } fl_sched;

/* The update rule the same loop runs: AdamW (two moments per trainable
 * float) or SGD with heavy-ball momentum (one buffer). --optimizer. */
typedef enum { FL_OPTIM_ADAMW = 0, FL_OPTIM_SGD } fl_optim;
int fl_optim_parse(const char *s, fl_optim *out);
const char *fl_optim_name(fl_optim o);
/* Floats of optimiser state per trainable float: 2 (AdamW), 1 (SGD). */
int fl_optim_states(fl_optim o);

typedef struct {
    float lr, beta1, beta2, eps;
    float weight_decay;   /* applied to matrices only (not biases, norms) */
    float clip_norm;      /* <= 0: no clipping */
    int warmup_steps, total_steps;
    fl_sched sched;
    float min_lr_frac;    /* decay floor as a fraction of lr */
    fl_optim optim;       /* FL_OPTIM_SGD: fl_sgd_update instead (beta1, beta2, eps unused) */
    float momentum;       /* SGD only */
} fl_adamw_cfg;

/* lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay, no clipping, constant;
 * AdamW (SGD's momentum 0.9 if optim is switched). */
fl_adamw_cfg fl_adamw_defaults(void);
/* Multiplier of lr at step t (1-based): t/W during the W warm-up steps,
 * then 1 (constant), (S - t + 1)/(S - W) (linear) or
 * 0.5 (1 + cos(pi (t - W - 1)/(S - W))) (cosine), floored at min_lr_frac. */
double fl_lr_factor(const fl_adamw_cfg *c, int t);
int fl_sched_parse(const char *s, fl_sched *out);

typedef struct {
    fl_adamw_cfg cfg;
    int t;              /* steps taken */
    fl_param **p;
    int n;
    double last_lr, last_gnorm;
} fl_adamw;

/* Collects the trainable parameters of m and allocates their moments (m
 * and v for AdamW, m alone, the momentum buffer, for SGD). */
int fl_adamw_init(fl_adamw *o, fl_model *m, const fl_adamw_cfg *c);
/* One step from the accumulated gradients, which it then zeroes. Returns
 * the global gradient norm before clipping. */
double fl_adamw_step(fl_adamw *o);
void fl_adamw_free(fl_adamw *o);
/* The update of one parameter (rows x cols, n floats) with moments m, v,
 * for optimisers that keep their own parameters (LoRA's adapters): the
 * gradient g scaled by gscale (clipping), bias corrections bc1, bc2,
 * weight decay on matrices only; then g is zeroed. A weight where mask
 * (if not NULL) is 0 stays exactly 0, its moments untouched. */
void fl_adamw_update(const fl_adamw_cfg *c, float *w, float *g, float *m, float *v, const uint8_t *mask, int64_t n,
                     int rows, int cols, float lr, float gscale, float bc1, float bc2);
/* SGD as torch.optim.SGD(momentum=mu, dampening=0, nesterov=False,
 * weight_decay=wd) computes it, with the same gradient scale, clipping
 * factor, mask rule and matrices-only decay as fl_adamw_update:
 *   g' = g*gscale + wd*w;  buf = mu*buf + g' (buf = g' on the first step,
 *   i.e. buf starts at 0);  w -= lr*buf.
 * Weight decay is L2 added to the gradient (coupled), as torch's SGD does,
 * not AdamW's decoupled decay. A weight where mask is 0 stays exactly 0,
 * its buffer untouched; g is zeroed. */
void fl_sgd_update(const fl_adamw_cfg *c, float *w, float *g, float *buf, const uint8_t *mask, int64_t n, int rows, int cols,
                   float lr, float gscale);
/* Bytes of optimiser state (two moments per trainable float; one for SGD). */
size_t fl_adamw_bytes(const fl_adamw *o);
/* sum of g[j]^2 in double */
double fl_sumsq(const float *g, int64_t n);

#endif
