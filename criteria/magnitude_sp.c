/* magnitude-sp: a structure's importance is the L2 norm of every weight
 * that belongs to it (no calibration data): for a key/value group, the
 * q rows of its query heads, its k and v rows and the o columns its query
 * heads feed; for an MLP channel, its fc1 (gate) and up rows and its fc2
 * (down) column. */
#include "criterion.h"
#include <math.h>

/* sum of squares of rows [r0, r1) of W [rows, cols] */
static double rows_sq(const fl_param *p, int r0, int r1) {
    double s = 0;
    for (int64_t i = (int64_t)r0 * p->cols; i < (int64_t)r1 * p->cols; i++) s += (double)p->w[i] * p->w[i];
    return s;
}
/* sum of squares of columns [c0, c1) of W */
static double cols_sq(const fl_param *p, int c0, int c1) {
    double s = 0;
    for (int r = 0; r < p->rows; r++)
        for (int c = c0; c < c1; c++) { double v = p->w[(int64_t)r * p->cols + c]; s += v * v; }
    return s;
}

static int magnitude_sp_score(fl_width_job *j) {
    const fl_config *c = j->cfg;
    const fl_layer *y = j->y;
    if (j->kind == FL_STRUCT_HEADS) {
        const int hd = c->head_dim, G = c->n_head / c->n_kv_head;
        for (int g = 0; g < j->n; g++) {
            const int q0 = g * G * hd, q1 = (g + 1) * G * hd;
            double s = rows_sq(y->q_w, q0, q1) + rows_sq(y->k_w, g * hd, (g + 1) * hd) + rows_sq(y->v_w, g * hd, (g + 1) * hd) +
                       cols_sq(y->o_w, q0, q1);
            j->score[g] = sqrt(s);
        }
    } else {
        for (int f = 0; f < j->n; f++) {
            double s = rows_sq(y->fc1_w, f, f + 1) + (y->up_w ? rows_sq(y->up_w, f, f + 1) : 0) + cols_sq(y->fc2_w, f, f + 1);
            j->score[f] = sqrt(s);
        }
    }
    return 0;
}

const fl_criterion fl_crit_magnitude_sp = {
    .name = "magnitude-sp", .desc = "structured: remove the heads or MLP channels of smallest weight norm (no data)",
    .stats = FL_STATS_NONE, .structures = FL_STRUCT_BIT(FL_STRUCT_HEADS) | FL_STRUCT_BIT(FL_STRUCT_CHANNELS),
    .score_width = magnitude_sp_score,
};
