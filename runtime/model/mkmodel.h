/* mkmodel.h — writes a complete Hugging Face-style model directory with
 * seeded random weights (`v100rt mkmodel`, `make demo-model`).
 *
 * The directory holds config.json and generation_config.json in the style
 * of real Hub files (docs/formats.md §2.1–2.2, §6.3), model.safetensors with the
 * HF tensor names (F16 or F32), and the SentencePiece-style BPE tokenizer
 * of tests/fixtures/tokenizers/sentencepiece (tokenizer.json and
 * tokenizer_config.json), embedded in the binary at build time. transformers
 * can load the result with AutoModelForCausalLM / AutoTokenizer.
 *
 * Weights are N(0, 0.02) (norm weights 1 + N(0, 0.02)) from a counter-based
 * generator keyed by the seed and the tensor name: the same options give the
 * same bytes, whatever the order or chunking of the write. Tensors are
 * generated while the file is written, so memory stays at a few MiB even
 * for the 1.1B-parameter tinyllama preset.
 */
#ifndef VRT_MODEL_MKMODEL_H
#define VRT_MODEL_MKMODEL_H

#include "vrt.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct vrt_mkmodel_opts {
    int arch;                /* a row of arch.h's table: VRT_ARCH_LLAMA, ... */
    int hidden_size;         /* D */
    int intermediate_size;   /* F */
    int num_hidden_layers;   /* L */
    int num_attention_heads; /* H */
    int num_key_value_heads; /* Hkv; must divide H */
    int head_dim;            /* hd; 0 = D / H */
    int vocab_size;          /* V >= the tokenizer's vocabulary (3000) */
    int64_t max_position_embeddings;
    double rope_theta;
    double rms_norm_eps;
    int64_t sliding_window; /* architectures with a window only; 0 = null (no window) */
    bool tie_word_embeddings;
    int dtype;     /* VRT_ST_F16 or VRT_ST_F32 (model/safetensors.h) */
    uint64_t seed; /* weights are a function of (seed, tensor name) */
    bool force;    /* write into a non-empty directory */
    /* Optional: called before each tensor is generated (i in [0, n)). */
    void (*progress)(void *ctx, int i, int n, const char *name, uint64_t nbytes);
    void *progress_ctx;
} vrt_mkmodel_opts;

/* Names of the presets, in order of size, NULL-terminated. */
extern const char *const vrt_mkmodel_presets[];

/* Fills *o with a preset ("tiny", "small", "tinyllama") for arch (an id
 * of arch.h's table; an architecture with a sliding window gets its
 * default, Mistral 4096), F16, seed 0. An unknown name is VRT_EINVAL with
 * a suggestion. */
int vrt_mkmodel_preset(vrt_mkmodel_opts *o, const char *name, int arch, vrt_err *err);

/* Checks the options (an architecture of the table, positive sizes, H
 * divisible by Hkv, D by H when head_dim is 0, an even head_dim, a
 * vocabulary that covers the tokenizer, sliding_window only for an
 * architecture with a window, dtype F16 or F32). Messages name the
 * config key and the mkmodel option. */
int vrt_mkmodel_validate(const vrt_mkmodel_opts *o, vrt_err *err);

/* Number of parameters and bytes of model.safetensors' tensor data. */
void vrt_mkmodel_size(const vrt_mkmodel_opts *o, uint64_t *params, uint64_t *bytes);

/* Size of the embedded tokenizer's vocabulary (largest id + 1); -1 if it
 * cannot be parsed (out of memory). */
int vrt_mkmodel_tokenizer_vocab(void);

/* Writes the model directory dir (created if missing, parents included).
 * A non-empty dir is refused (VRT_EINVAL) unless o->force; with force the
 * five files are replaced and a stale model.safetensors.index.json, which
 * would shadow model.safetensors, is removed. */
int vrt_mkmodel_write(const vrt_mkmodel_opts *o, const char *dir, vrt_err *err);

#endif
