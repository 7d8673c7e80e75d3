/* test_arch.c — the architecture table (model/arch.h).
 *
 * Table-driven over the built-in rows (lookup, config.json defaults,
 * descriptor, ops, tensor names), the refusal of every descriptor feature
 * the forward pass lacks, and test-only rows registered at run time: a
 * Llama-shaped architecture with its own class names, defaults, renamed
 * keys, tensor names and q/k/v biases must work end to end (config.json,
 * mkmodel, loader, forward) from its row alone, and give exactly the
 * logits of the same weights loaded as a Llama.
 */
#include "test.h"

#include "core/err.h"
#include "core/util.h"
#include "model/arch.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/mkmodel.h"
#include "model/model.h"
#include "model/safetensors.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static const char *tmpdir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/vrt_arch_XXXXXX");
    return mkdtemp(dir);
}

static int has_op(const vrt_arch_desc *d, vrt_op op)
{
    vrt_op ops[VRT_OP_COUNT];
    int n = vrt_arch_ops(d, ops, VRT_OP_COUNT);
    for (int i = 0; i < n; i++)
        if (ops[i] == op)
            return 1;
    return 0;
}

/* ---- test-only rows ------------------------------------------------------- */

/* A Llama-shaped architecture that names everything differently. */
#define TINY_TENSORS                                                                               \
    {                                                                                              \
        [VRT_T_EMBED] = "transformer.wte", [VRT_T_FINAL_NORM] = "transformer.ln_f",                \
        [VRT_T_LM_HEAD] = "head", [VRT_T_ATTN_NORM] = "transformer.h.{L}.ln_1",                    \
        [VRT_T_Q] = "transformer.h.{L}.attn.q", [VRT_T_K] = "transformer.h.{L}.attn.k",            \
        [VRT_T_V] = "transformer.h.{L}.attn.v", [VRT_T_O] = "transformer.h.{L}.attn.out",          \
        [VRT_T_FFN_NORM] = "transformer.h.{L}.ln_2", [VRT_T_GATE] = "transformer.h.{L}.ffn.w1",    \
        [VRT_T_UP] = "transformer.h.{L}.ffn.w3", [VRT_T_DOWN] = "transformer.h.{L}.ffn.w2",        \
    }

#define LLAMA_NAMES                                                                                \
    [VRT_T_EMBED] = "model.embed_tokens", [VRT_T_FINAL_NORM] = "model.norm",                       \
    [VRT_T_LM_HEAD] = "lm_head", [VRT_T_ATTN_NORM] = "model.layers.{L}.input_layernorm",           \
    [VRT_T_Q] = "model.layers.{L}.self_attn.q_proj",                                               \
    [VRT_T_K] = "model.layers.{L}.self_attn.k_proj",                                               \
    [VRT_T_V] = "model.layers.{L}.self_attn.v_proj",                                               \
    [VRT_T_O] = "model.layers.{L}.self_attn.o_proj",                                               \
    [VRT_T_FFN_NORM] = "model.layers.{L}.post_attention_layernorm",                                \
    [VRT_T_GATE] = "model.layers.{L}.mlp.gate_proj", [VRT_T_UP] = "model.layers.{L}.mlp.up_proj",  \
    [VRT_T_DOWN] = "model.layers.{L}.mlp.down_proj"

