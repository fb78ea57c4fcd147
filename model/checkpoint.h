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
#include "safetensors.h"

/* Reads DIR/config.json into c (model_type gpt2|opt|llama|qwen2). */
int fl_config_load(fl_config *c, const char *dir);
/* The same from a config.json at any path. */
int fl_config_load_file(fl_config *c, const char *path);
/* Writes an HF config.json for c to path (temp + rename). */
int fl_config_save(const fl_config *c, const char *path);

/* Creates m from DIR's config and loads every tensor; checks each shape
 * against the config and that no tensor is missing. */
int fl_model_load(fl_model *m, const char *dir);
/* Writes DIR/config.json and DIR/model.safetensors (creates DIR), fp32. */
int fl_model_save(const fl_model *m, const char *dir);
/* The same with the weights stored as dt (safetensors.h: round to nearest
 * even, a zero stays a zero and a non-zero never becomes one, so a pruned
 * model's masks survive exactly). A streamed model is written one block at
 * a time (fl_model_hold), the others released. */
int fl_model_save_dtype(fl_model *m, const char *dir, fl_dtype dt);

/* Streaming (docs/ARCHITECTURE.md, "Streamed weights"). Like fl_model_load,
 * with the same checks, but only the embedding, positions, final norm and
 * head are converted to fp32 at load; the checkpoint stays memory-mapped
 * and each block is converted (F32/F16/BF16 -> fp32, into tracked memory)
 * when fl_model_hold asks for it. A block released after it was held is
 * written, weights and masks, to the stream's spill file (an unlinked
 * temporary file under $TMPDIR, or /tmp) and read back from there the next
 * time: so the model's changes survive and the tracked memory holds only
 * the blocks held. readonly: the model is never changed (a dense
 * reference), a released block is dropped and read again from the
 * checkpoint. The mapped pages of a converted block are given back to the
 * kernel (madvise), so they do not stay in the resident set either. */
int fl_model_load_streamed(fl_model *m, const char *dir, int readonly);
/* Blocks [l0, l1) resident, every other block released (a no-op on a
 * model that is not streamed). A block with a trainable parameter, a
 * gradient or an adapter cannot be released: an error. */
int fl_model_hold(fl_model *m, int l0, int l1);
/* Bytes the stream has written to its spill file so far (0: none). */
uint64_t fl_model_spill_bytes(const fl_model *m);

#endif
