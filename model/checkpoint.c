/* HF model directories: config.json and safetensors weights. See checkpoint.h.
 *
 * One table (build_map) lists, for a model of a given config, every HF
 * tensor name, its stored shape and how it maps onto our parameters; load
 * and save both walk that table, so the two directions cannot drift apart.
 * Every error is one line that names the file and the problem. */
#include "checkpoint.h"
#include "alloc.h"
#include "err.h"
#include "fileio.h"
#include "safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small file helpers ------------------------------------------------- */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static cJSON *read_json(const char *path) {
    size_t len;
    char *s;
    if (fl_read_file(path, &s, &len) != 0) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    /* like Python's json.load, nothing but whitespace may follow the value */
    for (const char *p = end; j && p < s + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') { cJSON_Delete(j); j = NULL; end = p; }
    if (!j) {
        int line = 1;
        for (const char *p = s; end && p < end; p++) line += *p == '\n';
        fl_err("%s: not valid JSON (error near line %d)", path, line);
    } else if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
        fl_err("%s: JSON but not an object", path);
    }
    free(s);
    return j;
}

/* path.tmp, fsync, rename: a reader never sees half a file. */
static int write_text_atomic(const char *path, const char *text) {
    char *tmp;
    FILE *fp = fl_tmp_open(path, &tmp);
    if (!fp) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, fp) == n && fputc('\n', fp) != EOF;
    return fl_tmp_commit(fp, tmp, path, ok);
}

/* ---- config.json: reading ----------------------------------------------- */

/* Key readers. An absent key or a JSON null takes the default, as in HF,
 * unless the key is required. Wrong types are errors naming file and key. */
typedef struct { const char *path; const cJSON *root; } cfg_src;

static const cJSON *key(const cfg_src *s, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, k);
    return cJSON_IsNull(j) ? NULL : j;
}

static int get_int(const cfg_src *s, const char *k, int *out, int def, int required) {
    const cJSON *j = key(s, k);
    if (!j) {
        if (required) return fl_err("%s: missing \"%s\"", s->path, k);
        *out = def;
        return 0;
    }
    /* range first, then the cast: casting inf or 1e300 to an integer is undefined */
    double v = cJSON_IsNumber(j) ? j->valuedouble : 0.5;
    if (!(v >= -2147483648.0 && v <= 2147483647.0) || v != floor(v))
        return fl_err("%s: \"%s\" must be an integer (between -2147483648 and 2147483647)", s->path, k);
    *out = (int)v;
    return 0;
}

static int get_float(const cfg_src *s, const char *k, float *out, float def) {
    const cJSON *j = key(s, k);
    if (!j) { *out = def; return 0; }
    /* a double beyond float's range does not convert to a float (undefined) */
    if (!cJSON_IsNumber(j) || !(fabs(j->valuedouble) <= FLT_MAX))
        return fl_err("%s: \"%s\" must be a number within float range", s->path, k);
    *out = (float)j->valuedouble;
    return 0;
}

static int get_bool(const cfg_src *s, const char *k, int *out, int def) {
    const cJSON *j = key(s, k);
    if (!j) { *out = def; return 0; }
    if (!cJSON_IsBool(j)) return fl_err("%s: \"%s\" must be true or false", s->path, k);
    *out = cJSON_IsTrue(j);
    return 0;
}

/* GPT-2 and OPT derive the head size as hidden / heads, and HF's classes
 * know no other; "head_dim" is freelunch's key for a model whose heads
 * were removed (structured pruning keeps the head size and the hidden
 * size): freelunch and tests/oracle/torch_ref.py read it, HF's GPT-2 and
 * OPT classes ignore it and refuse the smaller q/k/v shapes. */
static int get_head_dim(const cfg_src *s, fl_config *c) {
    const int def = c->n_head > 0 ? c->d / c->n_head : 0;
    if (get_int(s, "head_dim", &c->head_dim, def, 0)) return -1;
    if (c->head_dim != def && c->head_dim > 0 && c->d > 0 && c->d % c->head_dim == 0 && c->d / c->head_dim > c->n_head) return 0;
    if (c->head_dim != def)
        return fl_err("%s: \"head_dim\" %d with %d heads must divide hidden size %d into more than %d heads (fewer heads "
                      "than hidden / head_dim, as after head removal)", s->path, c->head_dim, c->n_head, c->d, c->n_head);
    return 0;
}

/* freelunch's per-layer sizes (FLAP's global ratio leaves every block its
 * own): an array of one integer per block, each in 1 to the config's own
 * value (num_key_value_heads, or num_attention_heads where the family has
 * no groups; intermediate_size / n_inner / ffn_dim), which is the largest.
 * HF's classes know no such key. out[l] = 0 where a block has the
 * config's value. */
static int get_layer_sizes(const cfg_src *s, const char *k, int max, int L, int *out) {
    const cJSON *j = key(s, k);
    if (!j) return 0;
    if (!cJSON_IsArray(j) || L < 1 || L > FL_MAX_LAYERS || cJSON_GetArraySize(j) != L)
        return fl_err("%s: \"%s\" must be an array of one integer per block (%d)", s->path, k, L);
    int l = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : 0.5;
        if (!(v >= 1 && v <= max) || v != floor(v))
            return fl_err("%s: \"%s\"[%d] must be an integer in 1 to %d (the config's own value, the largest)", s->path, k, l, max);
        out[l++] = (int)v == max ? 0 : (int)v;
    }
    return 0;
}

static int get_str(const cfg_src *s, const char *k, const char **out, const char *def) {
    const cJSON *j = key(s, k);
    if (!j) { *out = def; return 0; }
    if (!cJSON_IsString(j)) return fl_err("%s: \"%s\" must be a string", s->path, k);
    *out = j->valuestring;
    return 0;
}

/* bos/eos: an integer, null, or (newer configs) a list whose first entry we keep. */
static int get_token_id(const cfg_src *s, const char *k, int *out) {
    const cJSON *j = key(s, k);
    *out = -1;
    if (cJSON_IsArray(j)) j = cJSON_GetArrayItem(j, 0);
    if (!j) return 0;
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= -2147483648.0 && j->valuedouble <= 2147483647.0) || j->valuedouble != floor(j->valuedouble))
        return fl_err("%s: \"%s\" must be an integer token id", s->path, k);
    *out = (int)j->valuedouble;
    return 0;
}

static int unsupported(const cfg_src *s, const char *what) {
    return fl_err("%s: %s is not supported by freelunch", s->path, what);
}

/* A positive number inside a rope_scaling object: a missing or bad one is
 * an error naming it, never a default. */
static int rope_num(const cfg_src *s, const cJSON *r, const char *obj, const char *k, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r, k);
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0 && j->valuedouble <= FLT_MAX))
        return fl_err("%s: \"%s\".\"%s\" must be a positive number", s->path, obj, k);
    *out = j->valuedouble;
    return 0;
}