static const vrt_arch_info test_rows[] = {
    {
        .class_names = {"TinyTestForCausalLM", "TinyTestLMHeadModel"},
        .model_type = "tinytest",
        .defaults = {.num_key_value_heads = 1,
                     .max_position_embeddings = 4096,
                     .rms_norm_eps = 1e-5,
                     .rope_theta = 500000.0,
                     .bos_token_id = 5,
                     .eos_token_id = 6},
        .hidden_act = "silu",
        .bias_kind = VRT_BIAS_QKV,
        .renames = {{"rms_norm_eps", "layer_norm_eps"}, {"num_hidden_layers", "n_layer"}},
        .tensors = TINY_TENSORS,
        .extra_json = {{"tinytest_flag", "7"}},
        .desc = {.norm_kind = VRT_NORM_RMS, .mlp_kind = VRT_MLP_SILU_GATED},
    },
    {
        .class_names = {"QkNormTestForCausalLM"},
        .model_type = "qknormtest",
        .defaults = {.max_position_embeddings = 2048, .rms_norm_eps = 1e-6, .rope_theta = 1e4},
        .hidden_act = "silu",
        .tensors = {LLAMA_NAMES, [VRT_T_Q_NORM] = "model.layers.{L}.self_attn.q_norm",
                    [VRT_T_K_NORM] = "model.layers.{L}.self_attn.k_norm"},
        .desc = {.norm_kind = VRT_NORM_RMS, .mlp_kind = VRT_MLP_SILU_GATED, .qk_norm = true},
    },
    {
        .class_names = {"PartialTestForCausalLM"},
        .model_type = "partialtest",
        .defaults = {.max_position_embeddings = 2048,
                     .rms_norm_eps = 1e-6,
                     .rope_theta = 1e4,
                     .partial_rotary_factor = 0.5},
        .hidden_act = "silu",
        .partial_rotary = true,
        .tensors = {LLAMA_NAMES},
        .desc = {.norm_kind = VRT_NORM_RMS, .mlp_kind = VRT_MLP_SILU_GATED},
    },
};
#define N_TEST_ROWS ((int)(sizeof test_rows / sizeof test_rows[0]))

/* ---- the built-in rows -------------------------------------------------- */

TEST(arch_builtin_rows_lookup)
{
    char sup[256];
    ASSERT_EQ_INT(vrt_arch_count(), 2);
    ASSERT_EQ_STR(vrt_arch_supported(sup, sizeof sup), "LlamaForCausalLM, MistralForCausalLM");
    ASSERT_EQ_STR(vrt_arch_get(VRT_ARCH_LLAMA)->class_names[0], "LlamaForCausalLM");
    ASSERT_EQ_STR(vrt_arch_get(VRT_ARCH_MISTRAL)->class_names[0], "MistralForCausalLM");
    for (int id = 1; id <= vrt_arch_count(); id++) {
        const vrt_arch_info *a = vrt_arch_get(id);
        ASSERT(a != NULL);
        for (int k = 0; k < VRT_ARCH_MAX_CLASSES && a->class_names[k]; k++)
            ASSERT_EQ_INT(vrt_arch_by_class(a->class_names[k]), id);
        ASSERT_EQ_INT(vrt_arch_by_model_type(a->model_type), id);
    }
    ASSERT(vrt_arch_get(0) == NULL);
    ASSERT(vrt_arch_get(vrt_arch_count() + 1) == NULL);
    ASSERT_EQ_INT(vrt_arch_by_class("PhiForCausalLM"), 0);
    ASSERT_EQ_INT(vrt_arch_by_class(NULL), 0);
    ASSERT_EQ_INT(vrt_arch_by_model_type("gemma"), 0);
    /* The built-in rows pass the checks a registered row must pass. */
    vrt_err err = {0};
    ASSERT_OK(vrt__arch_register(vrt_arch_get(1), vrt_arch_count(), &err), &err);
    ASSERT_OK(vrt__arch_register(NULL, 0, &err), &err);
    /* A truncated list stays a string. */
    ASSERT_EQ_STR(vrt_arch_supported(sup, 6), "Llama");
}

/* Every row's defaults are what config.json gets when only the
 * architecture and the required sizes are set. */
