/* safetensors, HF checkpoints and llm.c token files: every bad input gets one
 * clear error naming the file and the problem; good inputs round-trip
 * bit-exactly. All fixtures are made here, by code. */
#include "tests/testutil.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/err.h"
#include "datasets/tokfile.h"
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------ */

/* rc must be -1 and the message one line naming path and holding every
 * fragment of expect (up to 4; NULL ends them); `what` names the case. */
static void expect_refusal(int rc, const char *what, const char *path, const char *const expect[4]) {
    const char *msg = fl_errmsg();
    if (rc != -1) fail_msg("%s: expected failure, got rc=%d", what, rc);
    if (strchr(msg, '\n')) fail_msg("%s: message is not one line: \"%s\"", what, msg);
    if (!strstr(msg, path)) fail_msg("%s: message \"%s\" does not name %s", what, msg, path);
    for (int i = 0; i < 4 && expect[i]; i++)
        if (!strstr(msg, expect[i])) fail_msg("%s: message \"%s\" lacks \"%s\"", what, msg, expect[i]);
}

static void path_in(char *out, size_t n, const char *dir, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* A safetensors file from a literal header and raw data bytes. */
static void write_st_raw(const char *path, const char *header, const void *data, size_t n) {
    uint64_t len = strlen(header);
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(len >> (8 * i));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(b, 1, 8, f);
    fwrite(header, 1, len, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Every tensor of a file as fp32, so tests can drop, rename, add or split. */
typedef struct { char name[128]; float *data; int ndim; int64_t shape[4]; } tens;

static int read_tensors(const char *path, tens **out) {
    fl_st_file f;
    assert_int_equal(fl_st_open(&f, path), 0);
    tens *t = calloc((size_t)f.n + 8, sizeof *t);
    for (int i = 0; i < f.n; i++) {
        snprintf(t[i].name, sizeof t[i].name, "%s", f.t[i].name);
        t[i].ndim = f.t[i].ndim;
        for (int k = 0; k < f.t[i].ndim; k++) t[i].shape[k] = f.t[i].shape[k];
        t[i].data = malloc(sizeof(float) * (size_t)(f.t[i].numel + 1));
        assert_int_equal(fl_st_read_f32(&f, &f.t[i], t[i].data), 0);
    }
    int n = f.n;
    fl_st_close(&f);
    *out = t;
    return n;
}

static void write_tensors(const char *path, const tens *t, int n) {
    fl_st_out *o = calloc((size_t)n + 1, sizeof *o);
    for (int i = 0; i < n; i++) {
        o[i].name = t[i].name;
        o[i].data = t[i].data;
        o[i].ndim = t[i].ndim;
        memcpy(o[i].shape, t[i].shape, sizeof o[i].shape);
    }
    assert_int_equal(fl_st_write(path, o, n), 0);
    free(o);
}

static void free_tensors(tens *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].data);
    free(t);
}

static int find_tensor(const tens *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    return -1;
}

/* Small configurations that exercise each family's particulars. */
static fl_config small_cfg(fl_family f) {
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, f);
    c.vocab = 37; c.d = 16; c.n_layer = 2; c.n_head = 4; c.n_kv_head = 4; c.head_dim = 4;
    c.d_ff = 40; c.max_pos = 24;
    switch (f) {
    case FL_GPT2: c.bos_id = c.eos_id = 36; break;
    case FL_OPT: c.bos_id = 2; c.eos_id = 2; break;
    case FL_LLAMA:   /* GQA, head_dim != d / heads, untied */
        c.n_kv_head = 2; c.head_dim = 6; c.eps = 1e-5f; c.rope_theta = 500000.0f; c.bos_id = 1; c.eos_id = 2;
        break;
    case FL_QWEN2:   /* GQA, tied like the small Qwen2 models */
        c.n_kv_head = 2; c.tied = 1; c.rope_theta = 1000000.0f; c.eos_id = 5;
        break;
    }
    return c;
}

/* A model with every parameter random, norms and biases included, so a
 * misplaced tensor cannot hide behind a constant. */
static void make_model(fl_model *m, const fl_config *c, uint64_t seed) {
    assert_int_equal(fl_model_create(m, c), 0);
    fl_model_init_random(m, seed);
    for (int i = 0; i < m->n_params; i++) tu_fill(m->params[i].w, (size_t)m->params[i].n, 0.5f, seed * 131 + (uint64_t)i);
}

static void assert_same_model(const fl_model *a, const fl_model *b) {
    const fl_config *x = &a->cfg, *y = &b->cfg;
    assert_int_equal(x->family, y->family);
    assert_int_equal(x->vocab, y->vocab); assert_int_equal(x->d, y->d);
    assert_int_equal(x->n_layer, y->n_layer); assert_int_equal(x->n_head, y->n_head);
    assert_int_equal(x->n_kv_head, y->n_kv_head); assert_int_equal(x->head_dim, y->head_dim);
    assert_int_equal(x->d_ff, y->d_ff); assert_int_equal(x->max_pos, y->max_pos);
    assert_true(x->eps == y->eps); assert_true(x->rope_theta == y->rope_theta);
    assert_int_equal(x->tied, y->tied); assert_int_equal(x->rms, y->rms); assert_int_equal(x->act, y->act);
    assert_int_equal(x->learned_pos, y->learned_pos); assert_int_equal(x->pos_offset, y->pos_offset);
    assert_int_equal(x->qkv_bias, y->qkv_bias); assert_int_equal(x->o_bias, y->o_bias);
    assert_int_equal(x->mlp_bias, y->mlp_bias);
    assert_int_equal(x->bos_id, y->bos_id); assert_int_equal(x->eos_id, y->eos_id);
    assert_int_equal(a->n_params, b->n_params);
    for (int i = 0; i < a->n_params; i++) {
        assert_string_equal(a->params[i].name, b->params[i].name);
        assert_int_equal(a->params[i].n, b->params[i].n);
        if (memcmp(a->params[i].w, b->params[i].w, sizeof(float) * (size_t)a->params[i].n) != 0)
            fail_msg("%s differs after the round trip", a->params[i].name);
    }
}

