/* Layer kernels as forward/backward pairs over flat float arrays (llm.c
 * style). N = number of tokens (B*T), C = channels. Every backward ADDS
 * into its gradient outputs (so callers can accumulate over branches and
 * micro-batches); any gradient output may be NULL to skip it. */
#ifndef FL_OPS_H
#define FL_OPS_H
#include <stddef.h>
#include <stdint.h>

/* out[N,C] = wte[tok] + (wpe ? wpe[pos0 + t + offset] : 0), t = n % T */
void fl_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe,
                      int B, int T, int C, int pos_first);
void fl_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                       int B, int T, int C, int pos_first);

/* LayerNorm: out = (x - mean) * rstd * w + b; saves mean, rstd [N]. */
void fl_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *w, const float *b, int N, int C, float eps);
void fl_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int C);
/* RMSNorm: out = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps). */
void fl_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
void fl_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         const float *rstd, int N, int C);

/* out[N,O] = x[N,I] W[O,I]^T + b[O] */
void fl_matmul_forward(float *out, const float *x, const float *W, const float *b, int N, int I, int O);
/* dx += dout W; dW += dout^T x; db += sum_n dout */
void fl_matmul_backward(float *dx, float *dW, float *db, const float *dout, const float *x,
                        const float *W, int N, int I, int O);

/* Low-rank adapters of a linear (LoRA, MaskLoRA), A [R,I], B [O,R], scale s.
 * LoRA keeps W frozen and adds the adapter's path beside it:
 *   out[N,O] += s (x A^T) B^T;  tmp: N*R floats of scratch.
 * Its backward never forms a dense [O,I] gradient (tmp: 2*N*R floats; x A^T
 * is recomputed, cheaper in memory than keeping it for every linear):
 *   dB += s dout^T (x A^T);  dA += s (dout B)^T x;  dx += s (dout B) A. */
void fl_lowrank_forward(float *out, const float *x, const float *A, const float *B, float s,
                        int N, int I, int O, int R, float *tmp);
void fl_lowrank_backward(float *dx, float *dA, float *dB, const float *dout, const float *x,
                         const float *A, const float *B, float s, int N, int I, int O, int R, float *tmp);
/* MaskLoRA: weff[O,I] = W0 + s M o (B A) (M NULL: no mask), so the pruned
 * entries keep W0's value (0) exactly. */
void fl_masklora_compose(float *weff, const float *W0, const uint8_t *M, const float *A, const float *B,
                         float s, int O, int I, int R);
/* MaskLoRA's adapter gradients: G = M o (dout^T x) into g [O,I] (scratch,
 * overwritten), then dB += s G A^T, dA += s B^T G. G is inherently dense. */
void fl_masklora_backward(float *dA, float *dB, float *g, const uint8_t *M, const float *dout, const float *x,
                          const float *A, const float *B, float s, int N, int I, int O, int R);

/* RoPE, HF rotate-half: for i < hd/2, with c = cos[p][i], s = sin[p][i]:
 *   y[i] = x[i] c - x[i+hd/2] s,   y[i+hd/2] = x[i+hd/2] c + x[i] s.
 * In place on x[B,T,nh*hd]; backward rotates by the opposite angle. */
void fl_rope_table(float *cos_t, float *sin_t, int max_pos, int hd, float theta);
void fl_rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd, int pos_first);
void fl_rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd, int pos_first);

/* Causal attention with grouped-query heads: q[B,T,H*hd], k,v[B,T,KV*hd],
 * out[B,T,H*hd]. O(T) memory (flash-style): forward keeps only the per-row
 * log-sum-exp of the scaled scores, lse[B,H,T] (may be NULL in inference),
 * and backward recomputes the probabilities from q, k and lse. Both use a
 * per-thread scratch of row blocks (the sizes below). */
void fl_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          int B, int T, int H, int KV, int hd);
void fl_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *lse,
                           int B, int T, int H, int KV, int hd);
/* Bytes of the per-thread scratch the forward and the backward allocate. */
size_t fl_attention_fwd_scratch_bytes(int T);
size_t fl_attention_scratch_bytes(int T);

/* The previous kernel, kept as the reference the one above is tested and
 * benchmarked against: att[B,H,T,T] the softmax probabilities, kept for
 * backward (may be NULL in inference, then a per-thread row block is used). */
void fl_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                              int B, int T, int H, int KV, int hd);
size_t fl_attention_ref_scratch_bytes(int T);
void fl_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *att,
                               int B, int T, int H, int KV, int hd);

/* GELU with the tanh approximation (GPT-2's gelu_new). */
void fl_gelu_forward(float *out, const float *x, int64_t n);
void fl_gelu_backward(float *dx, const float *x, const float *dout, int64_t n);
void fl_relu_forward(float *out, const float *x, int64_t n);
void fl_relu_backward(float *dx, const float *x, const float *dout, int64_t n);
/* out = silu(gate) * up */
void fl_swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void fl_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int64_t n);

/* Cross-entropy over logits[N,V]. Writes per-row
 * NLL (0 for ignored targets < 0) into nll[N] and returns their sum and
 * count. */
double fl_crossentropy_forward(float *nll, const float *logits, const int32_t *targets,
                               int N, int V, int64_t *count);
/* dlogits = (softmax(logits) - onehot(target)) * scale, 0 for ignored rows:
 * the one backward that OVERWRITES rather than adds, so that
 * dlogits may alias logits (the row is read before it is written). */
void fl_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets,
                              int N, int V, float scale);

/* Cross-entropy to soft targets p[N,V] (a teacher's probabilities), over
 * the rows whose hard target is >= 0: sum_j p_j (lse - l_j) per row, which
 * is KL(p || softmax(l)) plus the teacher's entropy (a constant). */
double fl_softce_forward(const float *logits, const float *p, const int32_t *targets, int N, int V, int64_t *count);
/* dlogits = (softmax(l) - p) * scale for counted rows, 0 elsewhere;
 * overwrites, may alias logits. */
void fl_softce_backward(float *dlogits, const float *logits, const float *p, const int32_t *targets,
                        int N, int V, float scale);

void fl_add(float *out, const float *a, const float *b, int64_t n);      /* out = a + b */
void fl_accum(float *out, const float *a, int64_t n);                    /* out += a */

#endif