/* RoPE: rotate-half RoPE, plain or with the frequency scaling of
 * rope_scaling "linear" or "llama3" (model.c rope_scaled_table). Older
 * configs say rope_theta and rope_scaling (null when plain); transformers
 * 5 folds both into rope_parameters {"rope_type": "default", "rope_theta":
 * ...}. Any other type (dynamic, yarn, longrope...) is refused by name:
 * without it the model would run with the wrong positions. */
static int get_rope(const cfg_src *s, fl_config *c) {
    if (get_float(s, "rope_theta", &c->rope_theta, 10000.0f) != 0) return -1;
    const char *names[2] = { "rope_scaling", "rope_parameters" };
    for (int i = 0; i < 2; i++) {
        const cJSON *r = key(s, names[i]);
        if (!r) continue;
        if (!cJSON_IsObject(r)) return fl_err("%s: \"%s\" must be an object or null", s->path, names[i]);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "rope_type");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(r, "type");
        const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
        double f = 1, lo = 0, hi = 0, om = 0;
        if (type && !strcmp(type, "linear")) {
            if (rope_num(s, r, names[i], "factor", &f) != 0) return -1;
            c->rope_scaling = FL_ROPE_LINEAR;
            c->rope_factor = (float)f;
        } else if (type && !strcmp(type, "llama3")) {
            if (rope_num(s, r, names[i], "factor", &f) || rope_num(s, r, names[i], "low_freq_factor", &lo) ||
                rope_num(s, r, names[i], "high_freq_factor", &hi) ||
                rope_num(s, r, names[i], "original_max_position_embeddings", &om))
                return -1;
            if (!(hi > lo)) return fl_err("%s: \"%s\": high_freq_factor must exceed low_freq_factor", s->path, names[i]);
            if (om > FL_MAX_POSITIONS || om != floor(om))
                return fl_err("%s: \"%s\".\"original_max_position_embeddings\" must be a whole number of at most %d", s->path,
                              names[i], FL_MAX_POSITIONS);
            c->rope_scaling = FL_ROPE_LLAMA3;
            c->rope_factor = (float)f; c->rope_low_freq = (float)lo; c->rope_high_freq = (float)hi; c->rope_orig_max = (int)om;
        } else if (type ? strcmp(type, "default") != 0 : i == 0) {
            /* rope_parameters without a type is plain RoPE; rope_scaling without one is not */
            char what[160];
            snprintf(what, sizeof what, "%s of type \"%s\" (freelunch reads default, linear and llama3)", names[i], type ? type : "?");
            return unsupported(s, what);
        }
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(r, "rope_theta");
        if (cJSON_IsNumber(th)) {
            if (!(fabs(th->valuedouble) <= FLT_MAX)) return fl_err("%s: \"rope_theta\" must be within float range", s->path);
            c->rope_theta = (float)th->valuedouble;
        }
    }
    if (!(c->rope_theta > 0)) return fl_err("%s: \"rope_theta\" must be positive", s->path);
    return 0;
}

static int parse_config(fl_config *c, const cfg_src *s) {
    memset(c, 0, sizeof *c);
    const char *mt;
    if (get_str(s, "model_type", &mt, NULL) != 0) return -1;
    if (!mt) return fl_err("%s: no \"model_type\" (freelunch reads gpt2, opt, llama and qwen2)", s->path);
    fl_family fam;
    if (strcmp(mt, "gpt2") == 0) fam = FL_GPT2;
    else if (strcmp(mt, "opt") == 0) fam = FL_OPT;
    else if (strcmp(mt, "llama") == 0) fam = FL_LLAMA;
    else if (strcmp(mt, "qwen2") == 0) fam = FL_QWEN2;
    else return fl_err("%s: model_type \"%s\" is not supported (freelunch reads gpt2, opt, llama and qwen2)", s->path, mt);
    fl_config_family_defaults(c, fam);

    const char *act;
    int flag;
    switch (fam) {
    case FL_GPT2:
        if (get_int(s, "n_embd", &c->d, 0, 1) || get_int(s, "n_layer", &c->n_layer, 0, 1) ||
            get_int(s, "n_head", &c->n_head, 0, 1) || get_int(s, "n_positions", &c->max_pos, 0, 1) ||
            get_int(s, "vocab_size", &c->vocab, 0, 1) || get_int(s, "n_inner", &c->d_ff, c->d > 0 && c->d <= INT_MAX / 4 ? 4 * c->d : c->d, 0) ||
            get_float(s, "layer_norm_epsilon", &c->eps, 1e-5f) || get_bool(s, "tie_word_embeddings", &c->tied, 1) ||
            get_str(s, "activation_function", &act, "gelu_new"))
            return -1;
        /* gelu_new and gelu_pytorch_tanh are the same tanh approximation */
        if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
            return fl_err("%s: activation_function \"%s\" is not supported for gpt2 (gelu_new or gelu_pytorch_tanh)", s->path, act);
        if (get_bool(s, "scale_attn_by_inverse_layer_idx", &flag, 0)) return -1;
        if (flag) return unsupported(s, "scale_attn_by_inverse_layer_idx = true");
        if (get_bool(s, "scale_attn_weights", &flag, 1)) return -1;
        if (!flag) return unsupported(s, "scale_attn_weights = false");
        c->n_kv_head = c->n_head;
        if (get_head_dim(s, c)) return -1;
        break;
    case FL_OPT:
        if (get_int(s, "hidden_size", &c->d, 0, 1) || get_int(s, "num_hidden_layers", &c->n_layer, 0, 1) ||
            get_int(s, "num_attention_heads", &c->n_head, 0, 1) || get_int(s, "ffn_dim", &c->d_ff, 0, 1) ||
            get_int(s, "max_position_embeddings", &c->max_pos, 0, 1) || get_int(s, "vocab_size", &c->vocab, 0, 1) ||
            get_bool(s, "tie_word_embeddings", &c->tied, 1) || get_str(s, "activation_function", &act, "relu"))
            return -1;
        if (strcmp(act, "relu") != 0)
            return fl_err("%s: activation_function \"%s\" is not supported for opt (relu)", s->path, act);
        /* opt-350m: post-LN blocks and no final norm (HF OPTDecoder keeps
         * final_layer_norm only with do_layer_norm_before), and embeddings
         * of word_embed_proj_dim mapped by project_in / project_out */
        if (get_bool(s, "do_layer_norm_before", &flag, 1)) return -1;
        c->post_ln = !flag;
        int proj;
        if (get_int(s, "word_embed_proj_dim", &proj, c->d, 0)) return -1;
        if (proj < 1 || proj > FL_MAX_HIDDEN)
            return fl_err("%s: \"word_embed_proj_dim\" %d is out of range (1 to %d)", s->path, proj, FL_MAX_HIDDEN);
        c->proj = proj != c->d ? proj : 0;
        if (get_bool(s, "_remove_final_layer_norm", &flag, 0)) return -1;
        if (flag && !c->post_ln) return unsupported(s, "_remove_final_layer_norm = true");
        if (get_bool(s, "layer_norm_elementwise_affine", &flag, 1)) return -1;
        if (!flag) return unsupported(s, "layer_norm_elementwise_affine = false");
        if (get_bool(s, "enable_bias", &flag, 1)) return -1;
        c->qkv_bias = c->o_bias = c->mlp_bias = flag;
        c->eps = 1e-5f;   /* HF OPT uses nn.LayerNorm's default, not a config key */
        c->n_kv_head = c->n_head;
        if (get_head_dim(s, c)) return -1;
        break;
    case FL_LLAMA:
    case FL_QWEN2:
        if (get_int(s, "hidden_size", &c->d, 0, 1) || get_int(s, "intermediate_size", &c->d_ff, 0, 1) ||
            get_int(s, "num_hidden_layers", &c->n_layer, 0, 1) || get_int(s, "num_attention_heads", &c->n_head, 0, 1) ||
            get_int(s, "vocab_size", &c->vocab, 0, 1) || get_int(s, "max_position_embeddings", &c->max_pos, 0, 1) ||
            get_int(s, "num_key_value_heads", &c->n_kv_head, c->n_head, 0) ||
            get_int(s, "head_dim", &c->head_dim, c->n_head > 0 ? c->d / c->n_head : 0, 0) ||
            get_float(s, "rms_norm_eps", &c->eps, 1e-6f) || get_bool(s, "tie_word_embeddings", &c->tied, 0) ||
            get_str(s, "hidden_act", &act, "silu") || get_rope(s, c))
            return -1;
        if (strcmp(act, "silu") != 0)
            return fl_err("%s: hidden_act \"%s\" is not supported (silu)", s->path, act);
        if (fam == FL_LLAMA) {
            if (get_bool(s, "attention_bias", &flag, 0)) return -1;
            c->qkv_bias = c->o_bias = flag;
            /* HF LlamaMLP's mlp_bias: gate, up and down biases together */
            if (get_bool(s, "mlp_bias", &c->mlp_bias, 0)) return -1;
        } else {
            if (get_bool(s, "use_sliding_window", &flag, 0)) return -1;
            if (flag) return unsupported(s, "use_sliding_window = true");
        }
        break;
    }
    if (get_layer_sizes(s, "layer_num_key_value_heads", c->n_kv_head, c->n_layer, c->layer_kv) ||
        get_layer_sizes(s, "layer_intermediate_size", c->d_ff, c->n_layer, c->layer_ff))
        return -1;
    if (get_token_id(s, "bos_token_id", &c->bos_id) || get_token_id(s, "eos_token_id", &c->eos_id)) return -1;
    return fl_config_validate(c, s->path);
}

