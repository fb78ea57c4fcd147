/* Hidden-state distillation (issue 15; the structural-pruning study of
 * Huang et al., arXiv 2507.20749): the student's hidden state after each of
 * its blocks is pulled towards the teacher's at the mapped place by an MSE,
 * alone or added with a weight to the next-token loss (cross-entropy, or
 * the KL to the teacher's distribution with --distill):
 *   loss = [ce] + w * (1/L) sum_i mean_{n,j} (h_i[n,j] - t_i[n,j])^2
 * where h_i is the output of the student's block i over the batch's tokens
 * and t_i the teacher's hidden state at map[i] (the input of the teacher's
 * block map[i]; map[i] = n_layer of the teacher is its last block's
 * output). For weight pruning map[i] = i + 1; after blocks were removed,
 * a kept block stands for the dense span up to the next kept block
 * (harness/cell.c). The model runs block by block so the MSE's gradient
 * enters the residual stream at each block's output. */
#ifndef FL_HIDDEN_H
#define FL_HIDDEN_H
#include "model/model.h"

typedef struct {
    int L, B, T, ce;
    float weight;
    fl_acts **acts;        /* L pieces (the first with the embedding) + the head */
    float *h;              /* [L][B*T*d]: each block's output */
    const float *th;       /* the teacher's [L][B*T*d] */
} fl_hidden_run;

/* The teacher's hidden states th [L][B*T*d] at map[0..L) for a batch of
 * tokens [B*T]. */
int fl_hidden_teacher(fl_model *teacher, const int32_t *tok, int B, int T, const int *map, int L, float *th);
/* Forward with activations kept: *loss = the combined loss, *mse its MSE
 * part (unweighted). tg: next-token targets (< 0 not counted), soft: the
 * teacher's probabilities or NULL; ce = 0 leaves the next-token loss out. */
int fl_hidden_forward(fl_hidden_run *run, fl_model *m, const int32_t *tok, const int32_t *tg, const float *soft, int B, int T,
                      const float *th, float weight, int ce, double *loss, double *mse);
/* Adds the gradient of that loss to every trainable parameter's g. */
int fl_hidden_backward(fl_hidden_run *run, fl_model *m);
void fl_hidden_free(fl_hidden_run *run);

#endif
