/* arch.c — the architecture table and what is derived from it (see
 * arch.h): lookup, tensor names, the descriptor of a loaded config, the
 * check of what the forward pass implements and the ops it runs.
 *
 * The defaults are those of the transformers config classes
 * (LlamaConfig, MistralConfig).
 */
#include "model/arch.h"

#include "core/err.h"
#include "model/hf_config.h"
#include "model/model.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The module names of a Llama-style checkpoint (Llama, Mistral, and the
 * Qwen and Gemma families use them too). */
#define LLAMA_TENSORS                                                                              \
    {                                                                                              \
        [VRT_T_EMBED] = "model.embed_tokens", [VRT_T_FINAL_NORM] = "model.norm",                   \
        [VRT_T_LM_HEAD] = "lm_head", [VRT_T_ATTN_NORM] = "model.layers.{L}.input_layernorm",       \
        [VRT_T_Q] = "model.layers.{L}.self_attn.q_proj",                                           \
        [VRT_T_K] = "model.layers.{L}.self_attn.k_proj",                                           \
        [VRT_T_V] = "model.layers.{L}.self_attn.v_proj",                                           \
        [VRT_T_O] = "model.layers.{L}.self_attn.o_proj",                                           \
        [VRT_T_FFN_NORM] = "model.layers.{L}.post_attention_layernorm",                            \
        [VRT_T_GATE] = "model.layers.{L}.mlp.gate_proj",                                           \
        [VRT_T_UP] = "model.layers.{L}.mlp.up_proj",                                               \
        [VRT_T_DOWN] = "model.layers.{L}.mlp.down_proj",                                           \
    }

static const vrt_arch_info builtin[] = {
    /* VRT_ARCH_LLAMA */
    {
        .class_names = {"LlamaForCausalLM"},
        .model_type = "llama",
        .defaults = {.num_key_value_heads = 0,
                     .max_position_embeddings = 2048,
                     .rms_norm_eps = 1e-6,
                     .rope_theta = 10000.0,
                     .tie_word_embeddings = false,
                     .bos_token_id = 1,
                     .eos_token_id = 2},
        .hidden_act = "silu",
        .bias_kind = VRT_BIAS_CONFIG,
        .tensors = LLAMA_TENSORS,
        .extra_json = {{"attention_bias", "false"},
                       {"mlp_bias", "false"},
                       {"pretraining_tp", "1"},
                       {"rope_scaling", "null"}},
        .desc = {.norm_kind = VRT_NORM_RMS, .mlp_kind = VRT_MLP_SILU_GATED},
    },
    /* VRT_ARCH_MISTRAL */
    {
        .class_names = {"MistralForCausalLM"},
        .model_type = "mistral",
        .defaults = {.num_key_value_heads = 8,
                     .max_position_embeddings = 131072,
                     .rms_norm_eps = 1e-6,
                     .rope_theta = 10000.0,
                     .sliding_window = 4096,
                     .tie_word_embeddings = false,
                     .bos_token_id = 1,
                     .eos_token_id = 2},
        .hidden_act = "silu",
        .bias_kind = VRT_BIAS_NONE,
        .tensors = LLAMA_TENSORS,
        .desc = {.norm_kind = VRT_NORM_RMS,
                 .mlp_kind = VRT_MLP_SILU_GATED,
                 .window_kind = VRT_WINDOW_ALL},
    },
};

#define N_BUILTIN ((int)(sizeof builtin / sizeof builtin[0]))

static const vrt_arch_info *extra;
static int n_extra;

