/* Streamed weights (issue 18 item 3): half-precision conversion, models
 * whose blocks are converted one at a time from the mapped checkpoint, and
 * the pruned model saved in bf16/fp16.
 *   - conversions: hand cases of round-to-nearest-even, the underflow rule
 *     (a non-zero never becomes 0), fp16 overflow, and every bf16/fp16 bit
 *     pattern surviving widening and narrowing;
 *   - a cell on a bf16, an fp16 and a bf16 GPT-2 checkpoint (transposed and
 *     fused layouts) run streamed and fully resident: the same masks, the
 *     same perplexity and the same saved bytes, bit for bit, for local
 *     reconstructors, propagation dense (a streamed read-only dense copy)
 *     and retraining (every block held); the streamed cell's tracked peak
 *     lower by at least the blocks it did not hold;
 *   - --save-dtype: the header's dtype, the values rounded as the
 *     converter does, and the saved zeros exactly the masks;
 *   - bad input: a truncated checkpoint, fp16 overflow, releasing a block
 *     while it trains, a forward over a block not held. */
#include "tests/testutil.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "harness/cell.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/safetensors.h"
#include "reconstructors/recon.h"

static char g_dir[256], g_calib[300], g_eval[300], g_bf16[300], g_fp16[300], g_gpt2[300];

enum { VOCAB = 64, SEQ = 16, NWIN = 6, NL = 4 };

static int make_model(const char *dir, fl_family fam, fl_dtype dt, uint64_t seed) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, fam);
    c.vocab = VOCAB; c.d = 32; c.n_layer = NL; c.n_head = 4; c.n_kv_head = fam == FL_LLAMA ? 2 : 4; c.head_dim = 8;
    c.d_ff = 64; c.max_pos = SEQ;
    fl_model m;
    if (fl_model_create(&m, &c) != 0) return -1;
    fl_model_init_random(&m, seed);
    /* norms and biases away from their init, so a wrong layout shows */
    for (int i = 0; i < m.n_params; i++) {
        fl_param *p = &m.params[i];
        if (p->kind == FL_PK_NORM_W || p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B) tu_fill(p->w, (size_t)p->n, 0.1f, seed + i);
        if (p->kind == FL_PK_NORM_W)
            for (int64_t j = 0; j < p->n; j++) p->w[j] += 1.0f;
    }
    int rc = fl_model_save_dtype(&m, dir, dt);
    fl_model_free(&m);
    return rc;
}

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_dir, sizeof g_dir);
    snprintf(g_calib, sizeof g_calib, "%s/calib.bin", g_dir);
    snprintf(g_eval, sizeof g_eval, "%s/eval.bin", g_dir);
    snprintf(g_bf16, sizeof g_bf16, "%s/llama_bf16", g_dir);
    snprintf(g_fp16, sizeof g_fp16, "%s/llama_fp16", g_dir);
    snprintf(g_gpt2, sizeof g_gpt2, "%s/gpt2_bf16", g_dir);
    int32_t t[3000];
    uint64_t s = 7;
    for (int i = 0; i < 3000; i++) t[i] = (int32_t)(tu_rng(&s) % VOCAB);
    if (fl_tokfile_write(g_calib, t, 3000) != 0 || fl_tokfile_write(g_eval, t + 1000, 200) != 0) return -1;
    if (make_model(g_bf16, FL_LLAMA, FL_DT_BF16, 3) != 0 || make_model(g_fp16, FL_LLAMA, FL_DT_F16, 4) != 0) return -1;
    return make_model(g_gpt2, FL_GPT2, FL_DT_BF16, 5);
}

static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fbits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---- conversions --------------------------------------------------------- */

static void test_bf16_rounding(void **st) {
    (void)st;
    assert_int_equal(fl_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fl_f32_to_bf16(-2.0f), 0xc000);
    /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
    assert_int_equal(fl_f32_to_bf16(fbits(0x3f808000u)), 0x3f80);
    assert_int_equal(fl_f32_to_bf16(fbits(0x3f818000u)), 0x3f82);
    assert_int_equal(fl_f32_to_bf16(fbits(0x3f808001u)), 0x3f81);   /* above half: up */
    assert_int_equal(fl_f32_to_bf16(fbits(0x3f807fffu)), 0x3f80);   /* below half: down */
    /* zeros keep their sign; a non-zero too small becomes the smallest subnormal */
    assert_int_equal(fl_f32_to_bf16(0.0f), 0x0000);
    assert_int_equal(fl_f32_to_bf16(-0.0f), 0x8000);
    assert_int_equal(fl_f32_to_bf16(fbits(0x00000001u)), 0x0001);
    assert_int_equal(fl_f32_to_bf16(fbits(0x80007fffu)), 0x8001);
    assert_true(isnan(fl_bf16_to_f32(fl_f32_to_bf16(NAN))));
    assert_int_equal(fl_f32_to_bf16(INFINITY), 0x7f80);
    /* every bf16 value survives widening and narrowing */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80u) == 0x7f80u && (h & 0x7fu)) continue;   /* NaNs: checked above */
        assert_int_equal(fl_f32_to_bf16(fl_bf16_to_f32((uint16_t)h)), h);
    }
}