int fl_config_load_file(fl_config *c, const char *path) {
    cJSON *root = read_json(path);
    int rc = -1;
    if (root) {
        cfg_src s = { path, root };
        rc = parse_config(c, &s);
    }
    cJSON_Delete(root);
    return rc;
}

int fl_config_load(fl_config *c, const char *dir) {
    char *path = join(dir, "config.json");
    int rc = fl_config_load_file(c, path);
    free(path);
    return rc;
}

/* ---- config.json: writing ----------------------------------------------- */

/* The shortest decimal that reads back as the same float, so 1e-5f is
 * written "1e-05" and not "9.99999974737875e-06". */
static double float_json(float f) {
    char b[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if (strtof(b, NULL) == f) break;
    }
    return strtod(b, NULL);
}

/* Our config has knobs HF's config classes cannot express for a family
 * (e.g. a gpt2 without biases); refuse rather than write a lie. */
static const char *inexpressible(const fl_config *c) {
    fl_config r;
    memset(&r, 0, sizeof r);
    fl_config_family_defaults(&r, c->family);
    if (c->rms != r.rms || c->act != r.act || c->learned_pos != r.learned_pos || c->pos_offset != r.pos_offset)
        return "norm, activation or positions differ from the family's";
    switch (c->family) {
    case FL_GPT2:
        if (!c->qkv_bias || !c->o_bias || !c->mlp_bias) return "gpt2 always has biases";
        /* fall through */
    case FL_OPT:
        /* fewer heads than hidden / head size (heads removed) is written with
         * freelunch's "head_dim" key; any other shape is not */
        if (c->n_kv_head != c->n_head || c->head_dim < 1 || c->d % c->head_dim || c->n_head * c->head_dim > c->d)
            return "grouped heads, or a head size that does not divide the hidden size";
        if (c->qkv_bias != c->o_bias || c->o_bias != c->mlp_bias) return "biases must be all on or all off";
        if (c->family == FL_OPT && c->eps != 1e-5f) return "OPT's LayerNorm epsilon is fixed at 1e-5";
        break;
    case FL_LLAMA:
        if (c->qkv_bias != c->o_bias) return "llama has attention_bias for q/k/v/o together";
        break;
    case FL_QWEN2:
        if (!c->qkv_bias || c->o_bias || c->mlp_bias) return "qwen2 has q/k/v biases only";
        break;
    }
    return NULL;
}