int vrt__arch_register(const vrt_arch_info *rows, int n, vrt_err *err)
{
    if (n < 0 || (n > 0 && !rows))
        return vrt_err_set(err, VRT_EINVAL, "vrt__arch_register: %d rows at %p", n,
                           (const void *)rows);
    for (int i = 0; i < n; i++) {
        const vrt_arch_info *r = &rows[i];
        if (!r->class_names[0] || !r->model_type || !r->hidden_act)
            return vrt_err_set(err, VRT_EINVAL,
                               "architecture row %d needs a class name, a model_type and a "
                               "hidden_act",
                               i);
        /* The tensors its descriptor says it has (the loader asks for them
         * by role). */
        const vrt_arch_desc *d = &r->desc;
        const bool moe = d->mlp_kind == VRT_MLP_MOE;
        const struct {
            int role;
            bool needed;
        } need[] = {
            {VRT_T_EMBED, true},
            {VRT_T_FINAL_NORM, true},
            {VRT_T_LM_HEAD, true},
            {VRT_T_ATTN_NORM, true},
            {VRT_T_Q, true},
            {VRT_T_K, true},
            {VRT_T_V, true},
            {VRT_T_O, true},
            {VRT_T_FFN_NORM, !d->parallel_block},
            {VRT_T_GATE, d->mlp_kind != VRT_MLP_GELU},
            {VRT_T_UP, true},
            {VRT_T_DOWN, true},
            {VRT_T_Q_NORM, d->qk_norm},
            {VRT_T_K_NORM, d->qk_norm},
            {VRT_T_POST_ATTN_NORM, d->post_norms},
            {VRT_T_POST_FFN_NORM, d->post_norms},
            {VRT_T_ROUTER, moe},
        };
        for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
            if (need[k].needed && !r->tensors[need[k].role])
                return vrt_err_set(err, VRT_EINVAL,
                                   "architecture row %d (%s) has no name for tensor role %d", i,
                                   r->class_names[0], need[k].role);
    }
    extra = n ? rows : NULL;
    n_extra = n;
    return 0;
}

int vrt_arch_count(void)
{
    return N_BUILTIN + n_extra;
}

const vrt_arch_info *vrt_arch_get(int id)
{
    if (id >= 1 && id <= N_BUILTIN)
        return &builtin[id - 1];
    if (id > N_BUILTIN && id <= N_BUILTIN + n_extra)
        return &extra[id - 1 - N_BUILTIN];
    return NULL;
}

int vrt_arch_by_class(const char *class_name)
{
    for (int id = 1; class_name && id <= vrt_arch_count(); id++) {
        const vrt_arch_info *a = vrt_arch_get(id);
        for (int k = 0; k < VRT_ARCH_MAX_CLASSES && a->class_names[k]; k++)
            if (strcmp(a->class_names[k], class_name) == 0)
                return id;
    }
    return 0;
}

int vrt_arch_by_model_type(const char *model_type)
{
    for (int id = 1; model_type && id <= vrt_arch_count(); id++)
        if (strcmp(vrt_arch_get(id)->model_type, model_type) == 0)
            return id;
    return 0;
}

const char *vrt_arch_supported(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (int id = 1; id <= vrt_arch_count() && len < cap; id++) {
        int k = snprintf(buf + len, cap - len, "%s%s", id > 1 ? ", " : "",
                         vrt_arch_get(id)->class_names[0]);
        len += k > 0 ? (size_t)k : 0;
    }
    return buf;
}

const char *vrt_arch_key(const vrt_arch_info *a, const char *key)
{
    for (int i = 0; a && i < VRT_ARCH_MAX_RENAMES && a->renames[i].key; i++)
        if (strcmp(a->renames[i].key, key) == 0)
            return a->renames[i].as;
    return key;
}

int vrt_arch_expert_tensor(const vrt_arch_info *a, int role, int layer, int expert,
                           const char *suffix, char *buf, size_t cap, vrt_err *err)
{
    const char *pat = role >= 0 && role < VRT_T_COUNT ? a->tensors[role] : NULL;
    if (!pat)
        return vrt_err_set(err, VRT_ENOENT, "%s has no tensor of role %d", a->class_names[0], role);
    /* Copies pat with {L} and {E} replaced, then suffix. */
    size_t len = 0;
    for (const char *p = pat; *p && len < cap; p++) {
        int k = 0;
        if (strncmp(p, "{L}", 3) == 0 || strncmp(p, "{E}", 3) == 0) {
            int v = p[1] == 'L' ? layer : expert;
            if (v < 0)
                return vrt_err_set(err, VRT_EINVAL, "tensor %s needs an index for %.3s", pat, p);
            k = snprintf(buf + len, cap - len, "%d", v);
            p += 2;
        } else {
            buf[len] = *p;
            k = 1;
        }
        len += k > 0 ? (size_t)k : 0;
    }
    if (len < cap) {
        int k = snprintf(buf + len, cap - len, "%s", suffix);
        len += k > 0 ? (size_t)k : 0;
    }
    if (len >= cap) {
        if (cap)
            buf[cap - 1] = '\0';
        return vrt_err_set(err, VRT_ERANGE, "tensor name %s%s is longer than %zu bytes", pat,
                           suffix, cap ? cap - 1 : 0);
    }
    return 0;
}

int vrt_arch_tensor(const vrt_arch_info *a, int role, int layer, const char *suffix, char *buf,
                    size_t cap, vrt_err *err)
{
    return vrt_arch_expert_tensor(a, role, layer, -1, suffix, buf, cap, err);
}