/* A saved gpt2 checkpoint in a fresh directory; for the bad-input tests. */
static void saved_gpt2(char *dir, size_t n, fl_model *m) {
    tu_tmpdir(dir, n);
    fl_config c = small_cfg(FL_GPT2);
    make_model(m, &c, 7);
    assert_int_equal(fl_model_save(m, dir), 0);
}

/* saved_gpt2, then its model.safetensors: the path into p (pn bytes) and
 * the tensors into *t; returns their count. */
static int saved_gpt2_tensors(char *dir, size_t n, fl_model *m, char *p, size_t pn, tens **t) {
    saved_gpt2(dir, n, m);
    path_in(p, pn, dir, "model.safetensors");
    return read_tensors(p, t);
}

/* Loads dir and checks that it is m, exactly. */
static void assert_loads_as(const char *dir, const fl_model *m) {
    fl_model r;
    if (fl_model_load(&r, dir) != 0) fail_msg("load: %s", fl_errmsg());
    assert_same_model(m, &r);
    fl_model_free(&r);
}

/* ---- safetensors: conversions and writing ------------------------------- */

/* Reads N half-precision values through a file of the given dtype. The
 * 3-space header pad makes the data start unaligned on purpose. */
static void read_half(const char *dtype, const uint16_t *h, int n, float *out) {
    char dir[256], p[300], hdr[256];
    tu_tmpdir(dir, sizeof dir);
    path_in(p, sizeof p, dir, "half.safetensors");
    snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[0,%d]}}   ", dtype, n, 2 * n);
    write_st_raw(p, hdr, h, sizeof(uint16_t) * (size_t)n);
    fl_st_file f;
    assert_int_equal(fl_st_open(&f, p), 0);
    const fl_st_tensor *t = fl_st_find(&f, "x");
    assert_non_null(t);
    assert_int_equal(t->numel, n);
    assert_int_equal(fl_st_read_f32(&f, t, out), 0);
    fl_st_close(&f);
    tu_rmrf(dir);
}

static void assert_bits(float got, float want, int i) {
    uint32_t a, b;
    memcpy(&a, &got, 4);
    memcpy(&b, &want, 4);
    if (a != b) fail_msg("value %d: got %a (0x%08x), want %a (0x%08x)", i, (double)got, a, (double)want, b);
}

static void test_fp16_exact(void **st) {
    (void)st;
    const uint16_t h[] = { 0x0000, 0x8000, 0x3c00, 0xc000, 0x3555, 0x7bff, 0x0400,
                           0x0001, 0x03ff, 0x8200, 0x7c00, 0xfc00, 0x7e00 };
    const float want[] = { 0.0f, -0.0f, 1.0f, -2.0f, 0.333251953125f, 65504.0f, 0x1p-14f,
                           0x1p-24f, 1023 * 0x1p-24f, -0x1p-15f, INFINITY, -INFINITY };
    const int n = (int)(sizeof h / sizeof h[0]);
    float out[16];
    read_half("F16", h, n, out);
    for (int i = 0; i < n - 1; i++) assert_bits(out[i], want[i], i);
    assert_true(isnan(out[n - 1]));
}

static void test_bf16_exact(void **st) {
    (void)st;
    const uint16_t h[] = { 0x0000, 0x8000, 0x3f80, 0xc040, 0x4049, 0x7f7f, 0x0080, 0x0001, 0x807f,
                           0x7f80, 0xff80, 0x7fc0 };
    const float want[] = { 0.0f, -0.0f, 1.0f, -3.0f, 3.140625f, 0x1.fep127f, 0x1p-126f, 0x1p-133f,
                           -0x7fp-133f, INFINITY, -INFINITY };
    const int n = (int)(sizeof h / sizeof h[0]);
    float out[16];
    read_half("BF16", h, n, out);
    for (int i = 0; i < n - 1; i++) assert_bits(out[i], want[i], i);
    assert_true(isnan(out[n - 1]));
}