int fl_config_save(const fl_config *c, const char *path) {
    const char *why = inexpressible(c);
    if (why) return fl_err("%s: cannot write this %s configuration as an HF config.json: %s", path, fl_family_name(c->family), why);
    static const char *arch[] = { "GPT2LMHeadModel", "OPTForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM" };
    cJSON *j = cJSON_CreateObject();
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(arch[c->family]));
    cJSON_AddItemToObject(j, "architectures", a);
    cJSON_AddStringToObject(j, "model_type", fl_family_name(c->family));
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab);
    switch (c->family) {
    case FL_GPT2:
        cJSON_AddNumberToObject(j, "n_embd", c->d);
        cJSON_AddNumberToObject(j, "n_layer", c->n_layer);
        cJSON_AddNumberToObject(j, "n_head", c->n_head);
        cJSON_AddNumberToObject(j, "n_inner", c->d_ff);
        cJSON_AddNumberToObject(j, "n_positions", c->max_pos);
        cJSON_AddNumberToObject(j, "n_ctx", c->max_pos);   /* older transformers read this */
        cJSON_AddStringToObject(j, "activation_function", "gelu_new");
        cJSON_AddNumberToObject(j, "layer_norm_epsilon", float_json(c->eps));
        if (c->n_head * c->head_dim != c->d) cJSON_AddNumberToObject(j, "head_dim", c->head_dim);   /* freelunch's key */
        break;
    case FL_OPT:
        cJSON_AddNumberToObject(j, "hidden_size", c->d);
        cJSON_AddNumberToObject(j, "word_embed_proj_dim", c->proj ? c->proj : c->d);
        cJSON_AddBoolToObject(j, "do_layer_norm_before", !c->post_ln);
        cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layer);
        cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
        cJSON_AddNumberToObject(j, "ffn_dim", c->d_ff);
        cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_pos);
        cJSON_AddStringToObject(j, "activation_function", "relu");
        cJSON_AddBoolToObject(j, "enable_bias", c->qkv_bias);
        cJSON_AddBoolToObject(j, "layer_norm_elementwise_affine", 1);
        if (c->n_head * c->head_dim != c->d) cJSON_AddNumberToObject(j, "head_dim", c->head_dim);   /* freelunch's key */
        break;
    case FL_LLAMA:
    case FL_QWEN2:
        cJSON_AddNumberToObject(j, "hidden_size", c->d);
        cJSON_AddNumberToObject(j, "intermediate_size", c->d_ff);
        cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layer);
        cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
        cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_head);
        cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_pos);
        cJSON_AddStringToObject(j, "hidden_act", "silu");
        cJSON_AddNumberToObject(j, "rms_norm_eps", float_json(c->eps));
        cJSON_AddNumberToObject(j, "rope_theta", float_json(c->rope_theta));
        if (c->rope_scaling == FL_ROPE_PLAIN) cJSON_AddNullToObject(j, "rope_scaling");
        else {
            cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
            cJSON_AddStringToObject(r, "rope_type", c->rope_scaling == FL_ROPE_LINEAR ? "linear" : "llama3");
            cJSON_AddNumberToObject(r, "factor", float_json(c->rope_factor));
            if (c->rope_scaling == FL_ROPE_LLAMA3) {
                cJSON_AddNumberToObject(r, "low_freq_factor", float_json(c->rope_low_freq));
                cJSON_AddNumberToObject(r, "high_freq_factor", float_json(c->rope_high_freq));
                cJSON_AddNumberToObject(r, "original_max_position_embeddings", c->rope_orig_max);
            }
        }
        if (c->family == FL_LLAMA) {
            cJSON_AddBoolToObject(j, "attention_bias", c->qkv_bias);
            cJSON_AddBoolToObject(j, "mlp_bias", c->mlp_bias);
        } else cJSON_AddBoolToObject(j, "use_sliding_window", 0);
        break;
    }
    if (fl_config_nonuniform(c)) {   /* freelunch's keys (get_layer_sizes) */
        int kv[FL_MAX_LAYERS], ff[FL_MAX_LAYERS];
        for (int l = 0; l < c->n_layer; l++) { kv[l] = fl_layer_kv(c, l); ff[l] = fl_layer_ff(c, l); }
        cJSON_AddItemToObject(j, "layer_num_key_value_heads", cJSON_CreateIntArray(kv, c->n_layer));
        cJSON_AddItemToObject(j, "layer_intermediate_size", cJSON_CreateIntArray(ff, c->n_layer));
    }
    /* explicit even when it matches the class default: no guessing on reload */
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_id);
    else cJSON_AddNullToObject(j, "bos_token_id");
    if (c->eos_id >= 0) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_id);
    else cJSON_AddNullToObject(j, "eos_token_id");
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return fl_err("%s: out of memory", path);
    int rc = write_text_atomic(path, text);
    free(text);
    return rc;
}

/* ---- the HF name table -------------------------------------------------- */

typedef enum {
    MAP_COPY,    /* same layout */
    MAP_T,       /* GPT-2 Conv1D: stored [in, out], ours [out, in] */
    MAP_QKV_W,   /* GPT-2 c_attn weight: [d, q|k|v] -> three [out, d] */
    MAP_QKV_B,   /* GPT-2 c_attn bias: [q|k|v] -> three vectors */
} map_kind;

typedef struct {
    char name[96];     /* HF name as saved */
    int opt_prefix;    /* length of a leading prefix a checkpoint may lack */
    map_kind kind;
    fl_param *p[3];
    int ndim;
    int64_t shape[2];  /* as stored */
} hf_entry;

typedef struct { hf_entry *e; int n, cap; } hf_map;

/* Adds NAME (printf-style) unless p0 is NULL (an absent bias). The stored
 * shape follows from our parameters and the kind. */
__attribute__((format(printf, 5, 6)))
static void add(hf_map *L, map_kind kind, fl_param *p0, const char *prefix, const char *fmt, ...) {
    if (!p0) return;
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->e = realloc(L->e, sizeof *L->e * (size_t)L->cap);
    }
    hf_entry *e = &L->e[L->n++];
    memset(e, 0, sizeof *e);
    size_t k = (size_t)snprintf(e->name, sizeof e->name, "%s", prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name + k, sizeof e->name - k, fmt, ap);
    va_end(ap);
    e->opt_prefix = (int)strlen(prefix);
    e->kind = kind;
    e->p[0] = p0;
    switch (kind) {
    case MAP_COPY:   /* norms and biases are vectors, the rest matrices */
        e->ndim = p0->kind == FL_PK_NORM_W || p0->kind == FL_PK_NORM_B || p0->kind == FL_PK_LINEAR_B ? 1 : 2;
        e->shape[0] = p0->rows;
        e->shape[1] = p0->cols;
        break;
    case MAP_T:
        e->ndim = 2;
        e->shape[0] = p0->cols;
        e->shape[1] = p0->rows;
        break;
    case MAP_QKV_W:
    case MAP_QKV_B:
        break;   /* finished by add_qkv */
    }
}

static void add_qkv(hf_map *L, map_kind kind, fl_param *q, fl_param *k, fl_param *v, const char *prefix, int l) {
    if (!q) return;
    add(L, kind, q, prefix, kind == MAP_QKV_W ? "h.%d.attn.c_attn.weight" : "h.%d.attn.c_attn.bias", l);
    hf_entry *e = &L->e[L->n - 1];
    e->p[1] = k;
    e->p[2] = v;
    int64_t out = (int64_t)q->rows + k->rows + v->rows;
    if (kind == MAP_QKV_W) { e->ndim = 2; e->shape[0] = q->cols; e->shape[1] = out; }
    else { e->ndim = 1; e->shape[0] = out; }
}

/* A linear or norm's weight and bias under one base name, "<base>.weight"
 * and "<base>.bias" (either may be absent, as add allows). */
