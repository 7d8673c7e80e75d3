/* arch.h — the supported architectures as data.
 *
 * One row (vrt_arch_info) per Hugging Face architecture says everything
 * that differs between them: the class names and model_type that select
 * it, the config.json defaults of its transformers config class and the
 * keys it names differently, its tensor names, and the descriptor
 * (vrt_arch_desc) the forward pass reads. hf_config.c, model.c, forward.c
 * and mkmodel.c read the row; none of them names an architecture. Adding a
 * Llama-shaped architecture is one row in arch.c plus its tests.
 *
 * The descriptor can describe more than the forward pass runs today (the
 * features of Phi-2, Gemma, Gemma2, Qwen2/3 and Mixtral); vrt_arch_check
 * refuses a descriptor that needs a feature the forward pass does not
 * have, naming the feature, so nothing is ever silently ignored.
 */
#ifndef VRT_MODEL_ARCH_H
#define VRT_MODEL_ARCH_H

#include "backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ids of the built-in rows (vrt_model_config.arch, vrt_mkmodel_opts.arch):
 * the row's index in the table plus one. A new row needs no id here:
 * vrt_arch_by_class / vrt_arch_by_model_type find it. */
typedef enum vrt_arch {
    VRT_ARCH_UNKNOWN = 0,
    VRT_ARCH_LLAMA = 1,   /* LlamaForCausalLM, model_type "llama" */
    VRT_ARCH_MISTRAL = 2, /* MistralForCausalLM, model_type "mistral" */
} vrt_arch;

enum vrt_norm_kind {
    VRT_NORM_RMS = 0,  /* x / rms(x) * (w + norm_w_offset) */
    VRT_NORM_LAYER = 1 /* (x - mean) / std * w (+ bias): Phi-2 */
};
enum vrt_mlp_kind {
    VRT_MLP_SILU_GATED = 0, /* down(silu(gate(h)) * up(h)): Llama, Mistral, Qwen */
    VRT_MLP_GELU_GATED = 1, /* down(gelu(gate(h)) * up(h)): Gemma (tanh GELU) */
    VRT_MLP_GELU = 2,       /* fc2(gelu(fc1(h))): Phi-2 (tanh GELU) */
    VRT_MLP_MOE = 3         /* top-k of n_experts gated-silu experts: Mixtral */
};
/* Which linears carry a bias. */
enum vrt_bias_kind {
    VRT_BIAS_NONE = 0,   /* none; attention_bias/mlp_bias in config.json ignored (Mistral) */
    VRT_BIAS_CONFIG = 1, /* as config.json's attention_bias (q/k/v/o), mlp_bias (Llama) */
    VRT_BIAS_QKV = 2,    /* q/k/v always, o and the MLP never (Qwen2) */
    VRT_BIAS_ALL = 3     /* every linear and lm_head (Phi-2) */
};
/* Which layers attend through a sliding window of sliding_window tokens. */
enum vrt_window_kind {
    VRT_WINDOW_NONE = 0,     /* none; config.json's sliding_window is not read (Llama) */
    VRT_WINDOW_ALL = 1,      /* every layer (Mistral) */
    VRT_WINDOW_ALTERNATE = 2 /* even layers windowed, odd layers global (Gemma2) */
};

/* What distinguishes one architecture's forward pass from another's: the
 * row's template (vrt_arch_info.desc) completed from config.json by
 * vrt_arch_describe. Zero is "absent" for every optional feature. */
typedef struct vrt_arch_desc {
    const char *name;     /* model_type: "llama" */
    int norm_kind;        /* VRT_NORM_* */
    float norm_w_offset;  /* RMSNorm weight offset: Gemma x·(1+w) is 1.0, else 0 */
    bool norm_bias;       /* LayerNorm bias tensors (Phi-2) */
    int rope_interleaved; /* 0: rotate_half (HF), 1: pairs (2i, 2i+1) */
    int rot_dim;          /* rotary dims per head (<= head_dim, even): head_dim ·
                             partial_rotary_factor (Phi-2 0.4) */
    int mlp_kind;         /* VRT_MLP_* */
    int gelu_tanh;        /* GELU flavour for the GELU MLPs */
    int n_experts;        /* VRT_MLP_MOE: experts per layer (Mixtral 8,
                             num_local_experts) */
    int experts_per_tok;  /* VRT_MLP_MOE: top-k (Mixtral 2, num_experts_per_tok) */
    bool embed_scale;     /* embeddings times sqrt(hidden_size) (Gemma) */
    bool parallel_block;  /* x + attn(norm(x)) + mlp(norm(x)), one norm (Phi-2) */
    bool qkv_bias;        /* q/k/v biases */
    bool o_bias;          /* o_proj bias */
    bool mlp_bias;        /* gate/up/down biases */
    bool lm_head_bias;    /* lm_head bias (Phi-2) */
    bool tied_embeddings; /* lm_head = embed_tokens */
    bool post_norms;      /* norms on the attention and MLP outputs before the
                             residual adds (Gemma2's sandwich norms) */
    float attn_scale;     /* attention score scale, 0 = 1/sqrt(head_dim) (Gemma2:
                             query_pre_attn_scalar^-1/2) */
    float attn_softcap;   /* tanh soft-capping of attention scores, 0 none (Gemma2 50) */
    float final_softcap;  /* tanh soft-capping of the logits, 0 none (Gemma2 30) */
    int window_kind;      /* VRT_WINDOW_* */
    int sliding_window;   /* tokens; 0 = none */
    bool qk_norm;         /* RMSNorm of q and k per head before rope (Qwen3) */
} vrt_arch_desc;

