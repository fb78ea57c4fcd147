/* libFuzzer target: a model directory. The input is config.json |
 * safetensors bytes [| index JSON], split at FZ_SEP. Without an index the
 * weights are model.safetensors; with one they are shard.safetensors and
 * the index is model.safetensors.index.json. Then fl_config_load and
 * fl_model_load; a model that loads must be usable as loaded. */
#include "fuzz_common.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/model.h"

static void seed_model(const char *name, fl_family f, int sharded) {
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, f);
    c.vocab = 8; c.d = 4; c.n_layer = 1; c.n_head = 2; c.n_kv_head = f == FL_LLAMA ? 1 : 2; c.head_dim = 2;
    c.d_ff = 4; c.max_pos = 4;
    fl_model m;
    if (fl_model_create(&m, &c) != 0) abort();
    fl_model_init_random(&m, 1);
    char d[300];
    fz_path(d, sizeof d, name);
    if (fl_model_save(&m, d) != 0) abort();
    fl_model_free(&m);
    char cp[400], wp[400];
    snprintf(cp, sizeof cp, "%s/config.json", d);
    snprintf(wp, sizeof wp, "%s/model.safetensors", d);
    size_t nc, nw;
    char *cs = fz_slurp(cp, &nc), *ws = fz_slurp(wp, &nw);
    const char *index = "{\"weight_map\": {\"model.embed_tokens.weight\": \"shard.safetensors\"}}";
    const void *pc[3] = { cs, ws, index };
    size_t ln[3] = { nc, nw, strlen(index) };
    fz_seed(name, pc, ln, sharded ? 3 : 2);
    free(cs);
    free(ws);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    seed_model("gpt2", FL_GPT2, 0);
    seed_model("opt", FL_OPT, 0);
    seed_model("llama", FL_LLAMA, 0);
    seed_model("llama-index", FL_LLAMA, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *p[3];
    size_t len[3];
    int k = fz_split(data, size, p, len, 3);
    char d[300], f[400];
    fz_path(d, sizeof d, "model");
    mkdir(d, 0777);
    snprintf(f, sizeof f, "%s/config.json", d);
    fz_write(f, p[0], len[0]);
    snprintf(f, sizeof f, "%s/model.safetensors", d);
    unlink(f);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", d);
    unlink(f);
    if (k > 2) {
        fz_write(f, p[2], len[2]);
        snprintf(f, sizeof f, "%s/shard.safetensors", d);
    } else snprintf(f, sizeof f, "%s/model.safetensors", d);
    if (k > 1) fz_write(f, p[1], len[1]);
    fl_config c;
    fl_config_load(&c, d);
    fl_model m;
    if (fl_model_load(&m, d) == 0) {
        if (fl_config_num_params(&m.cfg) != fl_model_num_params(&m)) abort();
        fl_model_free(&m);
    }
    return 0;
}