__attribute__((format(printf, 5, 6)))
static void add_wb(hf_map *L, fl_param *w, fl_param *b, const char *prefix, const char *fmt, ...) {
    char base[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    add(L, MAP_COPY, w, prefix, "%s.weight", base);
    add(L, MAP_COPY, b, prefix, "%s.bias", base);
}

/* OPT, LLaMA and Qwen2 name their attention projections alike below the
 * layer's "self_attn"; only the output projection's name differs. */
static void add_attn_proj(hf_map *L, const fl_layer *y, const char *prefix, const char *at, const char *o_proj) {
    add_wb(L, y->q_w, y->q_b, prefix, "%s.q_proj", at);
    add_wb(L, y->k_w, y->k_b, prefix, "%s.k_proj", at);
    add_wb(L, y->v_w, y->v_b, prefix, "%s.v_proj", at);
    add_wb(L, y->o_w, y->o_b, prefix, "%s.%s", at, o_proj);
}

static void build_map(const fl_model *m, hf_map *L) {
    const fl_config *c = &m->cfg;
    memset(L, 0, sizeof *L);
    const char *P;
    char at[64];
    switch (c->family) {
    case FL_GPT2:
        P = "transformer.";
        add(L, MAP_COPY, m->embed, P, "wte.weight");
        add(L, MAP_COPY, m->pos, P, "wpe.weight");
        for (int l = 0; l < c->n_layer; l++) {
            fl_layer *y = &m->layers[l];
            add_wb(L, y->attn_norm_w, y->attn_norm_b, P, "h.%d.ln_1", l);
            add_qkv(L, MAP_QKV_W, y->q_w, y->k_w, y->v_w, P, l);
            add_qkv(L, MAP_QKV_B, y->q_b, y->k_b, y->v_b, P, l);
            add(L, MAP_T, y->o_w, P, "h.%d.attn.c_proj.weight", l);
            add(L, MAP_COPY, y->o_b, P, "h.%d.attn.c_proj.bias", l);
            add_wb(L, y->mlp_norm_w, y->mlp_norm_b, P, "h.%d.ln_2", l);
            add(L, MAP_T, y->fc1_w, P, "h.%d.mlp.c_fc.weight", l);
            add(L, MAP_COPY, y->fc1_b, P, "h.%d.mlp.c_fc.bias", l);
            add(L, MAP_T, y->fc2_w, P, "h.%d.mlp.c_proj.weight", l);
            add(L, MAP_COPY, y->fc2_b, P, "h.%d.mlp.c_proj.bias", l);
        }
        add_wb(L, m->final_norm_w, m->final_norm_b, P, "ln_f");
        break;
    case FL_OPT:
        P = "model.";   /* OPTForCausalLM; a bare OPTModel saves "decoder.*" */
        add(L, MAP_COPY, m->embed, P, "decoder.embed_tokens.weight");
        add(L, MAP_COPY, m->pos, P, "decoder.embed_positions.weight");
        for (int l = 0; l < c->n_layer; l++) {
            fl_layer *y = &m->layers[l];
            snprintf(at, sizeof at, "decoder.layers.%d.self_attn", l);
            add_attn_proj(L, y, P, at, "out_proj");
            add_wb(L, y->attn_norm_w, y->attn_norm_b, P, "%s_layer_norm", at);
            add_wb(L, y->fc1_w, y->fc1_b, P, "decoder.layers.%d.fc1", l);
            add_wb(L, y->fc2_w, y->fc2_b, P, "decoder.layers.%d.fc2", l);
            add_wb(L, y->mlp_norm_w, y->mlp_norm_b, P, "decoder.layers.%d.final_layer_norm", l);
        }
        add_wb(L, m->final_norm_w, m->final_norm_b, P, "decoder.final_layer_norm");   /* none with post-LN */
        add(L, MAP_COPY, m->proj_in, P, "decoder.project_in.weight");
        add(L, MAP_COPY, m->proj_out, P, "decoder.project_out.weight");
        break;
    case FL_LLAMA:
    case FL_QWEN2:
        P = "model.";
        add(L, MAP_COPY, m->embed, P, "embed_tokens.weight");
        for (int l = 0; l < c->n_layer; l++) {
            fl_layer *y = &m->layers[l];
            add(L, MAP_COPY, y->attn_norm_w, P, "layers.%d.input_layernorm.weight", l);
            snprintf(at, sizeof at, "layers.%d.self_attn", l);
            add_attn_proj(L, y, P, at, "o_proj");
            add(L, MAP_COPY, y->mlp_norm_w, P, "layers.%d.post_attention_layernorm.weight", l);
            add_wb(L, y->fc1_w, y->fc1_b, P, "layers.%d.mlp.gate_proj", l);
            add_wb(L, y->up_w, y->up_b, P, "layers.%d.mlp.up_proj", l);
            add_wb(L, y->fc2_w, y->fc2_b, P, "layers.%d.mlp.down_proj", l);
        }
        add(L, MAP_COPY, m->final_norm_w, P, "norm.weight");
        break;
    }
    /* HF drops lm_head when tied (save_pretrained dedups it), never prefixed */
    if (!c->tied) add(L, MAP_COPY, m->head, "", "lm_head.weight");
}

/* Stored tensors we know and skip: GPT-2's causal-mask buffers and older
 * llama checkpoints' RoPE inv_freq. `name` is without the optional prefix. */
static int ignorable(fl_family fam, const char *name) {
    int l, n = -1;
    if (fam == FL_GPT2) {
        if (sscanf(name, "h.%d.attn.bias%n", &l, &n) == 1 && n == (int)strlen(name)) return 1;
        n = -1;
        if (sscanf(name, "h.%d.attn.masked_bias%n", &l, &n) == 1 && n == (int)strlen(name)) return 1;
    }
    if (fam == FL_LLAMA || fam == FL_QWEN2) {
        if (strcmp(name, "rotary_emb.inv_freq") == 0) return 1;
        if (sscanf(name, "layers.%d.self_attn.rotary_emb.inv_freq%n", &l, &n) == 1 && n == (int)strlen(name)) return 1;
    }
    return 0;
}

static const char *family_prefix(fl_family f) { return f == FL_GPT2 ? "transformer." : "model."; }

/* ---- the weight files --------------------------------------------------- */

/* One model.safetensors, or the shards an index names. `where` is the file
 * to blame for a missing tensor: the single file or the index. */
typedef struct {
    fl_st_file *f;
    uint8_t **used;
    int nf;
    char *where;
} wsrc;

static void wsrc_close(wsrc *s) {
    for (int i = 0; i < s->nf; i++) { fl_st_close(&s->f[i]); free(s->used[i]); }
    free(s->f);
    free(s->used);
    free(s->where);
    memset(s, 0, sizeof *s);
}

static int wsrc_add(wsrc *s, const char *path) {
    fl_st_file *f = realloc(s->f, sizeof *s->f * (size_t)(s->nf + 1));
    if (f) s->f = f;
    uint8_t **u = realloc(s->used, sizeof *s->used * (size_t)(s->nf + 1));
    if (u) s->used = u;
    if (!f || !u) return fl_err("%s: out of memory", path);
    if (fl_st_open(&s->f[s->nf], path) != 0) return -1;
    s->used[s->nf] = calloc((size_t)(s->f[s->nf].n + 1), 1);
    if (!s->used[s->nf]) { fl_st_close(&s->f[s->nf]); return fl_err("%s: out of memory", path); }
    s->nf++;
    return 0;
}

/* Bytes of tensor data the files hold, as their headers place it. */
static uint64_t wsrc_bytes(const wsrc *s) {
    uint64_t b = 0;
    for (int i = 0; i < s->nf; i++)
        for (int k = 0; k < s->f[i].n; k++) b += s->f[i].t[k].end - s->f[i].t[k].begin;
    return b;
}

static int open_index(wsrc *s, const char *dir, const char *ipath) {
    cJSON *root = read_json(ipath);
    if (!root) return -1;
    int rc = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *e;
    if (!cJSON_IsObject(wm)) { rc = fl_err("%s: no \"weight_map\" object", ipath); goto out; }
    /* open each distinct shard once, in order of first mention */
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) { rc = fl_err("%s: weight_map entry %s is not a file name", ipath, e->string); goto out; }
        int seen = 0;
        for (const cJSON *p = wm->child; p != e && !seen; p = p->next) seen = strcmp(p->valuestring, e->valuestring) == 0;
        if (seen) continue;
        /* A shard is a plain file name in the model directory: no path, so an
         * index cannot reach outside it ("../x", "/etc/x"). Symlinks inside
         * are the directory owner's choice (the HF hub cache is made of them). */
        const char *nm = e->valuestring;
        if (!*nm || strchr(nm, '/') || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0) {
            rc = fl_err("%s: weight_map names shard \"%s\" for %s: a shard must be a plain file name in the model directory",
                        ipath, nm, e->string);
            goto out;
        }
        char *sp = join(dir, nm);
        rc = wsrc_add(s, sp);
        free(sp);
        if (rc) goto out;
    }
    /* the index must agree with the shards it names */
    cJSON_ArrayForEach(e, wm) {
        int i = 0;
        char *sp = join(dir, e->valuestring);
        while (strcmp(s->f[i].path, sp) != 0) i++;
        free(sp);
        if (!fl_st_find(&s->f[i], e->string)) {
            rc = fl_err("%s: weight_map puts %s in %s, which does not hold it", ipath, e->string, e->valuestring);
            goto out;
        }
    }
    for (int i = 0; i < s->nf; i++)
        for (int j = i + 1; j < s->nf; j++)
            for (int k = 0; k < s->f[i].n; k++)
                if (fl_st_find(&s->f[j], s->f[i].t[k].name)) {
                    rc = fl_err("%s: tensor %s is in both %s and %s", ipath, s->f[i].t[k].name, s->f[i].path, s->f[j].path);
                    goto out;
                }