TEST(arch_builtin_rows_defaults_descriptor_ops)
{
    for (int id = 1; id <= vrt_arch_count(); id++) {
        const vrt_arch_info *a = vrt_arch_get(id);
        char json[512];
        snprintf(json, sizeof json,
                 "{\"model_type\": \"%s\", \"hidden_size\": 256, \"intermediate_size\": 512, "
                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
                 a->model_type);
        vrt_model_config c;
        vrt_err err = {0};
        ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
        ASSERT_EQ_INT(c.arch, id);
        ASSERT_EQ_STR(c.arch_name, a->class_names[0]);
        ASSERT_EQ_STR(c.model_type, a->model_type);
        ASSERT_EQ_INT(c.num_key_value_heads,
                      a->defaults.num_key_value_heads ? a->defaults.num_key_value_heads : 8);
        ASSERT_EQ_INT(c.max_position_embeddings, a->defaults.max_position_embeddings);
        ASSERT(c.rms_norm_eps == a->defaults.rms_norm_eps);
        ASSERT(c.rope_theta == a->defaults.rope_theta);
        ASSERT_EQ_INT(c.tie_word_embeddings, a->defaults.tie_word_embeddings);
        ASSERT_EQ_INT(c.bos_token_id, a->defaults.bos_token_id);
        ASSERT_EQ_INT(c.n_eos, 1);
        ASSERT_EQ_INT(c.eos_token_ids[0], a->defaults.eos_token_id);
        ASSERT_EQ_STR(c.hidden_act, a->hidden_act);
        ASSERT_EQ_INT(c.rotary_dim, c.head_dim);
        ASSERT_EQ_INT(c.sliding_window,
                      a->desc.window_kind == VRT_WINDOW_NONE ? 0 : a->defaults.sliding_window);
        /* The descriptor: the row's template completed from the config. */
        vrt_arch_desc d;
        ASSERT_OK(vrt_arch_describe(&c, &d, &err), &err);
        ASSERT_EQ_STR(d.name, a->model_type);
        ASSERT_EQ_INT(d.norm_kind, a->desc.norm_kind);
        ASSERT_EQ_INT(d.mlp_kind, a->desc.mlp_kind);
        ASSERT_EQ_INT(d.rot_dim, c.head_dim);
        ASSERT_EQ_INT(d.sliding_window, (int)c.sliding_window);
        /* The ops the forward pass runs follow from it. */
        static const vrt_op always[] = {VRT_OP_EMBED,      VRT_OP_ROPE,     VRT_OP_MATMUL,
                                        VRT_OP_ADD,        VRT_OP_KV_STORE, VRT_OP_ATTN_PREFILL,
                                        VRT_OP_ATTN_DECODE};
        for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
            ASSERT(has_op(&d, always[i]));
        ASSERT(has_op(&d, VRT_OP_RMSNORM));
        ASSERT(has_op(&d, VRT_OP_SILU_MUL));
        ASSERT(!has_op(&d, VRT_OP_LAYERNORM) && !has_op(&d, VRT_OP_GELU_MUL) &&
               !has_op(&d, VRT_OP_MOE_TOPK));
        /* Tensor names of a layer carry its index. */
        char name[128];
        ASSERT_OK(vrt_arch_tensor(a, VRT_T_Q, 17, ".weight", name, sizeof name, &err), &err);
        ASSERT_EQ_STR(name, "model.layers.17.self_attn.q_proj.weight");
        ASSERT_OK(vrt_arch_tensor(a, VRT_T_EMBED, 3, ".weight", name, sizeof name, &err), &err);
        ASSERT_EQ_STR(name, "model.embed_tokens.weight");
        ASSERT_EQ_INT(vrt_arch_tensor(a, VRT_T_ROUTER, 0, "", name, sizeof name, &err), VRT_ENOENT);
        ASSERT_EQ_INT(vrt_arch_tensor(a, VRT_T_DOWN, 0, ".weight", name, 10, &err), VRT_ERANGE);
    }
}

TEST(arch_bias_and_window_follow_the_row)
{
    const char *base = "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": "
                       "1, \"num_attention_heads\": 8, \"vocab_size\": 100, "
                       "\"attention_bias\": true, \"mlp_bias\": true, \"sliding_window\": 77";
    char json[512];
    vrt_model_config c;
    vrt_arch_desc d;
    vrt_err err = {0};
    /* Llama reads the bias flags, not the window. */
    snprintf(json, sizeof json, "{\"architectures\": [\"LlamaForCausalLM\"], %s}", base);
    ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
    ASSERT_OK(vrt_arch_describe(&c, &d, &err), &err);
    ASSERT(d.qkv_bias && d.o_bias && d.mlp_bias && !d.lm_head_bias);
    ASSERT_EQ_INT(d.sliding_window, 0);
    /* Mistral reads the window, not the bias flags. */
    snprintf(json, sizeof json, "{\"architectures\": [\"MistralForCausalLM\"], %s}", base);
    ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
    ASSERT_OK(vrt_arch_describe(&c, &d, &err), &err);
    ASSERT(!d.qkv_bias && !d.o_bias && !d.mlp_bias);
    ASSERT_EQ_INT(d.sliding_window, 77);
    ASSERT_EQ_INT(d.window_kind, VRT_WINDOW_ALL);
}

/* ---- refusals ------------------------------------------------------------- */