static void test_f16_rounding(void **st) {
    (void)st;
    int over = 0;
    assert_int_equal(fl_f32_to_f16(1.0f, &over), 0x3c00);
    assert_int_equal(fl_f32_to_f16(1.0f / 3.0f, &over), 0x3555);
    assert_int_equal(fl_f32_to_f16(65504.0f, &over), 0x7bff);
    assert_int_equal(fl_f32_to_f16(65519.0f, &over), 0x7bff);
    assert_int_equal(over, 0);
    fl_f32_to_f16(65520.0f, &over);
    assert_int_equal(over, 1);
    over = 0;
    /* ties to even at 1 + 2^-11, between 1 and 1 + 2^-10 */
    assert_int_equal(fl_f32_to_f16(1.0f + 0x1p-11f, &over), 0x3c00);
    assert_int_equal(fl_f32_to_f16(1.0f + 3 * 0x1p-11f, &over), 0x3c02);
    /* subnormals: units of 2^-24, ties to even; below 2^-25 the smallest */
    assert_int_equal(fl_f32_to_f16(0x1p-24f, &over), 0x0001);
    assert_int_equal(fl_f32_to_f16(3 * 0x1p-25f, &over), 0x0002);
    assert_int_equal(fl_f32_to_f16(5 * 0x1p-25f, &over), 0x0002);
    assert_int_equal(fl_f32_to_f16(1e-8f, &over), 0x0001);
    assert_int_equal(fl_f32_to_f16(-1e-30f, &over), 0x8001);
    assert_int_equal(fl_f32_to_f16(-0.0f, &over), 0x8000);
    assert_int_equal(fl_f32_to_f16(0x1p-14f - 0x1p-30f, &over), 0x0400);   /* rounds up into the smallest normal */
    assert_int_equal(over, 0);
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) continue;
        assert_int_equal(fl_f32_to_f16(fl_f16_to_f32((uint16_t)h), &over), h);
    }
    assert_int_equal(over, 0);
    /* and rounding agrees with a wide computation on random values */
    uint64_t s = 11;
    for (int i = 0; i < 200000; i++) {
        float x = fbits((uint32_t)(tu_rng(&s) & 0x477fffffu)) * ((tu_rng(&s) & 1) ? 1.0f : -1.0f);
        uint16_t h = fl_f32_to_f16(x, &over);
        double v = fl_f16_to_f32(h), lo = fl_f16_to_f32((uint16_t)(h - ((h & 0x7fff) ? 1 : 0))),
               hi = fl_f16_to_f32((uint16_t)(h + 1));
        if (x == 0 || (h & 0x7fff) == 1) continue;   /* the underflow rule, checked above */
        if ((h & 0x7fff) >= 0x7bff) continue;
        /* the nearest: no neighbour strictly closer */
        assert_true(fabs(v - x) <= fabs(lo - x) && fabs(v - x) <= fabs(hi - x));
    }
}

/* ---- cells ------------------------------------------------------------- */

static void run_cell(const char *model, const char *recon, const char *prop, int stream, const char *dtype, const char *out,
                     fl_cell_result *r) {
    fl_cell_cfg c = { .model_dir = model, .criterion = "wanda", .sparsity = "0.5", .reconstruct = recon, .propagation = prop,
                      .calib_file = g_calib, .calib_samples = NWIN, .seqlen = SEQ, .seed = 1, .n_evals = 1, .out_dir = out,
                      .cache = g_dir, .lr = 1e-3f, .epochs = 2, .recon_batch = 4, .drift_windows = "0", .stream = stream,
                      .save_dtype = dtype };
    c.evals[0] = g_eval;
    int rc = fl_cell_run(&c, r);
    if (rc != 0) print_error("%s %s stream=%d: %s\n", model, recon, stream, fl_errmsg());
    assert_int_equal(rc, 0);
}