out:
    cJSON_Delete(root);
    return rc;
}

static int wsrc_open(wsrc *s, const char *dir) {
    memset(s, 0, sizeof *s);
    char *single = join(dir, "model.safetensors"), *index = join(dir, "model.safetensors.index.json");
    int rc;
    /* like HF, a single file wins over an index */
    if (is_file(single)) {
        s->where = single; single = NULL;
        rc = wsrc_add(s, s->where);
    } else if (is_file(index)) {
        s->where = index; index = NULL;
        rc = open_index(s, dir, s->where);
    } else {
        char *bin = join(dir, "pytorch_model.bin");
        rc = fl_err("%s: no model.safetensors or model.safetensors.index.json%s", dir,
                    is_file(bin) ? " (pytorch_model.bin is not read: convert it to safetensors)" : "");
        free(bin);
    }
    free(single);
    free(index);
    if (rc) wsrc_close(s);
    return rc;
}

/* Finds NAME, or NAME without its optional prefix; marks it used. */
static const fl_st_tensor *wsrc_find(wsrc *s, const hf_entry *e, int *fi) {
    const char *names[2] = { e->name, e->name + e->opt_prefix };
    for (int k = 0; k < (e->opt_prefix ? 2 : 1); k++)
        for (int i = 0; i < s->nf; i++) {
            const fl_st_tensor *t = fl_st_find(&s->f[i], names[k]);
            if (t) {
                s->used[i][t - s->f[i].t] = 1;
                *fi = i;
                return t;
            }
        }
    return NULL;
}

/* ---- layout conversions ------------------------------------------------- */

/* Blocked so both sides stay in cache for large matrices. */
#define TB 32

/* dst[o][i] = src[i][off + o]: columns [off, off+out) of src [in, ld]. */
static void transpose_from(float *dst, const float *src, int64_t in, int64_t out, int64_t ld, int64_t off) {
#pragma omp parallel for schedule(static) if (in * out > (1 << 16))
    for (int64_t o0 = 0; o0 < out; o0 += TB)
        for (int64_t i0 = 0; i0 < in; i0 += TB)
            for (int64_t o = o0; o < o0 + TB && o < out; o++)
                for (int64_t i = i0; i < i0 + TB && i < in; i++) dst[o * in + i] = src[i * ld + off + o];
}

/* The inverse: dst[i][off + o] = src[o][i]. */
static void transpose_into(float *dst, int64_t ld, int64_t off, const float *src, int64_t out, int64_t in) {
#pragma omp parallel for schedule(static) if (in * out > (1 << 16))
    for (int64_t i0 = 0; i0 < in; i0 += TB)
        for (int64_t o0 = 0; o0 < out; o0 += TB)
            for (int64_t i = i0; i < i0 + TB && i < in; i++)
                for (int64_t o = o0; o < o0 + TB && o < out; o++) dst[i * ld + off + o] = src[o * in + i];
}

static int64_t entry_numel(const hf_entry *e) { return e->ndim == 1 ? e->shape[0] : e->shape[0] * e->shape[1]; }

/* ---- load --------------------------------------------------------------- */

static int load_entry(const fl_st_file *f, const fl_st_tensor *t, const hf_entry *e, float **tmp, size_t *tmpcap) {
    if (e->kind == MAP_COPY) return fl_st_read_f32(f, t, e->p[0]->w);
    size_t n = (size_t)t->numel;
    if (n > *tmpcap) {
        fl_free(*tmp);
        *tmpcap = 0;
        if (!(*tmp = fl_try_allocf(n))) return fl_err("%s: out of memory for tensor %s (%zu floats)", f->path, t->name, n);
        *tmpcap = n;
    }
    if (fl_st_read_f32(f, t, *tmp) != 0) return -1;
    const float *src = *tmp;
    switch (e->kind) {
    case MAP_T:
        transpose_from(e->p[0]->w, src, e->shape[0], e->shape[1], e->shape[1], 0);
        break;
    case MAP_QKV_W:
        for (int j = 0, off = 0; j < 3; off += e->p[j]->rows, j++)
            transpose_from(e->p[j]->w, src, e->shape[0], e->p[j]->rows, e->shape[1], off);
        break;
    case MAP_QKV_B:
        for (int j = 0; j < 3; src += e->p[j]->rows, j++) memcpy(e->p[j]->w, src, sizeof(float) * (size_t)e->p[j]->rows);
        break;
    case MAP_COPY:
        break;
    }
    return 0;
}

/* ---- streamed blocks ---------------------------------------------------- */

/* What a streamed model keeps of its checkpoint: the open (mapped) files,
 * the name table with each entry's tensor, and the spill file. */
struct fl_stream {
    wsrc s;
    hf_map L;
    const fl_st_tensor **found;
    int *fidx;
    int readonly;
    uint8_t *spilled;      /* per block: its current weights are in the spill file */
    int spill_fd;          /* -1 until the first spill */
    size_t slot;           /* spill bytes per block: floats, a flag per linear, the linears' masks */
    uint64_t spill_bytes;  /* written so far */
    float *tmp;            /* conversion scratch of the transposing layouts (GPT-2) */
    size_t tmpcap;
};

static void stream_close(fl_model *m) {
    struct fl_stream *st = m->stream;
    if (!st) return;
    wsrc_close(&st->s);
    free(st->L.e);
    free(st->found);
    free(st->fidx);
    free(st->spilled);
    if (st->spill_fd >= 0) close(st->spill_fd);
    fl_free(st->tmp);
    free(st);
    m->stream = NULL;
}

