/* hf_config.h — a Hugging Face model directory's config.json and
 * generation_config.json, for the architectures of arch.h's table
 * (docs/formats.md §2.0–2.2, §6.3), and the rotary inverse-frequency table
 * computed exactly as transformers' rope init functions do (default,
 * linear, dynamic, llama3).
 *
 * architectures[0] (else model_type) selects the table's row; absent keys
 * take that row's defaults (the transformers class defaults) and a row may
 * name keys differently. Keys that are present but unsupported (another
 * activation, an unknown rope type) are errors that say what is supported,
 * never silently ignored.
 */
#ifndef VRT_MODEL_HF_CONFIG_H
#define VRT_MODEL_HF_CONFIG_H

#include "model/arch.h"
#include "vrt.h"

#include <stdbool.h>
#include <stdint.h>

#define VRT_MAX_EOS 8

typedef enum vrt_rope_type {
    VRT_ROPE_DEFAULT = 0, /* no scaling */
    VRT_ROPE_LINEAR = 1,  /* inv_freq / factor */
    VRT_ROPE_DYNAMIC = 2, /* NTK: base rescaled past max_position_embeddings */
    VRT_ROPE_LLAMA3 = 3,  /* wavelength-dependent smoothing */
} vrt_rope_type;

typedef struct vrt_model_config {
    int arch;                /* the row of arch.h's table: vrt_arch_get(arch) */
    char arch_name[64];      /* "LlamaForCausalLM" */
    char model_type[32];     /* "llama" */
    int hidden_size;         /* D */
    int intermediate_size;   /* F */
    int num_hidden_layers;   /* L */
    int num_attention_heads; /* H */
    int num_key_value_heads; /* Hkv; H when absent */
    int head_dim;            /* hd; D / H when absent */
    int rotary_dim;          /* R: head_dim, or int(head_dim * partial_rotary_factor)
                                where the architecture reads that key */
    int vocab_size;          /* V */
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta; /* 10000 when absent */
    struct {
        int type; /* vrt_rope_type */
        double factor;
        double low_freq_factor;                   /* llama3 */
        double high_freq_factor;                  /* llama3 */
        int64_t original_max_position_embeddings; /* llama3 */
    } rope_scaling;
    bool tie_word_embeddings;
    int64_t sliding_window; /* where the row has a window (Mistral); 0 = none */
    char hidden_act[16];    /* the row's hidden_act ("silu") once loaded */
    bool attention_bias;
    bool mlp_bias;
    char torch_dtype[16];           /* "bfloat16", "float16", ...; "" when absent */
    int bos_token_id;               /* -1 when none */
    int pad_token_id;               /* -1 when none */
    int eos_token_ids[VRT_MAX_EOS]; /* [n_eos]: union of config.json and
                                       generation_config.json; the class
                                       default 2 only when neither sets it */
    int n_eos;
    /* generation_config.json defaults; has_* says whether the key was set. */
    struct {
        bool present; /* the file exists */
        bool has_do_sample, do_sample;
        bool has_temperature;
        double temperature;
        bool has_top_k;
        int top_k;
        bool has_top_p;
        double top_p;
        bool has_repetition_penalty;
        double repetition_penalty;
        bool has_max_new_tokens;
        int64_t max_new_tokens;
        bool has_max_length;
        int64_t max_length;
    } gen;
} vrt_model_config;

/* Reads dir/config.json and, when present, dir/generation_config.json.
 * Errors name the file and the key and list what is supported. */
int vrt_model_config_load(vrt_model_config *c, const char *dir, vrt_err *err);
/* Same from JSON text (gen_json may be NULL); names are used in messages. */
int vrt_model_config_parse(vrt_model_config *c, const char *config_json, const char *config_name,
                           const char *gen_json, const char *gen_name, vrt_err *err);

const char *vrt_rope_type_name(int type);

/* inv_freq[rotary_dim/2] for a sequence of seq_len tokens (only the dynamic
 * type depends on it) and the attention scaling (1.0 for these types),
 * computed in float32 in the same order of operations as transformers. */
int vrt_rope_inv_freq(const vrt_model_config *c, int seq_len, float *inv_freq,
                      float *attention_scaling, vrt_err *err);

#endif
