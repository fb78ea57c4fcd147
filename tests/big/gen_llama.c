/* A synthetic llama checkpoint of any shape, written in bf16 (or fp16/fp32)
 * without ever holding the model: each tensor is drawn into one buffer just
 * before the writer stores it (fl_st_write_dtype's callback), so a
 * 1B-parameter checkpoint needs one 64 MB buffer, not 4 GB. Weights are
 * uniform with the std of GPT-2's init (0.02), norms 1. Also writes a token
 * file of random ids for calibration and evaluation.
 *
 *   gen_llama DIR HIDDEN LAYERS HEADS KV_HEADS FFN VOCAB MAXPOS DTYPE NTOKENS
 *
 * Used by tests/big/stream_1b.sh (make test-big). */
#include "datasets/tokfile.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *buf;
    size_t cap;
    const fl_st_out *ts;
    uint64_t seed;
} gen_ctx;

static uint64_t next(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

static const float *gen(void *ctx, int i) {
    gen_ctx *g = ctx;
    const fl_st_out *t = &g->ts[i];
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++) n *= (size_t)t->shape[k];
    if (n > g->cap) {
        fl_free(g->buf);
        g->buf = fl_allocf(n);
        g->cap = n;
    }
    const int norm = t->ndim == 1;
    uint64_t s = g->seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 1000003u + 1;
    /* uniform on [-a, a] has std a / sqrt(3): a = 0.02 sqrt(3) */
    const float a = 0.034641f;
    for (size_t j = 0; j < n; j++)
        g->buf[j] = norm ? 1.0f : a * (2.0f * (float)((next(&s) >> 11) * (1.0 / 9007199254740992.0)) - 1.0f);
    return g->buf;
}

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr, "usage: gen_llama DIR HIDDEN LAYERS HEADS KV_HEADS FFN VOCAB MAXPOS DTYPE NTOKENS\n");
        return 2;
    }
    const char *dir = argv[1];
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);
    c.d = atoi(argv[2]); c.n_layer = atoi(argv[3]); c.n_head = atoi(argv[4]); c.n_kv_head = atoi(argv[5]);
    c.d_ff = atoi(argv[6]); c.vocab = atoi(argv[7]); c.max_pos = atoi(argv[8]);
    c.head_dim = c.n_head > 0 ? c.d / c.n_head : 0;
    fl_dtype dt;
    if (fl_dtype_parse(argv[9], &dt) != 0 || fl_config_validate(&c, "gen_llama") != 0) {
        fprintf(stderr, "gen_llama: %s\n", fl_errmsg());
        return 1;
    }
    const int L = c.n_layer, d = c.d, qd = c.n_head * c.head_dim, kvd = c.n_kv_head * c.head_dim, F = c.d_ff;
    const int per = 9, n = 3 + per * L;
    fl_st_out *ts = calloc((size_t)n, sizeof *ts);
    char (*names)[96] = calloc((size_t)n, sizeof *names);
    int k = 0;
#define T2(nm, r, cl) (snprintf(names[k], 96, "%s", nm), ts[k] = (fl_st_out){ names[k], NULL, 2, { r, cl } }, k++)
#define T1(nm, r) (snprintf(names[k], 96, "%s", nm), ts[k] = (fl_st_out){ names[k], NULL, 1, { r } }, k++)
    char nm[96];
    T2("model.embed_tokens.weight", c.vocab, d);
    for (int l = 0; l < L; l++) {
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l); T1(nm, d);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.weight", l); T2(nm, qd, d);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.weight", l); T2(nm, kvd, d);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.weight", l); T2(nm, kvd, d);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.o_proj.weight", l); T2(nm, d, qd);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l); T1(nm, d);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.gate_proj.weight", l); T2(nm, F, d);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", l); T2(nm, F, d);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l); T2(nm, d, F);
    }
    T1("model.norm.weight", d);
    T2("lm_head.weight", c.vocab, d);
    if (fl_mkdir_p(dir) != 0) { fprintf(stderr, "gen_llama: %s\n", fl_errmsg()); return 1; }
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/model.safetensors", dir);
    gen_ctx g = { .ts = ts, .seed = 1 };
    int rc = fl_st_write_dtype(path, ts, k, dt, gen, &g);
    snprintf(path, sizeof path, "%.4000s/config.json", dir);
    if (rc == 0) rc = fl_config_save(&c, path);
    fl_free(g.buf);
    const long ntok = atol(argv[10]);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(ntok > 0 ? ntok : 1));
    uint64_t s = 99;
    for (long i = 0; i < ntok; i++) tok[i] = (int32_t)(next(&s) % (uint64_t)c.vocab);
    snprintf(path, sizeof path, "%.4000s/tokens.bin", dir);
    if (rc == 0) rc = fl_tokfile_write(path, tok, ntok);
    free(tok);
    free(ts);
    free(names);
    if (rc != 0) { fprintf(stderr, "gen_llama: %s\n", fl_errmsg()); return 1; }
    printf("gen_llama: %s: %lld parameters as %s\n", dir, (long long)fl_config_num_params(&c), fl_dtype_name(dt));
    return 0;
}