/* pread/pwrite move at most about 2 GiB per call: loop. */
static int full_pio(int fd, void *buf, size_t n, off_t off, int wr) {
    uint8_t *p = buf;
    while (n) {
        ssize_t k = wr ? pwrite(fd, p, n, off) : pread(fd, p, n, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

static size_t stream_slot(fl_model *m) {
    fl_param *lw[7];
    const int k = fl_layer_linears(m, 0, lw, NULL, NULL);
    size_t b = m->block_floats * sizeof(float) + 7;
    for (int i = 0; i < k; i++) b += (size_t)lw[i]->n;
    return b;
}

static int spill_open(struct fl_stream *st) {
    const char *base = getenv("TMPDIR");
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/freelunch-spill.XXXXXX", base && *base ? base : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return fl_err("%s: cannot create the streamed model's spill file: %s", path, strerror(errno));
    unlink(path);   /* gone when we close it, whatever happens */
    st->spill_fd = fd;
    return 0;
}

/* Block l's parameters point into b (or nowhere with b NULL). */
static void block_point(fl_model *m, int l, float *b) {
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].layer == l) m->params[i].w = b ? b + m->params[i].off : NULL;
}

/* The mapped pages of tensor t, given back: the block is in fp32 now. Only
 * whole pages inside the tensor, so a neighbour's are never touched. */
static void drop_pages(const fl_st_file *f, const fl_st_tensor *t) {
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(f->data + t->begin), e = (uintptr_t)(f->data + t->end);
    a = (a + pg - 1) / pg * pg;
    e = e / pg * pg;
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

static int block_acquire(fl_model *m, int l) {
    struct fl_stream *st = m->stream;
    float *b = fl_try_allocf(m->block_floats);
    if (!b)
        return fl_err("%s: out of memory for block %d's %zu bytes of fp32 weights", st->s.where, l, m->block_floats * sizeof(float));
    m->blk[l] = b;
    block_point(m, l, b);
    int rc = 0;
    if (st->spilled[l]) {
        const off_t at = (off_t)l * (off_t)st->slot;
        uint8_t flags[7];
        fl_param *lw[7];
        const int k = fl_layer_linears(m, l, lw, NULL, NULL);
        rc = full_pio(st->spill_fd, b, m->block_floats * sizeof(float), at, 0) ||
             full_pio(st->spill_fd, flags, 7, at + (off_t)(m->block_floats * sizeof(float)), 0);
        off_t mo = at + (off_t)(m->block_floats * sizeof(float)) + 7;
        for (int i = 0; i < k && rc == 0; mo += (off_t)lw[i]->n, i++) {
            if (!flags[i]) continue;
            lw[i]->mask = fl_try_alloc((size_t)lw[i]->n);
            rc = !lw[i]->mask || full_pio(st->spill_fd, lw[i]->mask, (size_t)lw[i]->n, mo, 0);
        }
        if (rc) rc = fl_err("streamed model: cannot read block %d back from the spill file: %s", l, strerror(errno));
    } else {
        for (int i = 0; i < st->L.n && rc == 0; i++) {
            const hf_entry *e = &st->L.e[i];
            if (e->p[0]->layer != l) continue;
            const fl_st_file *f = &st->s.f[st->fidx[i]];
            rc = load_entry(f, st->found[i], e, &st->tmp, &st->tmpcap);
            if (rc == 0) drop_pages(f, st->found[i]);
        }
        /* the transposing layouts' scratch lives only while a block is converted */
        fl_free(st->tmp);
        st->tmp = NULL;
        st->tmpcap = 0;
    }
    if (rc) {
        fl_param *lw[7];
        const int k = fl_layer_linears(m, l, lw, NULL, NULL);
        for (int i = 0; i < k; i++) { fl_free(lw[i]->mask); lw[i]->mask = NULL; }
        block_point(m, l, NULL);
        fl_free(b);
        m->blk[l] = NULL;
    }
    return rc;
}

static int block_release(fl_model *m, int l) {
    struct fl_stream *st = m->stream;
    for (int i = 0; i < m->n_params; i++) {
        const fl_param *p = &m->params[i];
        if (p->layer == l && (p->trainable || p->g || p->m || p->ad))
            return fl_err("streamed model: block %d cannot be released while %s is trained (hold it until training ends)", l,
                          p->name);
    }
    fl_param *lw[7];
    const int k = fl_layer_linears(m, l, lw, NULL, NULL);
    if (!st->readonly) {
        if (st->spill_fd < 0 && spill_open(st) != 0) return -1;
        const off_t at = (off_t)l * (off_t)st->slot;
        uint8_t flags[7] = { 0 };
        for (int i = 0; i < k; i++) flags[i] = lw[i]->mask != NULL;
        int bad = full_pio(st->spill_fd, m->blk[l], m->block_floats * sizeof(float), at, 1) ||
                  full_pio(st->spill_fd, flags, 7, at + (off_t)(m->block_floats * sizeof(float)), 1);
        off_t mo = at + (off_t)(m->block_floats * sizeof(float)) + 7;
        for (int i = 0; i < k && !bad; mo += (off_t)lw[i]->n, i++)
            if (flags[i]) bad = full_pio(st->spill_fd, lw[i]->mask, (size_t)lw[i]->n, mo, 1);
        if (bad) return fl_err("streamed model: cannot write block %d to the spill file (disk full?): %s", l, strerror(errno));
        if (!st->spilled[l]) st->spill_bytes += st->slot;
        st->spilled[l] = 1;
    }
    for (int i = 0; i < k; i++) { fl_free(lw[i]->mask); lw[i]->mask = NULL; }
    block_point(m, l, NULL);
    fl_free(m->blk[l]);
    m->blk[l] = NULL;
    return 0;
}

int fl_model_hold(fl_model *m, int l0, int l1) {
    if (!m->stream) return 0;
    const int L = m->cfg.n_layer;
    if (l0 < 0) l0 = 0;
    if (l1 > L) l1 = L;
    /* release first: the peak is then the blocks held, not one more */
    for (int l = 0; l < L; l++)
        if ((l < l0 || l >= l1) && m->blk[l] && block_release(m, l) != 0) return -1;
    for (int l = l0; l < l1; l++)
        if (!m->blk[l] && block_acquire(m, l) != 0) return -1;
    return 0;
}

uint64_t fl_model_spill_bytes(const fl_model *m) { return m->stream ? m->stream->spill_bytes : 0; }

/* ---- load --------------------------------------------------------------- */

static int load_impl(fl_model *m, const char *dir, int streamed, int readonly) {
    memset(m, 0, sizeof *m);
    fl_config c;
    if (fl_config_load(&c, dir) != 0) return -1;
    wsrc s;
    if (wsrc_open(&s, dir) != 0) return -1;
    /* Before allocating what config.json asks for: the weights must hold at
     * least two bytes (F16/BF16, the narrowest dtype read) per parameter the
     * config implies, or the config is lying about the model's size. */
    const int64_t nparams = fl_config_num_params(&c);
    const uint64_t held = wsrc_bytes(&s);
    if ((uint64_t)nparams > held / 2) {
        char *cp = join(dir, "config.json");
        fl_err("%s: describes a %s model of %lld parameters (%d layers, hidden %d, vocabulary %d), at least %llu bytes, "
               "but %s holds only %llu bytes of tensors",
               cp, fl_family_name(c.family), (long long)nparams, c.n_layer, c.d, c.vocab, (unsigned long long)nparams * 2, s.where,
               (unsigned long long)held);
        free(cp);
        wsrc_close(&s);
        return -1;
    }
    if (fl_model_create_ex(m, &c, !streamed) != 0) { wsrc_close(&s); return -1; }
    hf_map L;
    build_map(m, &L);
    /* Names and shapes first, so a bad checkpoint fails before we read
     * gigabytes; then the leftovers; then the data. */
    const fl_st_tensor **found = calloc((size_t)L.n, sizeof *found);
    int *fidx = calloc((size_t)L.n, sizeof *fidx);
    int rc = 0;
    char sa[160], sb[160];
    for (int i = 0; i < L.n && rc == 0; i++) {
        const hf_entry *e = &L.e[i];
        const fl_st_tensor *t = found[i] = wsrc_find(&s, e, &fidx[i]);
        if (!t) {
            rc = fl_err("%s: tensor %s is missing (config.json describes a %s model with %d layers%s)", s.where, e->name,
                        fl_family_name(c.family), c.n_layer, c.tied ? "" : " and an untied lm_head");
            break;
        }
        int same = t->ndim == e->ndim;
        for (int k = 0; same && k < e->ndim; k++) same = t->shape[k] == e->shape[k];
        if (!same)
            rc = fl_err("%s: tensor %s has shape %s but config.json implies %s", s.f[fidx[i]].path, t->name,
                        fl_st_shape_str(sa, sizeof sa, t->shape, t->ndim), fl_st_shape_str(sb, sizeof sb, e->shape, e->ndim));
    }
    /* Whatever is left over is a sign of a mismatch (more layers than the
     * config says, another family's names), so it is an error too. */
    const char *pfx = family_prefix(c.family);
    size_t np = strlen(pfx);
    for (int i = 0; i < s.nf && rc == 0; i++)
        for (int k = 0; k < s.f[i].n && rc == 0; k++) {
            const char *nm = s.f[i].t[k].name;
            if (s.used[i][k]) continue;
            if (ignorable(c.family, strncmp(nm, pfx, np) == 0 ? nm + np : nm)) continue;
            if (c.tied && strcmp(nm, "lm_head.weight") == 0) continue;   /* HF ignores it too when tied */
            rc = fl_err("%s: unexpected tensor %s (not part of the %s model with %d layers that config.json describes)",
                        s.f[i].path, nm, fl_family_name(c.family), c.n_layer);
        }
    float *tmp = NULL;
    size_t tmpcap = 0;
    /* streamed: only what lies outside the blocks now */
    for (int i = 0; i < L.n && rc == 0; i++)
        if (!streamed || L.e[i].p[0]->layer < 0) {
            rc = load_entry(&s.f[fidx[i]], found[i], &L.e[i], &tmp, &tmpcap);
            if (rc == 0 && streamed) drop_pages(&s.f[fidx[i]], found[i]);
        }
    fl_free(tmp);
    struct fl_stream *st = NULL;
    if (rc == 0 && streamed) {
        st = calloc(1, sizeof *st);
        m->blk = calloc((size_t)c.n_layer, sizeof *m->blk);
        if (st) st->spilled = calloc((size_t)c.n_layer, 1);
        if (!st || !m->blk || !st->spilled) {
            if (st) free(st->spilled);
            free(st);
            st = NULL;
            rc = fl_err("%s: out of memory", dir);
        }
    }
    if (st) {
        /* the stream owns the files and the table from here */
        st->s = s;
        st->L = L;
        st->found = found;
        st->fidx = fidx;
        st->readonly = readonly;
        st->spill_fd = -1;
        m->stream = st;
        m->stream_close = stream_close;
        st->slot = stream_slot(m);
        return 0;
    }
    free(found);
    free(fidx);
    free(L.e);
    wsrc_close(&s);
    if (rc) fl_model_free(m);
    return rc;
}

int fl_model_load(fl_model *m, const char *dir) { return load_impl(m, dir, 0, 0); }
int fl_model_load_streamed(fl_model *m, const char *dir, int readonly) { return load_impl(m, dir, 1, readonly); }

/* ---- save --------------------------------------------------------------- */

/* Each tensor as stored, built when the writer asks for it: a block's held
 * first (streamed), a transposed or fused layout converted into one
 * scratch buffer that serves every tensor in turn. */
typedef struct {
    fl_model *m;
    const hf_map *L;
    float *buf;
} save_ctx;

static const float *save_get(void *ctx, int i) {
    save_ctx *sc = ctx;
    const hf_entry *e = &sc->L->e[i];
    const int l = e->p[0]->layer;
    if (l >= 0 && fl_model_hold(sc->m, l, l + 1) != 0) return NULL;
    if (e->kind == MAP_COPY) return e->p[0]->w;
    fl_free(sc->buf);
    float *b = sc->buf = fl_try_allocf((size_t)entry_numel(e));
    if (!b) { fl_err("out of memory for %s", e->name); return NULL; }
    switch (e->kind) {
    case MAP_T:
        transpose_into(b, e->shape[1], 0, e->p[0]->w, e->shape[1], e->shape[0]);
        break;
    case MAP_QKV_W:
        for (int j = 0, off = 0; j < 3; off += e->p[j]->rows, j++)
            transpose_into(b, e->shape[1], off, e->p[j]->w, e->p[j]->rows, e->shape[0]);
        break;
    case MAP_QKV_B:
        for (int j = 0, off = 0; j < 3; off += e->p[j]->rows, j++)
            memcpy(b + off, e->p[j]->w, sizeof(float) * (size_t)e->p[j]->rows);
        break;
    case MAP_COPY:
        break;
    }
    return b;
}

int fl_model_save_dtype(fl_model *m, const char *dir, fl_dtype dt) {
    if (fl_mkdir_p(dir) != 0) return -1;
    hf_map L;
    build_map(m, &L);
    fl_st_out *outs = calloc((size_t)L.n, sizeof *outs);
    for (int i = 0; i < L.n; i++) {
        const hf_entry *e = &L.e[i];
        fl_st_out *o = &outs[i];
        o->name = e->name;
        o->ndim = e->ndim;
        o->shape[0] = e->shape[0];
        o->shape[1] = e->shape[1];
        o->data = NULL;   /* every tensor through save_get */
    }
    char *wpath = join(dir, "model.safetensors"), *cpath = join(dir, "config.json");
    save_ctx sc = { .m = m, .L = &L };
    /* weights first: config.json is what makes a directory look like a model */
    int rc = fl_st_write_dtype(wpath, outs, L.n, dt, save_get, &sc);
    if (rc == 0) rc = fl_config_save(&m->cfg, cpath);
    fl_free(sc.buf);
    free(outs);
    free(L.e);
    free(wpath);
    free(cpath);
    return rc;
}

/* fp32 of an unchanged model: its storage is not touched (the blocks of a
 * streamed one move in and out, which is why the dtype variant takes a
 * mutable model) */
int fl_model_save(const fl_model *m, const char *dir) { return fl_model_save_dtype((fl_model *)m, dir, FL_DT_F32); }