/* fl_st_write: 8-aligned header with format metadata, data exact, names findable. */
static void test_st_write_read(void **st) {
    (void)st;
    char dir[256], p[300];
    tu_tmpdir(dir, sizeof dir);
    path_in(p, sizeof p, dir, "w.safetensors");
    float a[6], b[3], *none = NULL;
    tu_fill(a, 6, 1.0f, 1);
    tu_fill(b, 3, 1.0f, 2);
    fl_st_out o[3] = { { "a.weight", a, 2, { 2, 3 } }, { "b", b, 1, { 3 } }, { "empty", none, 1, { 0 } } };
    assert_int_equal(fl_st_write(p, o, 3), 0);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_int_not_equal(access(tmp, F_OK), 0);
    char *raw = tu_read_all(p);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_non_null(strstr(raw + 8, "\"__metadata__\":{\"format\":\"pt\"}"));
    free(raw);
    fl_st_file f;
    assert_int_equal(fl_st_open(&f, p), 0);
    assert_int_equal(f.n, 3);
    const fl_st_tensor *t = fl_st_find(&f, "a.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float got[6];
    fl_st_read_f32(&f, t, got);
    assert_memory_equal(got, a, sizeof a);
    t = fl_st_find(&f, "b");
    fl_st_read_f32(&f, t, got);
    assert_memory_equal(got, b, sizeof b);
    assert_non_null(fl_st_find(&f, "empty"));
    assert_null(fl_st_find(&f, "c"));
    fl_st_close(&f);
    tu_rmrf(dir);
}

/* ---- checkpoints: round trips ------------------------------------------- */

static void roundtrip(const fl_config *c, uint64_t seed) {
    char dir[256], sub[300];
    tu_tmpdir(dir, sizeof dir);
    path_in(sub, sizeof sub, dir, "a/b/model");   /* fl_model_save makes the parents */
    fl_model m;
    make_model(&m, c, seed);
    assert_int_equal(fl_model_save(&m, sub), 0);
    assert_loads_as(sub, &m);
    fl_model_free(&m);
    tu_rmrf(dir);
}

static void test_roundtrip_gpt2(void **st) {
    (void)st;
    fl_config c = small_cfg(FL_GPT2);
    roundtrip(&c, 1);
    c.tied = 0;   /* an untied gpt2 keeps its lm_head */
    roundtrip(&c, 2);
}
static void test_roundtrip_opt(void **st) {
    (void)st;
    fl_config c = small_cfg(FL_OPT);
    roundtrip(&c, 3);
    c.qkv_bias = c.o_bias = c.mlp_bias = 0;   /* enable_bias = false */
    roundtrip(&c, 4);
}
static void test_roundtrip_llama(void **st) {
    (void)st;
    fl_config c = small_cfg(FL_LLAMA);
    roundtrip(&c, 5);
    c.qkv_bias = c.o_bias = 1;   /* attention_bias = true */
    c.tied = 1;
    roundtrip(&c, 6);
    c.mlp_bias = 1;   /* mlp_bias = true: gate, up and down biases */
    roundtrip(&c, 8);
}
static void test_roundtrip_qwen2(void **st) {
    (void)st;
    fl_config c = small_cfg(FL_QWEN2);
    roundtrip(&c, 7);
}

/* The stored gpt2 layout is HF's: Conv1D [in, out], q|k|v fused along out,
 * 'transformer.' names, no lm_head when tied; config.json says so too. */
static void test_gpt2_layout(void **st) {
    (void)st;
    char dir[256], p[300];
    fl_model m;
    tens *t;
    int n = saved_gpt2_tensors(dir, sizeof dir, &m, p, sizeof p, &t);
    const int d = m.cfg.d, F = m.cfg.d_ff;
    int i = find_tensor(t, n, "transformer.h.1.attn.c_attn.weight");
    assert_true(i >= 0);
    assert_int_equal(t[i].shape[0], d);
    assert_int_equal(t[i].shape[1], 3 * d);
    const fl_layer *y = &m.layers[1];
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) {
            assert_true(t[i].data[(size_t)c * 3 * d + r] == y->q_w->w[r * d + c]);
            assert_true(t[i].data[(size_t)c * 3 * d + d + r] == y->k_w->w[r * d + c]);
            assert_true(t[i].data[(size_t)c * 3 * d + 2 * d + r] == y->v_w->w[r * d + c]);
        }
    i = find_tensor(t, n, "transformer.h.1.attn.c_attn.bias");
    assert_true(i >= 0);
    assert_int_equal(t[i].ndim, 1);
    assert_int_equal(t[i].shape[0], 3 * d);
    assert_true(t[i].data[d + 3] == y->k_b->w[3]);
    i = find_tensor(t, n, "transformer.h.1.mlp.c_fc.weight");
    assert_int_equal(t[i].shape[0], d);
    assert_int_equal(t[i].shape[1], F);
    assert_true(t[i].data[5 * F + 17] == y->fc1_w->w[17 * d + 5]);
    i = find_tensor(t, n, "transformer.h.1.mlp.c_proj.weight");
    assert_int_equal(t[i].shape[0], F);
    assert_int_equal(t[i].shape[1], d);
    assert_true(t[i].data[17 * d + 5] == y->fc2_w->w[5 * F + 17]);
    assert_true(find_tensor(t, n, "transformer.wpe.weight") >= 0);
    assert_true(find_tensor(t, n, "lm_head.weight") < 0);
    assert_int_equal(n, 2 + 12 * m.cfg.n_layer + 2);
    free_tensors(t, n);
    path_in(p, sizeof p, dir, "config.json");
    char *cfg = tu_read_all(p);
    assert_non_null(strstr(cfg, "\"GPT2LMHeadModel\""));
    assert_non_null(strstr(cfg, "\"model_type\":\t\"gpt2\""));
    assert_non_null(strstr(cfg, "\"layer_norm_epsilon\":\t1e-05"));
    assert_non_null(strstr(cfg, "\"torch_dtype\":\t\"float32\""));
    free(cfg);
    fl_model_free(&m);
    tu_rmrf(dir);
}