static size_t cell_peak(const fl_cell_result *r) {
    size_t mt = 0;
    for (int i = 0; i < FL_NPHASES; i++) mt = r->prof.ph[i].peak_bytes > mt ? r->prof.ph[i].peak_bytes : mt;
    return mt;
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (fl_read_file(a, &x, &nx) != 0 || fl_read_file(b, &y, &ny) != 0) fail_msg("cannot read %s or %s", a, b);
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* One model and reconstructor, streamed and not: identical results. */
static void check_same(const char *model, const char *recon, const char *prop, int k) {
    char o0[400], o1[400], f0[500], f1[500];
    snprintf(o0, sizeof o0, "%s/full_%d", g_dir, k);
    snprintf(o1, sizeof o1, "%s/stream_%d", g_dir, k);
    fl_cell_result r0, r1;
    run_cell(model, recon, prop, 0, NULL, o0, &r0);
    run_cell(model, recon, prop, 1, NULL, o1, &r1);
    print_message("%-40s %-10s %-6s ppl %.6f / %.6f  peak %zu / %zu  spill %llu\n", model + strlen(g_dir), recon, prop, r0.ppl[0],
                  r1.ppl[0], cell_peak(&r0), cell_peak(&r1), (unsigned long long)r1.spill_bytes);
    assert_string_equal(r0.mask_sha256, r1.mask_sha256);
    assert_true(r0.ppl[0] == r1.ppl[0]);                       /* bit for bit */
    assert_true(r0.sparsity == r1.sparsity);
    for (int i = 0; i < r0.n_linears; i++) assert_true(r0.lin[i].err == r1.lin[i].err);
    snprintf(f0, sizeof f0, "%s/model.safetensors", o0);
    snprintf(f1, sizeof f1, "%s/model.safetensors", o1);
    assert_true(same_file(f0, f1));
    snprintf(f0, sizeof f0, "%s/masks.bin", o0);
    snprintf(f1, sizeof f1, "%s/masks.bin", o1);
    assert_true(same_file(f0, f1));
    /* the streamed cell held fewer blocks: its peak is lower by at least
     * NL - 2 of them (a unit holds at most two: blocks:2) unless every
     * block was held (retraining) */
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, model), 0);
    fl_model sk;
    assert_int_equal(fl_model_create_ex(&sk, &cfg, 0), 0);
    const size_t blk = sk.block_floats * sizeof(float);
    fl_model_free(&sk);
    if (strncmp(recon, "retrain", 7)) assert_true(cell_peak(&r1) + (NL - 2) * blk <= cell_peak(&r0));
    /* freelunch plan --stream: the streamed cell's figures within 10% */
    fl_recon_predict_args pa = { .reconstruct = recon, .propagation = prop, .nwin = NWIN, .T = SEQ, .batch = 4, .epochs = 2,
                                 .stream = 1 };
    fl_recon_predict_out p;
    assert_int_equal(fl_recon_predict(&cfg, &pa, &p), 0);
    size_t mpp = fl_mem_phase_peak("statistics");
    if (r1.peak_prune_bytes > mpp) mpp = r1.peak_prune_bytes;
    const size_t pe = fl_pred_eval_stream_bytes(&cfg, 200 / SEQ, 4, SEQ);
    const double rp = (double)mpp / p.peak_prune_bytes, re = (double)r1.prof.ph[FL_PH_EVAL].peak_bytes / pe,
                 rr = p.peak_recover_bytes ? (double)r1.peak_recover_bytes / p.peak_recover_bytes : 1.0;
    print_message("  plan --stream: pruning pass %zu / %zu = %.3f, recovery %zu / %zu = %.3f, evaluation %zu / %zu = %.3f\n", mpp,
                  p.peak_prune_bytes, rp, r1.peak_recover_bytes, p.peak_recover_bytes, rr, r1.prof.ph[FL_PH_EVAL].peak_bytes, pe, re);
    assert_true(rp >= 0.9 && rp <= 1.1);
    assert_true(rr >= 0.9 && rr <= 1.1);
    assert_true(re >= 0.9 && re <= 1.1);
    assert_true(r1.spill_bytes > 0);
    assert_true(r0.spill_bytes == 0);
    fl_cell_result_free(&r0);
    fl_cell_result_free(&r1);
}

static void test_stream_same_bf16(void **st) {
    (void)st;
    check_same(g_bf16, "sublayer", "sparse", 0);
    check_same(g_bf16, "none", "sparse", 1);
    check_same(g_bf16, "blocks:2", "sparse", 2);
    check_same(g_bf16, "matrix", "sparse", 3);
    check_same(g_bf16, "sublayer", "dense", 4);
    check_same(g_bf16, "retrain:full", "sparse", 5);
}