/* The tensors of a model, by role. */
typedef enum vrt_tensor_role {
    VRT_T_EMBED = 0,
    VRT_T_FINAL_NORM,
    VRT_T_LM_HEAD,
    VRT_T_ATTN_NORM, /* per layer from here on */
    VRT_T_Q,
    VRT_T_K,
    VRT_T_V,
    VRT_T_O,
    VRT_T_FFN_NORM, /* before the MLP: Llama's post_attention_layernorm,
                       Gemma2's pre_feedforward_layernorm */
    VRT_T_GATE,
    VRT_T_UP,
    VRT_T_DOWN,
    VRT_T_Q_NORM,         /* Qwen3 */
    VRT_T_K_NORM,         /* Qwen3 */
    VRT_T_POST_ATTN_NORM, /* Gemma2: on the attention output */
    VRT_T_POST_FFN_NORM,  /* Gemma2: on the MLP output */
    VRT_T_ROUTER,         /* Mixtral: the experts' gate */
    VRT_T_COUNT
} vrt_tensor_role;

#define VRT_ARCH_MAX_CLASSES 4
#define VRT_ARCH_MAX_RENAMES 4
#define VRT_ARCH_MAX_EXTRA 4

/* One architecture. */
typedef struct vrt_arch_info {
    /* architectures[0] values that select this row; [0] is the one
     * mkmodel writes and messages print. */
    const char *class_names[VRT_ARCH_MAX_CLASSES];
    const char *model_type; /* selects the row when architectures is absent */
    /* config.json values of the transformers config class when a key is
     * absent (null keys are handled by hf_config.c as transformers does). */
    struct {
        int num_key_value_heads; /* 0: num_attention_heads */
        int64_t max_position_embeddings;
        double rms_norm_eps;
        double rope_theta;
        int64_t sliding_window; /* read only when window_kind != NONE */
        bool tie_word_embeddings;
        int bos_token_id, eos_token_id; /* -1: none */
        double partial_rotary_factor;   /* read only when partial_rotary; 0 = 1.0 */
    } defaults;
    /* The only hidden_act the class accepts in config.json (and its default). */
    const char *hidden_act;
    /* Whether the class reads partial_rotary_factor; when not, any value
     * but 1.0 is refused (a part of the head would not rotate). */
    bool partial_rotary;
    int bias_kind; /* VRT_BIAS_*: completes desc.qkv_bias ... lm_head_bias */
    /* Keys the class names differently: {canonical key, this class's key}
     * (e.g. {"rms_norm_eps", "layer_norm_eps"} for Phi-2). */
    struct {
        const char *key, *as;
    } renames[VRT_ARCH_MAX_RENAMES];
    /* Module names by vrt_tensor_role, "{L}" standing for the layer index
     * and "{E}" for the expert's (Mixtral:
     * "model.layers.{L}.block_sparse_moe.experts.{E}.w1" is VRT_T_GATE);
     * ".weight" / ".bias" (or ".qweight" ...) follow. NULL: no such tensor
     * (VRT_T_GATE of an ungated MLP, VRT_T_FFN_NORM of a parallel block). */
    const char *tensors[VRT_T_COUNT];
    /* Keys save_pretrained writes only for this class, as "key": JSON value
     * pairs (mkmodel writes them, sorted in with the others). */
    struct {
        const char *key, *json;
    } extra_json[VRT_ARCH_MAX_EXTRA];
    /* The descriptor's fields that do not depend on config.json (rot_dim,
     * the biases, tied_embeddings and sliding_window are filled in by
     * vrt_arch_describe). */
    vrt_arch_desc desc;
} vrt_arch_info;

/* Number of rows (built-in and registered) and row by id (1..count); NULL
 * for any other id. */
int vrt_arch_count(void);
const vrt_arch_info *vrt_arch_get(int id);
/* The id of the row whose class_names / model_type holds name, or 0. */
int vrt_arch_by_class(const char *class_name);
int vrt_arch_by_model_type(const char *model_type);
/* "LlamaForCausalLM, MistralForCausalLM": every row's first class name,
 * into buf (truncated to cap); returns buf. */
const char *vrt_arch_supported(char *buf, size_t cap);
/* The key a row's config.json uses for the canonical key. */
const char *vrt_arch_key(const vrt_arch_info *a, const char *key);

/* The module name of role for layer (ignored for the global roles) into
 * buf, e.g. "model.layers.3.self_attn.q_proj"; suffix (".weight", or "")
 * is appended. VRT_ENOENT when the row has no such tensor, VRT_ERANGE when
 * buf is too small. */
int vrt_arch_tensor(const vrt_arch_info *a, int role, int layer, const char *suffix, char *buf,
                    size_t cap, vrt_err *err);
/* Same for the tensors of expert of a mixture-of-experts layer ("{E}");
 * expert -1 is VRT_EINVAL for a name that has "{E}". */
int vrt_arch_expert_tensor(const vrt_arch_info *a, int role, int layer, int expert,
                           const char *suffix, char *buf, size_t cap, vrt_err *err);

/* Refuses (VRT_EUNSUPPORTED, naming the feature and the class) a
 * descriptor that needs what the forward pass does not implement. */
int vrt_arch_check(const vrt_arch_desc *d, const char *class_name, vrt_err *err);

/* The backend ops the forward pass runs for d, each once, into ops[cap];
 * returns how many (at most VRT_OP_COUNT). */
int vrt_arch_ops(const vrt_arch_desc *d, vrt_op *ops, int cap);

/* Makes n more rows (kept by the caller, alive while used) known after
 * the built-in ones; their ids follow. For tests and embedders; not
 * thread-safe against concurrent lookups. n = 0 removes them. */
int vrt__arch_register(const vrt_arch_info *rows, int n, vrt_err *err);

#endif