/* OPT's position table has max_pos + 2 rows, under HF's names. */
static void test_opt_layout(void **st) {
    (void)st;
    char dir[256], p[300];
    tu_tmpdir(dir, sizeof dir);
    fl_config c = small_cfg(FL_OPT);
    fl_model m;
    make_model(&m, &c, 9);
    assert_int_equal(fl_model_save(&m, dir), 0);
    path_in(p, sizeof p, dir, "model.safetensors");
    fl_st_file f;
    assert_int_equal(fl_st_open(&f, p), 0);
    const fl_st_tensor *t = fl_st_find(&f, "model.decoder.embed_positions.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], c.max_pos + 2);
    assert_non_null(fl_st_find(&f, "model.decoder.layers.1.self_attn.out_proj.bias"));
    assert_non_null(fl_st_find(&f, "model.decoder.layers.0.final_layer_norm.weight"));
    assert_non_null(fl_st_find(&f, "model.decoder.final_layer_norm.bias"));
    fl_st_close(&f);
    fl_model_free(&m);
    tu_rmrf(dir);
}

/* HF gpt2 checkpoints on the hub have bare names ("h.0...") and carry the
 * attn.bias / attn.masked_bias buffers; both load. */
static void test_gpt2_bare_names_and_buffers(void **st) {
    (void)st;
    char dir[256], p[300];
    fl_model m;
    tens *t;
    int n = saved_gpt2_tensors(dir, sizeof dir, &m, p, sizeof p, &t);
    for (int i = 0; i < n; i++) memmove(t[i].name, t[i].name + 12, strlen(t[i].name + 12) + 1);
    float mask[16] = { 1 };
    snprintf(t[n].name, sizeof t[n].name, "h.0.attn.bias");
    t[n].data = malloc(sizeof mask); memcpy(t[n].data, mask, sizeof mask);
    t[n].ndim = 4; t[n].shape[0] = 1; t[n].shape[1] = 1; t[n].shape[2] = 4; t[n].shape[3] = 4;
    n++;
    snprintf(t[n].name, sizeof t[n].name, "h.1.attn.masked_bias");
    t[n].data = calloc(1, sizeof(float)); t[n].ndim = 0;
    n++;
    write_tensors(p, t, n);
    free_tensors(t, n);
    assert_loads_as(dir, &m);
    fl_model_free(&m);
    tu_rmrf(dir);
}

/* Shards written by hand, listed in model.safetensors.index.json. */
static void test_sharded_load(void **st) {
    (void)st;
    char dir[256], p[300], p1[300], p2[300], idx[300];
    tu_tmpdir(dir, sizeof dir);
    fl_config c = small_cfg(FL_LLAMA);
    fl_model m, r;
    make_model(&m, &c, 11);
    assert_int_equal(fl_model_save(&m, dir), 0);
    path_in(p, sizeof p, dir, "model.safetensors");
    tens *t;
    int n = read_tensors(p, &t);
    unlink(p);
    path_in(p1, sizeof p1, dir, "model-00001-of-00002.safetensors");
    path_in(p2, sizeof p2, dir, "model-00002-of-00002.safetensors");
    write_tensors(p1, t, n / 2);
    write_tensors(p2, t + n / 2, n - n / 2);
    size_t cap = 64 + (size_t)n * 200, k = 0;
    char *json = malloc(cap);
    k += (size_t)snprintf(json + k, cap - k, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(json + k, cap - k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                              t[i].name, i < n / 2 ? 1 : 2);
    snprintf(json + k, cap - k, "}}");
    path_in(idx, sizeof idx, dir, "model.safetensors.index.json");
    write_text(idx, json);
    assert_loads_as(dir, &m);

    /* an index that misplaces a tensor is caught and blamed */
    char *wrong = strstr(json, "model-00001-of-00002");
    wrong[10] = '2';   /* the first tensor is now said to be in shard 2 */
    write_text(idx, json);
    expect_refusal(fl_model_load(&r, dir), "index misplacing a tensor", idx,
                   (const char *const[4]){ t[0].name, "does not hold it" });
    free(json);
    free_tensors(t, n);
    fl_model_free(&m);
    tu_rmrf(dir);
}

/* A bf16 checkpoint (what the hub mostly holds) loads as its fp32 widening. */
static void test_bf16_checkpoint(void **st) {
    (void)st;
    char dir[256], p[300];
    fl_model m, r;
    tens *t;
    int n = saved_gpt2_tensors(dir, sizeof dir, &m, p, sizeof p, &t);
    /* rebuild the file by hand with every tensor in BF16 */
    size_t cap = 256 + (size_t)n * 200, k = 0, bytes = 0;
    char *hdr = malloc(cap);
    k += (size_t)snprintf(hdr + k, cap - k, "{");
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int j = 0; j < t[i].ndim; j++) numel *= (size_t)t[i].shape[j];
        k += (size_t)snprintf(hdr + k, cap - k, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld", i ? "," : "", t[i].name,
                              (long long)t[i].shape[0]);
        if (t[i].ndim == 2) k += (size_t)snprintf(hdr + k, cap - k, ",%lld", (long long)t[i].shape[1]);
        k += (size_t)snprintf(hdr + k, cap - k, "],\"data_offsets\":[%zu,%zu]}", bytes, bytes + 2 * numel);
        bytes += 2 * numel;
    }
    snprintf(hdr + k, cap - k, "}");
    uint16_t *data = malloc(bytes);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int j = 0; j < t[i].ndim; j++) numel *= (size_t)t[i].shape[j];
        for (size_t j = 0; j < numel; j++) {
            uint32_t u;
            memcpy(&u, &t[i].data[j], 4);
            data[o++] = (uint16_t)(u >> 16);   /* truncation: exactly representable */
        }
    }
    write_st_raw(p, hdr, data, bytes);
    if (fl_model_load(&r, dir) != 0) fail_msg("load: %s", fl_errmsg());
    for (int i = 0; i < m.n_params; i++)
        for (int64_t j = 0; j < m.params[i].n; j++) {
            uint32_t u;
            memcpy(&u, &m.params[i].w[j], 4);
            u &= 0xffff0000u;
            float want;
            memcpy(&want, &u, 4);
            assert_true(r.params[i].w[j] == want);
        }
    free(hdr);
    free(data);
    free_tensors(t, n);
    fl_model_free(&m);
    fl_model_free(&r);
    tu_rmrf(dir);
}

/* ---- config.json ---------------------------------------------------------- */

/* HF defaults and the spellings real hub configs use. */
static void test_ckpt_config_defaults(void **st) {
    (void)st;
    char dir[256], p[300];
    tu_tmpdir(dir, sizeof dir);
    path_in(p, sizeof p, dir, "config.json");
    fl_config c;
    write_text(p, "{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 8,"
                  " \"vocab_size\": 10, \"n_inner\": null, \"bos_token_id\": 3}");
    assert_int_equal(fl_config_load(&c, dir), 0);
    assert_int_equal(c.d_ff, 64);
    assert_int_equal(c.tied, 1);
    assert_int_equal(c.bos_id, 3);
    assert_int_equal(c.eos_id, -1);
    assert_true(c.eps == 1e-5f);
    write_text(p, "{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
                  " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8,"
                  " \"rope_scaling\": null, \"eos_token_id\": [7, 9], \"head_dim\": null}");
    assert_int_equal(fl_config_load(&c, dir), 0);
    assert_int_equal(c.n_kv_head, 2);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.tied, 0);
    assert_int_equal(c.qkv_bias, 0);
    assert_true(c.rope_theta == 10000.0f);
    assert_true(c.eps == 1e-6f);
    assert_int_equal(c.eos_id, 7);
    /* transformers 5 spelling of plain RoPE */
    write_text(p, "{\"model_type\": \"qwen2\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
                  " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 10,"
                  " \"max_position_embeddings\": 8, \"tie_word_embeddings\": true,"
                  " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000000.0}}");
    assert_int_equal(fl_config_load(&c, dir), 0);
    assert_true(c.rope_theta == 1000000.0f);
    assert_int_equal(c.qkv_bias, 1);
    assert_int_equal(c.o_bias, 0);
    assert_int_equal(c.tied, 1);
    assert_int_equal(c.rope_scaling, FL_ROPE_PLAIN);
    /* opt-350m's shape in small: post-LN, embeddings of 8 projected to 16 */
    write_text(p, "{\"model_type\": \"opt\", \"hidden_size\": 16, \"ffn_dim\": 32, \"num_hidden_layers\": 2,"
                  " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8,"
                  " \"do_layer_norm_before\": false, \"word_embed_proj_dim\": 8}");
    assert_int_equal(fl_config_load(&c, dir), 0);
    assert_int_equal(c.post_ln, 1);
    assert_int_equal(c.proj, 8);
    {
        fl_model om;
        assert_int_equal(fl_model_create(&om, &c), 0);
        assert_true(fl_model_num_params(&om) == fl_config_num_params(&c));
        assert_null(om.final_norm_w);
        assert_non_null(om.proj_in);
        assert_int_equal(om.proj_in->rows, 16);
        assert_int_equal(om.proj_in->cols, 8);
        assert_int_equal(om.embed->cols, 8);
        fl_model_free(&om);
    }
    fl_config back0;
    assert_int_equal(fl_config_save(&c, p), 0);
    assert_int_equal(fl_config_load(&back0, dir), 0);
    assert_int_equal(back0.post_ln, 1);
    assert_int_equal(back0.proj, 8);
    /* Llama-3.1's rope_scaling, read and written back the same */
    write_text(p, "{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
                  " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 64, \"rope_theta\": 500000.0,"
                  " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                  " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}");
    assert_int_equal(fl_config_load(&c, dir), 0);
    assert_int_equal(c.rope_scaling, FL_ROPE_LLAMA3);
    assert_true(c.rope_factor == 8.0f && c.rope_low_freq == 1.0f && c.rope_high_freq == 4.0f);
    assert_int_equal(c.rope_orig_max, 8192);
    assert_true(c.rope_theta == 500000.0f);
    fl_config back;
    assert_int_equal(fl_config_save(&c, p), 0);
    assert_int_equal(fl_config_load(&back, dir), 0);
    assert_int_equal(back.rope_scaling, FL_ROPE_LLAMA3);
    assert_true(back.rope_factor == 8.0f && back.rope_low_freq == 1.0f && back.rope_high_freq == 4.0f);
    assert_int_equal(back.rope_orig_max, 8192);
    write_text(p, "{\"model_type\": \"qwen2\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
                  " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8,"
                  " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.5}}");
    assert_int_equal(fl_config_load(&c, dir), 0);
    assert_int_equal(c.rope_scaling, FL_ROPE_LINEAR);
    assert_true(c.rope_factor == 2.5f);
    assert_int_equal(fl_config_save(&c, p), 0);
    assert_int_equal(fl_config_load(&back, dir), 0);
    assert_int_equal(back.rope_scaling, FL_ROPE_LINEAR);
    assert_true(back.rope_factor == 2.5f);
    tu_rmrf(dir);
}