static void test_stream_same_fp16(void **st) {
    (void)st;
    check_same(g_fp16, "sublayer", "sparse", 10);
    check_same(g_fp16, "block", "dense-target", 11);
}

static void test_stream_same_gpt2(void **st) {
    (void)st;
    check_same(g_gpt2, "sublayer", "sparse", 20);
    check_same(g_gpt2, "matrix", "dense", 21);
}

/* --save-dtype: header dtype, values rounded as the converter does, zeros
 * exactly the masks. */
static void check_save(const char *model, fl_dtype dt, const char *name, int k) {
    char o32[400], oh[400], f[500];
    snprintf(o32, sizeof o32, "%s/save32_%d", g_dir, k);
    snprintf(oh, sizeof oh, "%s/saveh_%d", g_dir, k);
    fl_cell_result r0, r1;
    run_cell(model, "sublayer", "sparse", 1, NULL, o32, &r0);
    run_cell(model, "sublayer", "sparse", 1, name, oh, &r1);
    assert_string_equal(r0.mask_sha256, r1.mask_sha256);
    snprintf(f, sizeof f, "%s/model.safetensors", oh);
    fl_st_file sf;
    assert_int_equal(fl_st_open(&sf, f), 0);
    for (int i = 0; i < sf.n; i++) assert_int_equal(sf.t[i].dtype, dt);
    fl_st_close(&sf);
    fl_model a, b;
    assert_int_equal(fl_model_load(&a, o32), 0);
    assert_int_equal(fl_model_load(&b, oh), 0);
    char *masks;
    size_t nm;
    snprintf(f, sizeof f, "%s/masks.bin", oh);
    assert_int_equal(fl_read_file(f, &masks, &nm), 0);
    size_t mo = 0;
    int64_t zeros = 0;
    for (int i = 0; i < a.n_params; i++) {
        const fl_param *p = &a.params[i], *q = &b.params[i];
        for (int64_t j = 0; j < p->n; j++) {
            int over = 0;
            float want = dt == FL_DT_BF16 ? fl_bf16_to_f32(fl_f32_to_bf16(p->w[j])) : fl_f16_to_f32(fl_f32_to_f16(p->w[j], &over));
            assert_true(bits(want) == bits(q->w[j]));
        }
        if (p->kind != FL_PK_LINEAR_W) continue;
        for (int64_t j = 0; j < p->n; j++) {
            assert_true(mo < nm);
            const int kept = masks[mo++];
            assert_true(kept == (q->w[j] != 0.0f));   /* the file's zeros are the mask's */
            zeros += !kept;
        }
    }
    /* masks.bin is in depth order, the registry's order of linears too */
    assert_true(mo == nm);
    assert_true(zeros > 0);
    free(masks);
    /* and the model evaluates: its perplexity is that of the rounded weights */
    int32_t *tok;
    int64_t n;
    assert_int_equal(fl_tokfile_read(g_eval, VOCAB, &tok, &n), 0);
    fl_ppl_result pa, pb;
    assert_int_equal(fl_eval_ppl(&b, tok, n, SEQ, 0, 0, 4, 0, &pb), 0);
    fl_model bs;
    assert_int_equal(fl_model_load_streamed(&bs, oh, 1), 0);
    assert_int_equal(fl_eval_ppl(&bs, tok, n, SEQ, 0, 0, 4, 0, &pa), 0);
    assert_true(pa.nll == pb.nll);   /* streamed eval of the saved file: the same */
    print_message("%s: ppl fp32 %.6f, %s %.6f (reloaded %.6f)\n", model + strlen(g_dir), r0.ppl[0], name, r1.ppl[0], pb.ppl);
    assert_true(fabs(log(r1.ppl[0] / r0.ppl[0])) < 0.05);
    free(tok);
    fl_model_free(&bs);
    fl_model_free(&a);
    fl_model_free(&b);
    fl_cell_result_free(&r0);
    fl_cell_result_free(&r1);
}

static void test_save_dtype(void **st) {
    (void)st;
    check_save(g_bf16, FL_DT_BF16, "bf16", 0);
    check_save(g_fp16, FL_DT_F16, "fp16", 1);
    check_save(g_gpt2, FL_DT_F16, "fp16", 2);
}

/* ---- bad input ----------------------------------------------------------- */