int vrt_arch_check(const vrt_arch_desc *d, const char *class_name, vrt_err *err)
{
    struct {
        bool needed;
        const char *what;
    } missing[] = {
        {d->norm_kind != VRT_NORM_RMS, "LayerNorm"},
        {d->norm_bias, "norm biases"},
        {d->mlp_kind == VRT_MLP_GELU, "an ungated GELU MLP"},
        {d->mlp_kind == VRT_MLP_MOE, "a mixture-of-experts MLP"},
        {d->mlp_kind < VRT_MLP_SILU_GATED || d->mlp_kind > VRT_MLP_MOE, "an unknown MLP kind"},
        {d->embed_scale, "scaled embeddings"},
        {d->parallel_block, "parallel attention and MLP blocks"},
        {d->lm_head_bias, "an lm_head bias"},
        {d->post_norms, "norms on the attention and MLP outputs"},
        {d->attn_scale != 0.0f, "an attention scale other than 1/sqrt(head_dim)"},
        {d->attn_softcap != 0.0f, "attention logit soft-capping"},
        {d->final_softcap != 0.0f, "final logit soft-capping"},
        {d->window_kind == VRT_WINDOW_ALTERNATE, "a sliding window on alternate layers"},
        {d->window_kind < VRT_WINDOW_NONE || d->window_kind > VRT_WINDOW_ALTERNATE,
         "an unknown sliding-window kind"},
        {d->qk_norm, "q/k norms"},
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        if (missing[i].needed)
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s needs %s, which the forward pass does not implement "
                               "(it runs RMSNorm, gated SiLU/GELU MLPs, q/k/v/o and MLP biases, "
                               "tied embeddings and a sliding window on every layer)",
                               class_name, missing[i].what);
    return 0;
}

int vrt_arch_ops(const vrt_arch_desc *d, vrt_op *ops, int cap)
{
    vrt_op want[VRT_OP_COUNT];
    int n = 0;
    want[n++] = VRT_OP_EMBED;
    want[n++] = d->norm_kind == VRT_NORM_LAYER ? VRT_OP_LAYERNORM : VRT_OP_RMSNORM;
    want[n++] = VRT_OP_ROPE;
    want[n++] = VRT_OP_MATMUL;
    switch (d->mlp_kind) {
    case VRT_MLP_GELU_GATED: want[n++] = VRT_OP_GELU_MUL; break;
    case VRT_MLP_GELU: want[n++] = VRT_OP_GELU; break;
    case VRT_MLP_MOE:
        want[n++] = VRT_OP_MOE_TOPK;
        want[n++] = VRT_OP_SILU_MUL;
        break;
    default: want[n++] = VRT_OP_SILU_MUL; break;
    }
    want[n++] = VRT_OP_ADD;
    want[n++] = VRT_OP_KV_STORE;
    want[n++] = VRT_OP_ATTN_PREFILL;
    want[n++] = VRT_OP_ATTN_DECODE;
    int k = 0;
    for (int i = 0; i < n && k < cap; i++)
        ops[k++] = want[i];
    return k;
}

int vrt_arch_describe(const vrt_model_config *c, vrt_arch_desc *a, vrt_err *err)
{
    const vrt_arch_info *row = vrt_arch_get(c->arch);
    if (!row) {
        char sup[256];
        memset(a, 0, sizeof *a);
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "architecture \"%s\" is not supported by the forward pass; supported: "
                           "%s",
                           c->arch_name, vrt_arch_supported(sup, sizeof sup));
    }
    *a = row->desc;
    a->name = row->model_type;
    a->rot_dim = c->rotary_dim ? c->rotary_dim : c->head_dim;
    switch (row->bias_kind) {
    case VRT_BIAS_CONFIG:
        a->qkv_bias = a->o_bias = c->attention_bias;
        a->mlp_bias = c->mlp_bias;
        break;
    case VRT_BIAS_QKV: a->qkv_bias = true; break;
    case VRT_BIAS_ALL: a->qkv_bias = a->o_bias = a->mlp_bias = a->lm_head_bias = true; break;
    default: break;
    }
    a->tied_embeddings = c->tie_word_embeddings;
    if (a->window_kind != VRT_WINDOW_NONE && c->sliding_window > 0)
        a->sliding_window = c->sliding_window > INT_MAX ? INT_MAX : (int)c->sliding_window;
    return vrt_arch_check(a, row->class_names[0], err);
}