/* ---- token files --------------------------------------------------------- */

static void write_tok_raw(const char *path, int magic, int version, int count, const void *toks, size_t bytes) {
    int32_t h[256] = { magic, version, count };
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(h, 4, 256, f);
    if (bytes) fwrite(toks, 1, bytes, f);
    fclose(f);
}

static void test_tok_roundtrip(void **st) {
    (void)st;
    char dir[256], p[300];
    tu_tmpdir(dir, sizeof dir);
    path_in(p, sizeof p, dir, "t.bin");
    const int n = 3000;
    int32_t *a = malloc(sizeof(int32_t) * n), *got;
    int64_t m;
    for (int i = 0; i < n; i++) a[i] = (i * 7919) % 65536;
    a[5] = 65535;
    assert_int_equal(fl_tokfile_write(p, a, n), 0);
    struct stat sb;
    stat(p, &sb);
    assert_int_equal(sb.st_size, 1024 + 2 * n);   /* uint16 variant */
    assert_int_equal(fl_tokfile_read(p, 65536, &got, &m), 0);
    assert_int_equal(m, n);
    assert_memory_equal(got, a, sizeof(int32_t) * n);
    free(got);
    a[7] = 100000;   /* needs the uint32 variant */
    assert_int_equal(fl_tokfile_write(p, a, n), 0);
    stat(p, &sb);
    assert_int_equal(sb.st_size, 1024 + 4 * n);
    int32_t h[3];
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(h, 4, 3, f), 3);
    fclose(f);
    assert_int_equal(h[0], FL_TOK_MAGIC32);
    assert_int_equal(h[1], 7);
    assert_int_equal(h[2], n);
    assert_int_equal(fl_tokfile_read(p, 0, &got, &m), 0);
    assert_int_equal(m, n);
    assert_memory_equal(got, a, sizeof(int32_t) * n);
    free(got);
    /* empty file round-trips too */
    assert_int_equal(fl_tokfile_write(p, a, 0), 0);
    assert_int_equal(fl_tokfile_read(p, 10, &got, &m), 0);
    assert_int_equal(m, 0);
    free(got);
    free(a);
    tu_rmrf(dir);
}

/* ---- bad input: one table --------------------------------------------------
 * Each row breaks one thing (a file written by hand, or one tensor, one file
 * or one config field of a saved checkpoint) and names the reader that must
 * refuse it: rc -1 and one line naming the file and holding every fragment.
 * main() registers every row as a test of its own, named by `what`. */

typedef struct bad_case bad_case;
struct bad_case {
    const char *what;
    /* writes the broken input into dir; path = dir/file */
    void (*make)(const char *dir, const char *path, const bad_case *c);
    int (*load)(const char *dir, const char *path, const bad_case *c);
    const char *file;      /* the file the message must name ("": dir itself) */
    const char *text;      /* a safetensors header, a config.json, a tensor name, text to replace */
    const char *text2;     /* mk_edit_config: the replacement; mk_add_tensor: the new tensor's name */
    size_t n;              /* mk_st: data bytes after the header; mk_bytes: the file's length */
    const char raw[48];    /* mk_bytes: the file's bytes, zero-padded */
    fl_family family;      /* the saved checkpoint's family */
    int32_t head[3];       /* mk_tok: magic, version, count; then 4 tokens */
    uint16_t tok[4];
    int vocab;             /* load_tok's vocabulary bound */
    const char *expect[4];
};

static void mk_bytes(const char *dir, const char *path, const bad_case *c) { (void)dir; write_bytes(path, c->raw, c->n); }
static void mk_st(const char *dir, const char *path, const bad_case *c) {
    (void)dir;
    void *zeros = calloc(1, c->n + 1);
    write_st_raw(path, c->text, zeros, c->n);
    free(zeros);
}
static void mk_text(const char *dir, const char *path, const bad_case *c) { (void)dir; write_text(path, c->text); }
static void mk_tok(const char *dir, const char *path, const bad_case *c) {
    (void)dir;
    write_tok_raw(path, c->head[0], c->head[1], c->head[2], c->tok, sizeof c->tok);
}