static void test_truncated(void **st) {
    (void)st;
    char dir[400], cmd[1200], f[500];
    snprintf(dir, sizeof dir, "%s/trunc", g_dir);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && truncate -s -1000 '%s/model.safetensors'", g_bf16, dir, dir);
    assert_int_equal(system(cmd), 0);
    fl_model m;
    assert_int_equal(fl_model_load_streamed(&m, dir, 0), -1);
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    print_message("%s\n", fl_errmsg());
    assert_non_null(strstr(fl_errmsg(), f));
    assert_non_null(strstr(fl_errmsg(), "truncated"));
    assert_null(strchr(fl_errmsg(), '\n'));
}

static void test_fp16_overflow(void **st) {
    (void)st;
    fl_model m;
    assert_int_equal(fl_model_load(&m, g_bf16), 0);
    m.layers[1].up_w->w[5] = 1e5f;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/overflow", g_dir);
    assert_int_equal(fl_model_save_dtype(&m, dir, FL_DT_F16), -1);
    print_message("%s\n", fl_errmsg());
    assert_non_null(strstr(fl_errmsg(), "model.layers.1.mlp.up_proj.weight"));
    assert_non_null(strstr(fl_errmsg(), "F16"));
    char f[500];
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    assert_int_equal(access(f, F_OK), -1);   /* nothing half-written left */
    assert_int_equal(fl_model_save_dtype(&m, dir, FL_DT_BF16), 0);   /* bf16 has the range */
    fl_model_free(&m);
}

static void test_hold_rules(void **st) {
    (void)st;
    fl_model m;
    const size_t live0 = fl_mem_live();
    assert_int_equal(fl_model_load_streamed(&m, g_bf16, 0), 0);
    const size_t base = fl_mem_live();
    assert_true(!fl_block_resident(&m, 0) && m.layers[0].q_w->w == NULL);
    float x[SEQ * 32];
    tu_fill(x, SEQ * 32, 1.0f, 3);
    fl_fwd a = { .B = 1, .T = SEQ, .x_in = x, .x_out = x };
    assert_int_equal(fl_forward(&m, fl_range_blocks(0, 0), &a, NULL), -1);
    assert_non_null(strstr(fl_errmsg(), "not resident"));
    assert_int_equal(fl_model_hold(&m, 1, 3), 0);
    assert_true(fl_mem_live() == base + 2 * m.block_floats * sizeof(float));
    assert_int_equal(fl_forward(&m, fl_range_blocks(1, 2), &a, NULL), 0);
    /* a change to a held block survives its release (the spill file) */
    m.layers[2].v_w->w[3] = 0.125f;
    uint8_t mk[32 * 16];
    memset(mk, 1, sizeof mk);
    mk[7] = 0;
    assert_int_equal(fl_param_set_mask(m.layers[2].v_w, mk), 0);
    fl_param_set_trainable(m.layers[1].fc1_w, 1);
    assert_int_equal(fl_model_hold(&m, 2, 3), -1);   /* block 1 trains */
    assert_non_null(strstr(fl_errmsg(), "layers.1.fc1.weight"));
    fl_param_set_trainable(m.layers[1].fc1_w, 0);
    assert_int_equal(fl_model_hold(&m, 0, 1), 0);
    assert_true(fl_mem_live() == base + m.block_floats * sizeof(float));
    assert_true(m.layers[2].v_w->w == NULL && m.layers[2].v_w->mask == NULL);
    assert_int_equal(fl_model_hold(&m, 2, 3), 0);
    assert_true(m.layers[2].v_w->w[3] == 0.125f && m.layers[2].v_w->w[7] == 0.0f);
    assert_true(m.layers[2].v_w->mask && m.layers[2].v_w->mask[7] == 0 && m.layers[2].v_w->mask[8] == 1);
    /* the resident copy of the same checkpoint agrees on an untouched block */
    fl_model f;
    assert_int_equal(fl_model_load(&f, g_bf16), 0);
    assert_int_equal(fl_model_hold(&m, 3, 4), 0);
    assert_memory_equal(m.layers[3].fc2_w->w, f.layers[3].fc2_w->w, sizeof(float) * (size_t)f.layers[3].fc2_w->n);
    fl_model_free(&f);
    fl_model_free(&m);
    assert_true(fl_mem_live() == live0);
}

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rounding),   cmocka_unit_test(test_f16_rounding),   cmocka_unit_test(test_hold_rules),
        cmocka_unit_test(test_stream_same_bf16), cmocka_unit_test(test_stream_same_fp16), cmocka_unit_test(test_stream_same_gpt2),
        cmocka_unit_test(test_save_dtype),     cmocka_unit_test(test_truncated),      cmocka_unit_test(test_fp16_overflow),
    };
    return cmocka_run_group_tests_name("stream", tests, setup, teardown);
}
