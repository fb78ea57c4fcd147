/* HF model directories: config.json + model.safetensors, or shards listed in
 * model.safetensors.index.json. Tensor names are HF's for each family:
 *   gpt2 : [transformer.]wte/wpe/h.N.{ln_1,attn.c_attn,attn.c_proj,ln_2,
 *          mlp.c_fc,mlp.c_proj}/ln_f; Conv1D weights are [in, out] (we keep
 *          [out, in]) and c_attn fuses q, k, v along its output dimension.
 *   opt  : model.decoder.{embed_tokens,embed_positions,layers.N.{self_attn.
 *          {q,k,v,out}_proj,self_attn_layer_norm,fc1,fc2,final_layer_norm},
 *          final_layer_norm}, lm_head when untied.
 *   llama/qwen2: model.{embed_tokens,layers.N.{input_layernorm,self_attn.
 *          {q,k,v,o}_proj,post_attention_layernorm,mlp.{gate,up,down}_proj},
 *          norm}, lm_head when untied.
 * Load converts fp16/bf16 to fp32; save writes fp32 (config.json + one
 * model.safetensors, each through a temp file and rename). */
#ifndef FL_CHECKPOINT_H
#define FL_CHECKPOINT_H
#include "model.h"

/* Reads DIR/config.json into c (model_type gpt2|opt|llama|qwen2). */
int fl_config_load(fl_config *c, const char *dir);
/* The same from a config.json at any path. */
int fl_config_load_file(fl_config *c, const char *path);
/* Writes an HF config.json for c to path (temp + rename). */
int fl_config_save(const fl_config *c, const char *path);

/* Creates m from DIR's config and loads every tensor; checks each shape
 * against the config and that no tensor is missing. */
int fl_model_load(fl_model *m, const char *dir);
/* Writes DIR/config.json and DIR/model.safetensors (creates DIR). */
int fl_model_save(const fl_model *m, const char *dir);

#endif