TEST(arch_check_refuses_what_the_forward_pass_lacks)
{
    const vrt_arch_desc ok = vrt_arch_get(VRT_ARCH_LLAMA)->desc;
    vrt_err err = {0};
    ASSERT_OK(vrt_arch_check(&ok, "LlamaForCausalLM", &err), &err);
    /* What it has: an RMSNorm weight offset, interleaved or partial
     * rotary, gated GELU, biases, tied embeddings, a window everywhere. */
    vrt_arch_desc d = ok;
    d.norm_w_offset = 1.0f;
    d.rope_interleaved = 1;
    d.rot_dim = 16;
    d.mlp_kind = VRT_MLP_GELU_GATED;
    d.gelu_tanh = 1;
    d.qkv_bias = d.o_bias = d.mlp_bias = true;
    d.tied_embeddings = true;
    d.window_kind = VRT_WINDOW_ALL;
    d.sliding_window = 64;
    ASSERT_OK(vrt_arch_check(&d, "X", &err), &err);
    ASSERT(has_op(&d, VRT_OP_GELU_MUL) && !has_op(&d, VRT_OP_SILU_MUL));
    struct {
        vrt_arch_desc d;
        const char *what;
    } bad[15];
    int n = 0;
#define BAD(field, value, text)                                                                    \
    do {                                                                                           \
        bad[n].d = ok;                                                                             \
        bad[n].d.field = (value);                                                                  \
        bad[n].what = (text);                                                                      \
        n++;                                                                                       \
    } while (0)
    BAD(norm_kind, VRT_NORM_LAYER, "LayerNorm");
    BAD(norm_bias, true, "norm biases");
    BAD(mlp_kind, VRT_MLP_GELU, "ungated GELU");
    BAD(mlp_kind, VRT_MLP_MOE, "mixture-of-experts");
    BAD(mlp_kind, 9, "unknown MLP");
    BAD(embed_scale, true, "scaled embeddings");
    BAD(parallel_block, true, "parallel attention");
    BAD(lm_head_bias, true, "lm_head bias");
    BAD(post_norms, true, "norms on the attention and MLP outputs");
    BAD(attn_scale, 0.0625f, "attention scale");
    BAD(attn_softcap, 50.0f, "attention logit soft-capping");
    BAD(final_softcap, 30.0f, "final logit soft-capping");
    BAD(window_kind, VRT_WINDOW_ALTERNATE, "alternate layers");
    BAD(window_kind, 7, "unknown sliding-window");
    BAD(qk_norm, true, "q/k norms");
#undef BAD
    for (int i = 0; i < n; i++) {
        err = (vrt_err){0};
        ASSERT_EQ_INT(vrt_arch_check(&bad[i].d, "SomeForCausalLM", &err), VRT_EUNSUPPORTED);
        ASSERT_CONTAINS(err.msg, "SomeForCausalLM");
        ASSERT_CONTAINS(err.msg, bad[i].what);
    }
    /* Their ops are known even where the forward pass lacks them. */
    ASSERT(has_op(&bad[0].d, VRT_OP_LAYERNORM) && !has_op(&bad[0].d, VRT_OP_RMSNORM));
    ASSERT(has_op(&bad[2].d, VRT_OP_GELU));
    ASSERT(has_op(&bad[3].d, VRT_OP_MOE_TOPK));
}