/* A saved checkpoint of the row's family in dir. */
static void save_small(const char *dir, fl_family f) {
    fl_config c = small_cfg(f);
    fl_model m;
    make_model(&m, &c, 7);
    assert_int_equal(fl_model_save(&m, dir), 0);
    fl_model_free(&m);
}
/* config.json with c->text replaced by c->text2 (same length). */
static void mk_edit_config(const char *dir, const char *path, const bad_case *c) {
    (void)path;
    char p[300];
    save_small(dir, c->family);
    path_in(p, sizeof p, dir, "config.json");
    char *cfg = tu_read_all(p), *k = strstr(cfg, c->text);
    assert_non_null(k);
    assert_int_equal(strlen(c->text), strlen(c->text2));
    memcpy(k, c->text2, strlen(c->text2));
    write_text(p, cfg);
    free(cfg);
}
static void mk_drop_tensor(const char *dir, const char *path, const bad_case *c) {
    save_small(dir, c->family);
    tens *t;
    int n = read_tensors(path, &t);
    int i = find_tensor(t, n, c->text);
    assert_true(i >= 0);
    free(t[i].data);
    t[i] = t[--n];
    write_tensors(path, t, n);
    free_tensors(t, n);
}
/* A copy of tensor c->text under the name c->text2. */
static void mk_add_tensor(const char *dir, const char *path, const bad_case *c) {
    save_small(dir, c->family);
    tens *t;
    int n = read_tensors(path, &t);
    int i = find_tensor(t, n, c->text);
    assert_true(i >= 0);
    size_t numel = 1;
    for (int k = 0; k < t[i].ndim; k++) numel *= (size_t)t[i].shape[k];
    t[n] = t[i];
    snprintf(t[n].name, sizeof t[n].name, "%s", c->text2);
    t[n].data = malloc(sizeof(float) * numel);
    memcpy(t[n].data, t[i].data, sizeof(float) * numel);
    write_tensors(path, t, ++n);
    free_tensors(t, n);
}
static void mk_no_weights(const char *dir, const char *path, const bad_case *c) {
    (void)path;
    char p[300];
    save_small(dir, c->family);
    path_in(p, sizeof p, dir, "model.safetensors");
    unlink(p);
}

/* The saved checkpoint with its weights moved to shard.safetensors and an
 * index whose weight_map is c->text (every tensor to c->text2). */
static void mk_index(const char *dir, const char *path, const bad_case *c) {
    char p[300], q[300];
    save_small(dir, c->family);
    path_in(p, sizeof p, dir, "model.safetensors");
    path_in(q, sizeof q, dir, "shard.safetensors");
    assert_int_equal(rename(p, q), 0);
    tens *t;
    int n = read_tensors(q, &t);
    size_t cap = 64 + (size_t)n * 256, k = 0;
    char *js = malloc(cap);
    k += (size_t)snprintf(js + k, cap - k, "{\"weight_map\": {");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(js + k, cap - k, "%s\"%s\": \"%s\"", i ? ", " : "", t[i].name, i == 0 ? c->text : c->text2);
    snprintf(js + k, cap - k, "}}");
    write_text(path, js);
    free(js);
    free_tensors(t, n);
}

static int load_st(const char *dir, const char *path, const bad_case *c) {
    (void)dir; (void)c;
    fl_st_file f;
    int rc = fl_st_open(&f, path);
    if (rc == 0) fl_st_close(&f);
    return rc;
}
static int load_config(const char *dir, const char *path, const bad_case *c) {
    (void)path; (void)c;
    fl_config cfg;
    return fl_config_load(&cfg, dir);
}
static int load_model(const char *dir, const char *path, const bad_case *c) {
    (void)path; (void)c;
    fl_model m;
    int rc = fl_model_load(&m, dir);
    if (rc == 0) fl_model_free(&m);
    return rc;
}
static int load_tok(const char *dir, const char *path, const bad_case *c) {
    (void)dir;
    int32_t *got;
    int64_t n;
    int rc = fl_tokfile_read(path, c->vocab, &got, &n);
    if (rc == 0) free(got);
    return rc;
}

#define ST(w, hdr, bytes, ...) { .what = w, .make = mk_st, .load = load_st, .file = "x.safetensors", .text = hdr, .n = bytes, .expect = { __VA_ARGS__ } }
#define CONFIG(w, reader, json, ...) { .what = w, .make = mk_text, .load = reader, .file = "config.json", .text = json, .expect = { __VA_ARGS__ } }
#define TOK(w, magic, version, count, toks, vocab_, ...) \
    { .what = w, .make = mk_tok, .load = load_tok, .file = "t.bin", .head = { magic, version, count }, .tok = toks, .vocab = vocab_, .expect = { __VA_ARGS__ } }
#define T1234 { 1, 2, 3, 4 }
#define T_BIG { 1, 2, 50257, 4 }
#define LLAMA_CFG "{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1," \
                  " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8, "
#define OPT_CFG "{\"model_type\": \"opt\", \"hidden_size\": 16, \"ffn_dim\": 32, \"num_hidden_layers\": 1," \
                " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8, "

static const bad_case BAD[] = {
    /* safetensors files */
    { .what = "st: shorter than 8 bytes", .make = mk_bytes, .load = load_st, .file = "x.safetensors",
      .raw = "\x10\0\0\0\0", .n = 5, .expect = { "truncated" } },
    ST("st: data truncated", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,  /* 2 of 4 floats */
       "tensor w", "out of bounds", "truncated"),
    { .what = "st: header beyond the file", .make = mk_bytes, .load = load_st, .file = "x.safetensors",
      .raw = "\xe8\x03\0\0\0\0\0\0{}", .n = 40, .expect = { "header length 1000", "beyond the end of the file" } },
    ST("st: header not JSON", "{\"w\": {\"dtype\": \"F32\", shape", 0, "not valid JSON"),
    ST("st: garbage after the header", "{}  garbage", 0, "not valid JSON"),  /* only padding may follow */
    ST("st: offsets out of bounds", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4000,4008]}}", 16, "tensor b", "[4000, 4008]", "out of bounds"),
    ST("st: tensors overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24, "overlap", "a [0, 16)", "b [8, 24)"),
    ST("st: byte count disagrees with the shape", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16,
       "tensor a", "[2, 3]", "needs 12 bytes"),
    ST("st: unknown dtype", "{\"__metadata__\":{\"format\":\"pt\"},"
       "\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "tensor ids", "dtype I64"),
    ST("st: duplicate name", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "tensor a", "twice"),
    /* saved checkpoints, one thing broken */
    { .what = "ckpt: shape disagrees with config.json", .make = mk_edit_config, .load = load_model, .file = "model.safetensors",
      .text = "\"n_inner\":\t40", .text2 = "\"n_inner\":\t48",  /* a wider MLP than the weights hold */
      .expect = { "transformer.h.0.mlp.c_fc.weight", "shape [16, 40]", "config.json implies [16, 48]" } },
    { .what = "ckpt: missing tensor", .make = mk_drop_tensor, .load = load_model, .file = "model.safetensors",
      .text = "transformer.h.1.ln_2.bias", .expect = { "transformer.h.1.ln_2.bias", "missing" } },
    { .what = "ckpt: untied llama without lm_head", .make = mk_drop_tensor, .load = load_model, .file = "model.safetensors",
      .family = FL_LLAMA, .text = "lm_head.weight", .expect = { "lm_head.weight", "missing" } },
    { .what = "ckpt: unexpected tensor (a third layer)", .make = mk_add_tensor, .load = load_model, .file = "model.safetensors",
      .text = "transformer.h.1.ln_1.weight", .text2 = "transformer.h.2.ln_1.weight",
      .expect = { "unexpected tensor transformer.h.2.ln_1.weight" } },
    { .what = "ckpt: no weights", .make = mk_no_weights, .load = load_model, .file = "", .expect = { "no model.safetensors" } },
    /* config.json implying more than the weights hold is refused before
     * anything it sizes is allocated, naming config.json */
    { .what = "ckpt: more layers than the weights hold", .make = mk_edit_config, .load = load_model, .file = "config.json",
      .text = "\"n_layer\":\t2", .text2 = "\"n_layer\":\t9", .expect = { "describes a gpt2 model", "9 layers", "holds only" } },
    { .what = "ckpt: llama with a larger vocabulary than the weights", .make = mk_edit_config, .load = load_model,
      .file = "config.json", .family = FL_LLAMA, .text = "\"vocab_size\":\t37", .text2 = "\"vocab_size\":999",
      .expect = { "describes a llama model", "vocabulary 999", "holds only" } },
    /* an index cannot name files outside the model directory */
    { .what = "ckpt: shard path escapes the directory", .make = mk_index, .load = load_model, .file = "model.safetensors.index.json",
      .text = "../shard.safetensors", .text2 = "shard.safetensors", .expect = { "\"../shard.safetensors\"", "plain file name" } },
    { .what = "ckpt: absolute shard path", .make = mk_index, .load = load_model, .file = "model.safetensors.index.json",
      .text = "shard.safetensors", .text2 = "/etc/passwd", .expect = { "\"/etc/passwd\"", "plain file name" } },
    { .what = "ckpt: shard in a subdirectory", .make = mk_index, .load = load_model, .file = "model.safetensors.index.json",
      .text = "sub/shard.safetensors", .text2 = "shard.safetensors", .expect = { "sub/shard.safetensors", "plain file name" } },
    { .what = "ckpt: shard named ..", .make = mk_index, .load = load_model, .file = "model.safetensors.index.json",
      .text = "..", .text2 = "shard.safetensors", .expect = { "\"..\"", "plain file name" } },
    /* config.json */
    CONFIG("config: unknown model_type (model load)", load_model, "{\"model_type\": \"bert\", \"hidden_size\": 16}",
           "model_type \"bert\"", "not supported"),
    CONFIG("config: unknown model_type", load_config, "{\"model_type\": \"bert\", \"hidden_size\": 16}", "bert"),
    CONFIG("config: not JSON", load_config, "{\n  \"model_type\": \"gpt2\",\n  \"n_embd\": 16,,\n}", "not valid JSON", "line 3"),
    /* RoPE scaling: linear and llama3 are read (tests/test_oracle.c runs
     * both against PyTorch); any other type, or a llama3 object missing a
     * key, is refused naming it */
    CONFIG("config: dynamic rope_scaling", load_config, LLAMA_CFG "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}",
           "rope_scaling", "\"dynamic\"", "not supported"),
    CONFIG("config: yarn rope_parameters", load_config, LLAMA_CFG "\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}",
           "rope_parameters", "\"yarn\"", "not supported"),
    CONFIG("config: linear rope_scaling without a factor", load_config, LLAMA_CFG "\"rope_scaling\": {\"type\": \"linear\"}}",
           "\"rope_scaling\".\"factor\"", "positive number"),
    CONFIG("config: linear rope_scaling factor 0", load_config, LLAMA_CFG "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 0}}",
           "\"factor\"", "positive number"),
    CONFIG("config: llama3 rope_scaling without low_freq_factor", load_config,
           LLAMA_CFG "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"high_freq_factor\": 4.0,"
           " \"original_max_position_embeddings\": 8192}}", "\"low_freq_factor\"", "positive number"),
    CONFIG("config: llama3 rope_scaling with high <= low", load_config,
           LLAMA_CFG "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0,"
           " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}", "high_freq_factor must exceed"),
    CONFIG("config: llama3 rope_scaling with a fractional context", load_config,
           LLAMA_CFG "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
           " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 81.5}}", "original_max_position_embeddings",
           "whole number"),
    /* opt-350m's post-LN and projected embeddings are read (the oracle runs
     * them); a width of 0, or a pre-LN OPT without its final norm, is not */
    CONFIG("config: opt word_embed_proj_dim 0", load_config, OPT_CFG "\"word_embed_proj_dim\": 0}",
           "word_embed_proj_dim", "out of range"),
    CONFIG("config: opt pre-LN without a final norm", load_config, OPT_CFG "\"_remove_final_layer_norm\": true}",
           "_remove_final_layer_norm", "not supported"),
    CONFIG("config: missing n_layer", load_config,
           "{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_head\": 2, \"n_positions\": 8, \"vocab_size\": 10}",
           "missing \"n_layer\""),
    CONFIG("config: gpt2 relu", load_config, "{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2,"
           " \"n_positions\": 8, \"vocab_size\": 10, \"activation_function\": \"relu\"}", "activation_function \"relu\""),
    CONFIG("config: hidden size not divisible by heads", load_config, "{\"model_type\": \"gpt2\", \"n_embd\": 16,"
           " \"n_layer\": 1, \"n_head\": 3, \"n_positions\": 8, \"vocab_size\": 10}", "hidden size 16"),
    /* sizes beyond any plausible model are refused before anything is
     * allocated; values beyond int (or inf) are refused before the cast */
    CONFIG("config: 100000 layers", load_config,
           "{\"model_type\": \"opt\", \"hidden_size\": 16, \"ffn_dim\": 32, \"num_hidden_layers\": 100000,"
           " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8}", "layer count 100000", "out of range"),
    CONFIG("config: vocabulary of 2e9", load_config,
           "{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 8, \"vocab_size\": 2000000000}",
           "vocabulary size 2000000000", "out of range"),
    CONFIG("config: 2e9 positions", load_config,
           "{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
           " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 2000000000}", "max positions 2000000000"),
    CONFIG("config: layers beyond int", load_config,
           "{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 1e300, \"n_head\": 2, \"n_positions\": 8, \"vocab_size\": 10}",
           "\"n_layer\" must be an integer"),
    CONFIG("config: infinite hidden size", load_config,
           "{\"model_type\": \"gpt2\", \"n_embd\": 1e999, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 8, \"vocab_size\": 10}",
           "\"n_embd\" must be an integer"),
    CONFIG("config: gpt2 n_embd whose default 4x overflows", load_config,
           "{\"model_type\": \"gpt2\", \"n_embd\": 2000000000, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 8, \"vocab_size\": 10}",
           "hidden size 2000000000", "out of range"),
    CONFIG("config: heads x head_dim overflows int", load_config,
           "{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
           " \"num_attention_heads\": 1024, \"num_key_value_heads\": 1, \"head_dim\": 4194304, \"vocab_size\": 10,"
           " \"max_position_embeddings\": 8}", "head dimension 4194304"),
    CONFIG("config: bos id beyond int", load_config, OPT_CFG "\"bos_token_id\": 1e300}", "\"bos_token_id\"", "integer token id"),
    CONFIG("config: eos id infinite", load_config, OPT_CFG "\"eos_token_id\": [-1e999]}", "\"eos_token_id\"", "integer token id"),
    CONFIG("config: epsilon beyond float", load_config,
           "{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
           " \"num_attention_heads\": 2, \"vocab_size\": 10, \"max_position_embeddings\": 8, \"rms_norm_eps\": 1e300}",
           "\"rms_norm_eps\"", "float range"),
    /* llm.c token files */
    TOK("tok: bad magic", 12345, 1, 4, T1234, 0, "bad magic 12345"),
    TOK("tok: bad version", FL_TOK_MAGIC16, 3, 4, T1234, 0, "bad version 3"),
    TOK("tok: count beyond the file size", FL_TOK_MAGIC16, 1, 1000, T1234, 0, "count 1000", "beyond the file size"),
    TOK("tok: bytes after the tokens", FL_TOK_MAGIC16, 1, 3, T1234, 0, "2 bytes after the 3 tokens"),
    { .what = "tok: not even a header", .make = mk_bytes, .load = load_tok, .file = "t.bin", .raw = "\1\0\2\0\3\0\4\0", .n = 8,
      .expect = { "truncated header" } },
    TOK("tok: id beyond the vocabulary", FL_TOK_MAGIC16, 1, 4, T_BIG, 50257,
        "token 2", "id 50257", "vocabulary of 50257"),
};
#define N_BAD (sizeof BAD / sizeof BAD[0])

static void test_bad_input(void **st) {
    const bad_case *c = *st;
    char dir[256], p[300];
    tu_tmpdir(dir, sizeof dir);
    if (*c->file) path_in(p, sizeof p, dir, c->file);
    else snprintf(p, sizeof p, "%s", dir);
    c->make(dir, p, c);
    expect_refusal(c->load(dir, p, c), c->what, p, c->expect);
    tu_rmrf(dir);
}

/* The inputs beside refused ones that must load. */
static void test_accepted_neighbours(void **st) {
    (void)st;
    char dir[256], p[300];
    tu_tmpdir(dir, sizeof dir);
    path_in(p, sizeof p, dir, "x.safetensors");
    write_st_raw(p, "{}      ", NULL, 0);   /* padding after the header is fine */
    fl_st_file f;
    assert_int_equal(fl_st_open(&f, p), 0);
    assert_int_equal(f.n, 0);
    fl_st_close(&f);
    path_in(p, sizeof p, dir, "t.bin");
    uint16_t t[4] = { 1, 2, 50257, 4 };
    write_tok_raw(p, FL_TOK_MAGIC16, 1, 4, t, sizeof t);
    int32_t *got;
    int64_t n;
    assert_int_equal(fl_tokfile_read(p, 50258, &got, &n), 0);   /* fits a larger vocabulary */
    assert_int_equal(n, 4);
    free(got);
    tu_rmrf(dir);
}

int main(void) {
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_fp16_exact),
        cmocka_unit_test(test_bf16_exact),
        cmocka_unit_test(test_st_write_read),
        cmocka_unit_test(test_roundtrip_gpt2),
        cmocka_unit_test(test_roundtrip_opt),
        cmocka_unit_test(test_roundtrip_llama),
        cmocka_unit_test(test_roundtrip_qwen2),
        cmocka_unit_test(test_gpt2_layout),
        cmocka_unit_test(test_opt_layout),
        cmocka_unit_test(test_gpt2_bare_names_and_buffers),
        cmocka_unit_test(test_sharded_load),
        cmocka_unit_test(test_bf16_checkpoint),
        cmocka_unit_test(test_ckpt_config_defaults),
        cmocka_unit_test(test_tok_roundtrip),
        cmocka_unit_test(test_accepted_neighbours),
    };
    enum { N_FIXED = sizeof fixed / sizeof fixed[0] };
    struct CMUnitTest tests[N_FIXED + N_BAD];
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_BAD; i++)   /* one test per row of the bad-input table */
        tests[N_FIXED + i] = (struct CMUnitTest){ BAD[i].what, test_bad_input, NULL, NULL, (void *)&BAD[i] };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