TEST(arch_register_checks_rows)
{
    vrt_err err = {0};
    vrt_arch_info row = test_rows[0];
    row.tensors[VRT_T_K] = NULL;
    ASSERT_EQ_INT(vrt__arch_register(&row, 1, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "TinyTestForCausalLM");
    row = test_rows[0];
    row.model_type = NULL;
    ASSERT_EQ_INT(vrt__arch_register(&row, 1, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt__arch_register(NULL, 2, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_arch_count(), 2);
    /* What a row must name follows from its descriptor: a Phi-2-like row
     * (ungated GELU MLP fc1/fc2, parallel block: no gate, no MLP norm)
     * registers; a q/k norm row must name the norms; an expert's tensor
     * needs its index. */
    row = test_rows[2];
    row.tensors[VRT_T_GATE] = row.tensors[VRT_T_FFN_NORM] = NULL;
    row.desc.mlp_kind = VRT_MLP_GELU;
    row.desc.parallel_block = true;
    ASSERT_OK(vrt__arch_register(&row, 1, &err), &err);
    row = test_rows[1];
    ASSERT_OK(vrt__arch_register(&row, 1, &err), &err);
    row.tensors[VRT_T_K_NORM] = NULL;
    ASSERT_EQ_INT(vrt__arch_register(&row, 1, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "QkNormTestForCausalLM");
    row = test_rows[1];
    row.tensors[VRT_T_GATE] = "model.layers.{L}.block_sparse_moe.experts.{E}.w1";
    char name[96];
    ASSERT_OK(vrt_arch_expert_tensor(&row, VRT_T_GATE, 3, 7, ".weight", name, sizeof name, &err),
              &err);
    ASSERT_EQ_STR(name, "model.layers.3.block_sparse_moe.experts.7.w1.weight");
    ASSERT_EQ_INT(vrt_arch_tensor(&row, VRT_T_GATE, 3, ".weight", name, sizeof name, &err),
                  VRT_EINVAL);
    ASSERT_OK(vrt_arch_tensor(&row, VRT_T_Q_NORM, 12, ".weight", name, sizeof name, &err), &err);
    ASSERT_EQ_STR(name, "model.layers.12.self_attn.q_norm.weight");
    ASSERT_OK(vrt__arch_register(test_rows, N_TEST_ROWS, &err), &err);
    ASSERT_EQ_INT(vrt_arch_count(), 2 + N_TEST_ROWS);
    ASSERT_OK(vrt__arch_register(NULL, 0, &err), &err);
    ASSERT_EQ_INT(vrt_arch_count(), 2);
}

/* ---- a new architecture from its row alone --------------------------------- */

TEST(arch_test_row_config_defaults_and_renamed_keys)
{
    vrt_err err = {0};
    ASSERT_OK(vrt__arch_register(test_rows, N_TEST_ROWS, &err), &err);
    char sup[256];
    ASSERT_CONTAINS(vrt_arch_supported(sup, sizeof sup),
                    "MistralForCausalLM, TinyTestForCausalLM, QkNormTestForCausalLM");
    int id = vrt_arch_by_class("TinyTestForCausalLM");
    ASSERT(id > 2);
    ASSERT(vrt_arch_get(id) == &test_rows[0]);
    ASSERT_EQ_INT(vrt_arch_by_class("TinyTestLMHeadModel"), id);
    ASSERT_EQ_INT(vrt_arch_by_model_type("tinytest"), id);

    /* Defaults of the row; the second class name selects it too. */
    const char *sizes = "\"hidden_size\": 64, \"intermediate_size\": 128, \"n_layer\": 2, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 100";
    char json[512];
    snprintf(json, sizeof json, "{\"architectures\": [\"TinyTestLMHeadModel\"], %s}", sizes);
    vrt_model_config c;
    ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.arch, id);
    ASSERT_EQ_STR(c.arch_name, "TinyTestForCausalLM");
    ASSERT_EQ_STR(c.model_type, "tinytest");
    ASSERT_EQ_INT(c.num_hidden_layers, 2);
    ASSERT_EQ_INT(c.num_key_value_heads, 1);
    ASSERT_EQ_INT(c.max_position_embeddings, 4096);
    ASSERT(c.rms_norm_eps == 1e-5);
    ASSERT(c.rope_theta == 500000.0);
    ASSERT_EQ_INT(c.bos_token_id, 5);
    ASSERT_EQ_INT(c.n_eos, 1);
    ASSERT_EQ_INT(c.eos_token_ids[0], 6);
    vrt_arch_desc d;
    ASSERT_OK(vrt_arch_describe(&c, &d, &err), &err);
    ASSERT(d.qkv_bias && !d.o_bias && !d.mlp_bias);

    /* Renamed keys: the row's name is read, the canonical one is not. */
    snprintf(json, sizeof json,
             "{\"model_type\": \"tinytest\", %s, \"layer_norm_eps\": 0.001, "
             "\"rms_norm_eps\": 0.5}",
             sizes);
    ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
    ASSERT(c.rms_norm_eps == 0.001);
    snprintf(json, sizeof json, "{\"model_type\": \"tinytest\", %s, \"layer_norm_eps\": \"x\"}",
             sizes);
    ASSERT_EQ_INT(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m: layer_norm_eps must be a number");
    ASSERT_EQ_INT(vrt_model_config_parse(&c,
                                         "{\"model_type\": \"tinytest\", \"hidden_size\": 64, "
                                         "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                                         "\"num_attention_heads\": 4, \"vocab_size\": 100}",
                                         "m", NULL, NULL, &err),
                  VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "required key n_layer");

    /* A class that reads partial_rotary_factor rotates part of each head. */
    const char *partial = "{\"architectures\": [\"PartialTestForCausalLM\"], \"hidden_size\": "
                          "128, \"intermediate_size\": 128, \"num_hidden_layers\": 1, "
                          "\"num_attention_heads\": 4, \"vocab_size\": 100%s}";
    snprintf(json, sizeof json, partial, "");
    ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.head_dim, 32);
    ASSERT_EQ_INT(c.rotary_dim, 16);
    ASSERT_OK(vrt_arch_describe(&c, &d, &err), &err);
    ASSERT_EQ_INT(d.rot_dim, 16);
    snprintf(json, sizeof json, partial, ", \"partial_rotary_factor\": 0.25");
    ASSERT_OK(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.rotary_dim, 8);
    snprintf(json, sizeof json, partial, ", \"partial_rotary_factor\": 0.3");
    ASSERT_EQ_INT(vrt_model_config_parse(&c, json, "m", NULL, NULL, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "partial_rotary_factor 0.3");
}

/* Writes a Llama directory holding the weights of the tinytest model in
 * src under Llama names (plus the zero o_proj biases a Llama with
 * attention_bias needs where tinytest has none). */
static int write_as_llama(const char *src, const char *dst, const vrt_mkmodel_opts *tiny,
                          vrt_err *err)
{
    vrt_mkmodel_opts o = *tiny;
    o.arch = VRT_ARCH_LLAMA;
    int rc = vrt_mkmodel_write(&o, dst, err);
    if (rc)
        return rc;
    char *cfg_path = vrt_path_join(dst, "config.json");
    char *cfg = vrt_test_read_file(cfg_path, NULL);
    free(cfg_path);
    char *at = cfg ? strstr(cfg, "\"attention_bias\": false") : NULL;
    if (!at) {
        free(cfg);
        return vrt_err_set(err, VRT_EFORMAT, "mkmodel wrote no attention_bias");
    }
    memcpy(at, "\"attention_bias\":  true", strlen("\"attention_bias\": false"));
    rc = vrt_write_file(dst, "config.json", cfg, strlen(cfg), err);
    free(cfg);
    if (rc)
        return rc;

    const vrt_arch_info *from = vrt_arch_get(tiny->arch), *to = vrt_arch_get(VRT_ARCH_LLAMA);
    vrt_checkpoint ck;
    rc = vrt_checkpoint_open(&ck, src, err);
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    float *zeros = calloc((size_t)o.hidden_size, sizeof *zeros);
    char a[128], b[128];
    for (int role = 0; role < VRT_T_COUNT && !rc; role++) {
        int per_layer = role >= VRT_T_ATTN_NORM;
        for (int l = 0; l < (per_layer ? o.num_hidden_layers : 1) && !rc; l++) {
            for (int bias = 0; bias < 2 && !rc; bias++) {
                const char *sfx = bias ? ".bias" : ".weight";
                if (!from->tensors[role] ||
                    vrt_arch_tensor(from, role, l, sfx, a, sizeof a, NULL) != 0 ||
                    vrt_arch_tensor(to, role, l, sfx, b, sizeof b, NULL) != 0)
                    continue;
                const vrt_st_tensor *t = vrt_checkpoint_find(&ck, a);
                if (t)
                    rc = vrt_st_writer_add_ref(&w, b, t->dtype, t->ndim, t->shape, t->data,
                                               t->nbytes, err);
                else if (bias && role == VRT_T_O)
                    rc = vrt_st_writer_add_ref(&w, b, VRT_ST_F32, 1, (int64_t[]){o.hidden_size},
                                               zeros, (uint64_t)o.hidden_size * 4, err);
            }
        }
    }
    char *path = vrt_path_join(dst, "model.safetensors");
    if (!rc)
        rc = vrt_st_writer_write(&w, path, NULL, err);
    free(path);
    vrt_st_writer_free(&w);
    vrt_checkpoint_close(&ck);
    free(zeros);
    return rc;
}

/* The logits of a 6-token prefill and one decode step. */
static int run_model(const char *dir, vrt_backend *be, float *logits, vrt_model **mp, vrt_err *err)
{
    vrt_model_load_opts lo = {.dtype = "float32", .quiet = 1};
    int rc = vrt_model_load(mp, dir, be, &lo, err);
    if (rc)
        return rc;
    vrt_model *m = *mp;
    vrt_kv_cache kv;
    if ((rc = vrt_kv_cache_init(&kv, m, 4, 16, err)) != 0)
        return rc;
    int32_t toks[6] = {1, 17, 230, 4, 999, 31}, qs[2] = {0, 6}, ctx[1] = {6}, table[1] = {2};
    vrt_batch b = {1, toks, qs, ctx, table, 1, NULL, 0};
    rc = vrt_model_forward(m, &kv, &b, logits, err);
    int32_t next[1] = {77}, qs1[2] = {0, 1}, ctx1[1] = {7};
    vrt_batch b1 = {1, next, qs1, ctx1, table, 1, NULL, 0};
    if (!rc)
        rc = vrt_model_forward(m, &kv, &b1, logits + m->cfg.vocab_size, err);
    vrt_kv_cache_free(&kv);
    return rc;
}

TEST(arch_test_row_end_to_end_equals_llama)
{
    vrt_err err = {0};
    ASSERT_OK(vrt__arch_register(test_rows, N_TEST_ROWS, &err), &err);
    char root[64];
    ASSERT(tmpdir(root, sizeof root) != NULL);
    char dir[128], llama[128];
    snprintf(dir, sizeof dir, "%s/tiny", root);
    snprintf(llama, sizeof llama, "%s/llama", root);

    /* mkmodel writes the row's class, model_type, keys and tensor names. */
    vrt_mkmodel_opts o;
    const int id = vrt_arch_by_class("TinyTestForCausalLM");
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", id, &err), &err);
    o.dtype = VRT_ST_F32;
    o.seed = 11;
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *cfg = vrt_test_read_file(path, NULL);
    ASSERT(cfg != NULL);
    ASSERT_CONTAINS(cfg, "\"architectures\": [\n    \"TinyTestForCausalLM\"\n  ],");
    ASSERT_CONTAINS(cfg, "\"model_type\": \"tinytest\"");
    ASSERT_CONTAINS(cfg, "\"layer_norm_eps\": 1e-05,");
    ASSERT_CONTAINS(cfg, "\"n_layer\": 4,");
    ASSERT_CONTAINS(cfg, "\"tinytest_flag\": 7,");
    ASSERT(!strstr(cfg, "rms_norm_eps") && !strstr(cfg, "num_hidden_layers") &&
           !strstr(cfg, "attention_bias") && !strstr(cfg, "sliding_window"));
    /* sorted as save_pretrained writes them */
    ASSERT(strstr(cfg, "\"intermediate_size\"") < strstr(cfg, "\"layer_norm_eps\"") &&
           strstr(cfg, "\"layer_norm_eps\"") < strstr(cfg, "\"max_position_embeddings\"") &&
           strstr(cfg, "\"n_layer\"") < strstr(cfg, "\"num_attention_heads\"") &&
           strstr(cfg, "\"tie_word_embeddings\"") < strstr(cfg, "\"tinytest_flag\""));
    free(cfg);
    vrt_checkpoint ck;
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    ASSERT(vrt_checkpoint_find(&ck, "transformer.h.3.attn.q.weight") != NULL);
    ASSERT(vrt_checkpoint_find(&ck, "transformer.h.3.attn.v.bias") != NULL);
    ASSERT(vrt_checkpoint_find(&ck, "transformer.h.3.attn.out.bias") == NULL);
    ASSERT(vrt_checkpoint_find(&ck, "head.weight") != NULL);
    ASSERT(vrt_checkpoint_find(&ck, "model.embed_tokens.weight") == NULL);
    uint64_t params;
    vrt_mkmodel_size(&o, &params, NULL);
    uint64_t counted = 0;
    for (int i = 0; i < vrt_checkpoint_count(&ck); i++)
        counted += vrt_checkpoint_tensor(&ck, i)->nbytes / 4;
    ASSERT_EQ_INT(counted, params);
    vrt_checkpoint_close(&ck);

    /* The loader and the forward pass take it from the row; the same
     * weights under Llama names give bit-identical logits. */
    ASSERT_OK(write_as_llama(dir, llama, &o, &err), &err);
    vrt_backend *be;
    ASSERT_OK(vrt_backend_create(&be, "cpu", 1, &err), &err);
    const int V = o.vocab_size;
    float *la = malloc(sizeof(float) * 2 * V), *lb = malloc(sizeof(float) * 2 * V);
    vrt_model *ma = NULL, *mb = NULL;
    ASSERT(la && lb);
    ASSERT_OK(run_model(dir, be, la, &ma, &err), &err);
    ASSERT(ma->arch.qkv_bias && !ma->arch.o_bias);
    ASSERT(ma->layers[0].bq != NULL && ma->layers[0].bo == NULL);
    ASSERT_EQ_STR(ma->arch.name, "tinytest");
    ASSERT_OK(run_model(llama, be, lb, &mb, &err), &err);
    ASSERT(mb->layers[0].bo != NULL);
    int differ = 0;
    for (int i = 0; i < 2 * V; i++)
        differ += !(la[i] == lb[i]) || !isfinite(la[i]);
    ASSERT_EQ_INT(differ, 0);
    /* The q/k/v biases matter: without them the logits change. */
    float *lc = malloc(sizeof(float) * 2 * V);
    vrt_model *mc = NULL;
    snprintf(path, sizeof path, "%s/config.json", llama);
    cfg = vrt_test_read_file(path, NULL);
    ASSERT(cfg && strstr(cfg, "\"attention_bias\":  true"));
    memcpy(strstr(cfg, "\"attention_bias\":  true"), "\"attention_bias\": false", 23);
    ASSERT_OK(vrt_write_file(llama, "config.json", cfg, strlen(cfg), &err), &err);
    free(cfg);
    ASSERT_OK(run_model(llama, be, lc, &mc, &err), &err);
    differ = 0;
    for (int i = 0; i < V; i++)
        differ += la[i] != lc[i];
    ASSERT(differ > V / 2);
    free(la);
    free(lb);
    free(lc);
    vrt_model_free(ma);
    vrt_model_free(mb);
    vrt_model_free(mc);
    vrt_backend_destroy(be);
    vrt_test_rm_tree(root);
}

TEST(arch_loader_refuses_unsupported_descriptor)
{
    vrt_err err = {0};
    ASSERT_OK(vrt__arch_register(test_rows, N_TEST_ROWS, &err), &err);
    char root[64];
    ASSERT(tmpdir(root, sizeof root) != NULL);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/qk", root);
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", vrt_arch_by_class("QkNormTestForCausalLM"), &err),
              &err);
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);
    /* config.json is fine; the forward pass cannot run it. */
    vrt_model_config c;
    ASSERT_OK(vrt_model_config_load(&c, dir, &err), &err);
    ASSERT_EQ_STR(c.arch_name, "QkNormTestForCausalLM");
    vrt_backend *be;
    ASSERT_OK(vrt_backend_create(&be, "cpu", 1, &err), &err);
    vrt_model *m = (vrt_model *)1;
    vrt_model_load_opts lo = {.quiet = 1};
    ASSERT_EQ_INT(vrt_model_load(&m, dir, be, &lo, &err), VRT_EUNSUPPORTED);
    ASSERT(m == NULL);
    ASSERT_CONTAINS(err.msg, dir);
    ASSERT_CONTAINS(err.msg, "QkNormTestForCausalLM needs q/k norms");
    vrt_backend_destroy(be);
    vrt_test_rm_tree(root);
}

/* mkmodel refuses an id that is not in the table and names them all. */
TEST(arch_mkmodel_ids_come_from_the_table)
{
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_EQ_INT(vrt_mkmodel_preset(&o, "tiny", 3, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "LlamaForCausalLM, MistralForCausalLM");
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    o.arch = 0;
    ASSERT_EQ_INT(vrt_mkmodel_validate(&o, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "llama, mistral");
    ASSERT_OK(vrt__arch_register(test_rows, N_TEST_ROWS, &err), &err);
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", 3, &err), &err);
    ASSERT_OK(vrt_mkmodel_validate(&o, &err), &err);
    o.sliding_window = 16;
    ASSERT_EQ_INT(vrt_mkmodel_validate(&o, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "TinyTestForCausalLM");
    ASSERT_CONTAINS(err.msg, "add --arch mistral");
}
