/* test_hf_config.c — config.json / generation_config.json parsing and the
 * rotary inverse-frequency tables (runtime/model/hf_config.c, docs/formats.md
 * §2.0–2.2, §6.3).
 *
 * Fixtures: tests/fixtures/hf_config/ holds the config files of real
 * checkpoints in the legacy key style (top-level rope_theta / rope_scaling,
 * torch_dtype); tests/fixtures/hf/<model>/ holds files written by
 * transformers 5.x (rope_parameters, dtype). tests/fixtures/rope/
 * rope_cases.json holds inv_freq tables computed by transformers' rope init
 * functions for config dicts that the tests feed to the parser unchanged.
 * Error cases start from a valid config and break one key.
 */
#include "test.h"

#include "core/err.h"
#include "model/hf_config.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_CFG "tests/fixtures/hf_config"
#define HF_V5 "tests/fixtures/hf"
#define ROPE_CASES "tests/fixtures/rope/rope_cases.json"

static int has_eos(const vrt_model_config *c, int id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == id)
            return 1;
    return 0;
}

/* A minimal valid Llama config.json (legacy keys) to break in error tests. */
static const char *const BASE =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\","
    " \"hidden_size\": 256, \"intermediate_size\": 512,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 8,"
    " \"num_key_value_heads\": 2, \"vocab_size\": 1000,"
    " \"hidden_act\": \"silu\", \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 10000.0, \"eos_token_id\": 2}";

/* BASE with key set to value_json (NULL removes the key); returned text is
 * malloc'ed. */
static char *base_with(const char *key, const char *value_json)
{
    cJSON *root = cJSON_Parse(BASE);
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    if (value_json)
        cJSON_AddItemToObject(root, key, cJSON_Parse(value_json));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* Parses BASE with key = value_json, expecting failure with code. Returns
 * the message (static) or NULL when it unexpectedly succeeded. */
static const char *fails_with(const char *key, const char *value_json, int *code)
{
    static vrt_err err;
    vrt_model_config c;
    char *text = base_with(key, value_json);
    vrt_err_clear(&err);
    int rc = vrt_model_config_parse(&c, text, "m/config.json", NULL, NULL, &err);
    free(text);
    *code = rc;
    return rc == 0 ? NULL : err.msg;
}

/* ---- legacy key style: real configs ------------------------------------ */

TEST(hf_config_mistral_7b_v01)
{
    vrt_model_config c;
    vrt_err err;
    ASSERT_OK(vrt_model_config_load(&c, HF_CFG "/mistral_7b_v01", &err), &err);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_MISTRAL);
    ASSERT_EQ_STR(c.arch_name, "MistralForCausalLM");
    ASSERT_EQ_STR(c.model_type, "mistral");
    ASSERT_EQ_INT(c.hidden_size, 4096);
    ASSERT_EQ_INT(c.intermediate_size, 14336);
    ASSERT_EQ_INT(c.num_hidden_layers, 32);
    ASSERT_EQ_INT(c.num_attention_heads, 32);
    ASSERT_EQ_INT(c.num_key_value_heads, 8);
    ASSERT_EQ_INT(c.head_dim, 128); /* absent: D / H */
    ASSERT_EQ_INT(c.rotary_dim, 128);
    ASSERT_EQ_INT(c.vocab_size, 32000);
    ASSERT_EQ_INT(c.max_position_embeddings, 32768);
    ASSERT_NEAR(c.rms_norm_eps, 1e-5, 0);
    ASSERT_NEAR(c.rope_theta, 10000.0, 0);
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_DEFAULT);
    ASSERT_EQ_INT(c.tie_word_embeddings, 0);
    ASSERT_EQ_INT(c.sliding_window, 4096);
    ASSERT_EQ_STR(c.hidden_act, "silu");
    ASSERT_EQ_INT(c.attention_bias, 0);
    ASSERT_EQ_INT(c.mlp_bias, 0);
    ASSERT_EQ_STR(c.torch_dtype, "bfloat16");
    ASSERT_EQ_INT(c.bos_token_id, 1);
    ASSERT_EQ_INT(c.pad_token_id, -1);
    ASSERT_EQ_INT(c.n_eos, 1);
    ASSERT_EQ_INT(c.eos_token_ids[0], 2);
    ASSERT(c.gen.present);
    ASSERT(!c.gen.has_do_sample && !c.gen.has_temperature && !c.gen.has_top_k && !c.gen.has_top_p &&
           !c.gen.has_repetition_penalty && !c.gen.has_max_new_tokens && !c.gen.has_max_length);
}

TEST(hf_config_llama31_8b_instruct)
{
    vrt_model_config c;
    vrt_err err;
    /* A trailing slash on the directory is fine. */
    ASSERT_OK(vrt_model_config_load(&c, HF_CFG "/llama31_8b_instruct/", &err), &err);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_LLAMA);
    ASSERT_EQ_STR(c.arch_name, "LlamaForCausalLM");
    ASSERT_EQ_STR(c.model_type, "llama");
    ASSERT_EQ_INT(c.hidden_size, 4096);
    ASSERT_EQ_INT(c.intermediate_size, 14336);
    ASSERT_EQ_INT(c.num_hidden_layers, 32);
    ASSERT_EQ_INT(c.num_attention_heads, 32);
    ASSERT_EQ_INT(c.num_key_value_heads, 8);
    ASSERT_EQ_INT(c.head_dim, 128);
    ASSERT_EQ_INT(c.rotary_dim, 128);
    ASSERT_EQ_INT(c.vocab_size, 128256);
    ASSERT_EQ_INT(c.max_position_embeddings, 131072);
    ASSERT_NEAR(c.rms_norm_eps, 1e-5, 0);
    ASSERT_NEAR(c.rope_theta, 500000.0, 0);
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_LLAMA3);
    ASSERT_EQ_STR(vrt_rope_type_name(c.rope_scaling.type), "llama3");
    ASSERT_NEAR(c.rope_scaling.factor, 8.0, 0);
    ASSERT_NEAR(c.rope_scaling.low_freq_factor, 1.0, 0);
    ASSERT_NEAR(c.rope_scaling.high_freq_factor, 4.0, 0);
    ASSERT_EQ_INT(c.rope_scaling.original_max_position_embeddings, 8192);
    ASSERT_EQ_INT(c.tie_word_embeddings, 0);
    ASSERT_EQ_INT(c.sliding_window, 0); /* Llama has none */
    ASSERT_EQ_STR(c.hidden_act, "silu");
    ASSERT_EQ_INT(c.attention_bias, 0);
    ASSERT_EQ_INT(c.mlp_bias, 0);
    ASSERT_EQ_STR(c.torch_dtype, "bfloat16");
    ASSERT_EQ_INT(c.bos_token_id, 128000);
    ASSERT_EQ_INT(c.pad_token_id, -1);
    /* Lists in both files; the union has no duplicates. */
    ASSERT_EQ_INT(c.n_eos, 3);
    ASSERT(has_eos(&c, 128001) && has_eos(&c, 128008) && has_eos(&c, 128009));
    ASSERT(c.gen.present);
    ASSERT(c.gen.has_do_sample && c.gen.do_sample);
    ASSERT(c.gen.has_temperature);
    ASSERT_NEAR(c.gen.temperature, 0.6, 0);
    ASSERT(c.gen.has_top_p);
    ASSERT_NEAR(c.gen.top_p, 0.9, 0);
    ASSERT(!c.gen.has_top_k && !c.gen.has_repetition_penalty && !c.gen.has_max_new_tokens &&
           !c.gen.has_max_length);
}

TEST(hf_config_tinyllama_no_generation_config)
{
    vrt_model_config c;
    vrt_err err;
    ASSERT_OK(vrt_model_config_load(&c, HF_CFG "/tinyllama", &err), &err);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_LLAMA);
    ASSERT_EQ_INT(c.hidden_size, 2048);
    ASSERT_EQ_INT(c.intermediate_size, 5632);
    ASSERT_EQ_INT(c.num_hidden_layers, 22);
    ASSERT_EQ_INT(c.num_attention_heads, 32);
    ASSERT_EQ_INT(c.num_key_value_heads, 4);
    ASSERT_EQ_INT(c.head_dim, 64);
    ASSERT_EQ_INT(c.rotary_dim, 64);
    ASSERT_EQ_INT(c.vocab_size, 32000);
    ASSERT_EQ_INT(c.max_position_embeddings, 2048);
    ASSERT_NEAR(c.rms_norm_eps, 1e-5, 0);
    /* No rope_theta key: the LlamaConfig default; rope_scaling null. */
    ASSERT_NEAR(c.rope_theta, 10000.0, 0);
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_DEFAULT);
    ASSERT_NEAR(c.rope_scaling.factor, 1.0, 0);
    ASSERT_EQ_INT(c.tie_word_embeddings, 0);
    ASSERT_EQ_INT(c.sliding_window, 0);
    ASSERT_EQ_STR(c.hidden_act, "silu");
    ASSERT_EQ_STR(c.torch_dtype, "bfloat16");
    ASSERT_EQ_INT(c.bos_token_id, 1);
    ASSERT_EQ_INT(c.pad_token_id, -1);
    ASSERT_EQ_INT(c.n_eos, 1);
    ASSERT_EQ_INT(c.eos_token_ids[0], 2);
    ASSERT(!c.gen.present);
}

/* ---- transformers v5 key style ----------------------------------------- */

/* Every tests/fixtures/hf model against the resolved summary its generator
 * wrote to expected.json ("config"). */
TEST(hf_config_v5_fixtures_match_expected)
{
    static const char *const models[] = {"llama-gqa", "llama-tied-llama3", "llama-linear-f16",
                                         "mistral-sw", "llama-bf16"};
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        char dir[256], path[300];
        snprintf(dir, sizeof dir, HF_V5 "/%s", models[m]);
        snprintf(path, sizeof path, "%s/expected.json", dir);
        char *text = vrt_test_read_file(path, NULL);
        ASSERT(text != NULL);
        cJSON *root = cJSON_Parse(text);
        free(text);
        const cJSON *e = cJSON_GetObjectItem(root, "config");
        ASSERT(e != NULL);
        vrt_model_config c;
        vrt_err err;
        int rc = vrt_model_config_load(&c, dir, &err);
        if (rc != 0) {
            cJSON_Delete(root);
            TFAIL("%s: %s", dir, err.msg);
        }
#define NUM(k) cJSON_GetObjectItem(e, k)->valuedouble
        int ok =
            strcmp(c.arch_name, cJSON_GetObjectItem(e, "architecture")->valuestring) == 0 &&
            strcmp(c.model_type, cJSON_GetObjectItem(e, "model_type")->valuestring) == 0 &&
            c.hidden_size == NUM("hidden_size") &&
            c.intermediate_size == NUM("intermediate_size") &&
            c.num_hidden_layers == NUM("num_hidden_layers") &&
            c.num_attention_heads == NUM("num_attention_heads") &&
            c.num_key_value_heads == NUM("num_key_value_heads") && c.head_dim == NUM("head_dim") &&
            c.vocab_size == NUM("vocab_size") &&
            c.max_position_embeddings == NUM("max_position_embeddings") &&
            c.rms_norm_eps == NUM("rms_norm_eps") && c.rope_theta == NUM("rope_theta") &&
            c.bos_token_id == NUM("bos_token_id") && c.n_eos == 1 &&
            c.eos_token_ids[0] == NUM("eos_token_id") && c.pad_token_id == -1 &&
            c.tie_word_embeddings == cJSON_IsTrue(cJSON_GetObjectItem(e, "tie_word_embeddings"));
        const cJSON *sw = cJSON_GetObjectItem(e, "sliding_window");
        ok = ok && c.sliding_window == (cJSON_IsNull(sw) ? 0 : (int64_t)sw->valuedouble);
        const cJSON *rs = cJSON_GetObjectItem(e, "rope_scaling");
        if (cJSON_IsNull(rs)) {
            ok = ok && c.rope_scaling.type == VRT_ROPE_DEFAULT;
        } else {
            const char *t = cJSON_GetObjectItem(rs, "rope_type")->valuestring;
            ok = ok && strcmp(vrt_rope_type_name(c.rope_scaling.type), t) == 0 &&
                 c.rope_scaling.factor == cJSON_GetObjectItem(rs, "factor")->valuedouble;
            if (strcmp(t, "llama3") == 0)
                ok = ok &&
                     c.rope_scaling.low_freq_factor ==
                         cJSON_GetObjectItem(rs, "low_freq_factor")->valuedouble &&
                     c.rope_scaling.high_freq_factor ==
                         cJSON_GetObjectItem(rs, "high_freq_factor")->valuedouble &&
                     c.rope_scaling.original_max_position_embeddings ==
                         cJSON_GetObjectItem(rs, "original_max_position_"
                                                 "embeddings")
                             ->valuedouble;
        }
#undef NUM
        /* "dtype" (v5) fills torch_dtype: storage F32/F16/BF16. */
        const char *sd = cJSON_GetObjectItem(e, "storage_dtype")->valuestring;
        const char *want = strcmp(sd, "F32") == 0   ? "float32"
                           : strcmp(sd, "F16") == 0 ? "float16"
                                                    : "bfloat16";
        ok = ok && strcmp(c.torch_dtype, want) == 0 && c.gen.present && !c.gen.has_do_sample &&
             !c.gen.has_temperature;
        cJSON_Delete(root);
        if (!ok)
            TFAIL("%s: parsed config differs from expected.json", dir);
    }
}

/* The same model written in both key styles parses to the same values. */
TEST(hf_config_v5_and_legacy_rope_keys_agree)
{
    static const char *const v5 =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 96,"
        " \"intermediate_size\": 200, \"num_hidden_layers\": 3,"
        " \"num_attention_heads\": 6, \"vocab_size\": 512, \"dtype\": "
        "\"float32\", \"rope_parameters\": {\"factor\": 8.0,"
        " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
        " \"original_max_position_embeddings\": 64, \"rope_theta\": 500000.0,"
        " \"rope_type\": \"llama3\"}}";
    static const char *const legacy =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 96,"
        " \"intermediate_size\": 200, \"num_hidden_layers\": 3,"
        " \"num_attention_heads\": 6, \"vocab_size\": 512, \"torch_dtype\": "
        "\"float32\", \"rope_theta\": 500000.0, \"rope_scaling\": {"
        "\"factor\": 8.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
        " \"original_max_position_embeddings\": 64, \"type\": \"llama3\"}}";
    vrt_model_config a, b;
    vrt_err err;
    ASSERT_OK(vrt_model_config_parse(&a, v5, "v5", NULL, NULL, &err), &err);
    ASSERT_OK(vrt_model_config_parse(&b, legacy, "legacy", NULL, NULL, &err), &err);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
    ASSERT_EQ_INT(a.rope_scaling.type, VRT_ROPE_LLAMA3);
    ASSERT_NEAR(a.rope_theta, 500000.0, 0);
    ASSERT_EQ_STR(a.torch_dtype, "float32");

    /* rope_parameters of type default carries only theta; a legacy
     * rope_scaling next to it still applies (docs/formats.md §2.0 rule). */
    static const char *const mixed =
        "{\"model_type\": \"llama\", \"hidden_size\": 64,"
        " \"intermediate_size\": 128, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 4, \"vocab_size\": 100,"
        " \"rope_theta\": 1.0e6,"
        " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\":"
        " 20000.0}, \"rope_scaling\": {\"type\": \"linear\", \"factor\": "
        "2.0}}";
    vrt_model_config c;
    ASSERT_OK(vrt_model_config_parse(&c, mixed, "mixed", NULL, NULL, &err), &err);
    ASSERT_NEAR(c.rope_theta, 20000.0, 0); /* rope_parameters wins */
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_LINEAR);
    ASSERT_NEAR(c.rope_scaling.factor, 2.0, 0);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_LLAMA); /* from model_type alone */

    /* A non-default rope_parameters wins over rope_scaling. */
    static const char *const both =
        "{\"model_type\": \"llama\", \"hidden_size\": 64,"
        " \"intermediate_size\": 128, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 4, \"vocab_size\": 100,"
        " \"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 3.0,"
        " \"rope_theta\": 20000.0}, \"rope_scaling\": {\"type\": \"linear\","
        " \"factor\": 2.0}}";
    ASSERT_OK(vrt_model_config_parse(&c, both, "both", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_DYNAMIC);
    ASSERT_NEAR(c.rope_scaling.factor, 3.0, 0);
}

/* ---- defaults and derived values --------------------------------------- */

TEST(hf_config_defaults_when_keys_absent)
{
    /* Only the required keys. */
    static const char *const llama =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 96,"
        " \"intermediate_size\": 200, \"num_hidden_layers\": 3,"
        " \"num_attention_heads\": 6, \"vocab_size\": 512}";
    vrt_model_config c;
    vrt_err err;
    ASSERT_OK(vrt_model_config_parse(&c, llama, "l", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.num_key_value_heads, 6); /* LlamaConfig: H */
    ASSERT_EQ_INT(c.head_dim, 16);           /* D / H */
    ASSERT_EQ_INT(c.rotary_dim, 16);
    ASSERT_EQ_INT(c.max_position_embeddings, 2048);
    ASSERT_NEAR(c.rms_norm_eps, 1e-6, 0);
    ASSERT_NEAR(c.rope_theta, 10000.0, 0);
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_DEFAULT);
    ASSERT_EQ_INT(c.tie_word_embeddings, 0);
    ASSERT_EQ_STR(c.hidden_act, "silu");
    ASSERT_EQ_STR(c.torch_dtype, "");
    ASSERT_EQ_INT(c.bos_token_id, 1);
    ASSERT_EQ_INT(c.pad_token_id, -1);
    ASSERT_EQ_INT(c.n_eos, 1);
    ASSERT_EQ_INT(c.eos_token_ids[0], 2);
    ASSERT_EQ_INT(c.sliding_window, 0);

    /* MistralConfig: num_key_value_heads 8 and sliding_window 4096 when the
     * keys are missing, H and none when they are null. */
    static const char *const mistral =
        "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 512,"
        " \"intermediate_size\": 1024, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 16, \"vocab_size\": 100}";
    ASSERT_OK(vrt_model_config_parse(&c, mistral, "m", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.num_key_value_heads, 8);
    ASSERT_EQ_INT(c.sliding_window, 4096);
    ASSERT_EQ_INT(c.max_position_embeddings, 131072);
    ASSERT_EQ_INT(c.head_dim, 32);
    static const char *const mistral_null =
        "{\"model_type\": \"mistral\", \"hidden_size\": 512,"
        " \"intermediate_size\": 1024, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 16, \"vocab_size\": 100,"
        " \"num_key_value_heads\": null, \"sliding_window\": null,"
        " \"head_dim\": null, \"bos_token_id\": null, \"eos_token_id\": null,"
        " \"attention_bias\": true}";
    ASSERT_OK(vrt_model_config_parse(&c, mistral_null, "m", NULL, NULL, &err), &err);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_MISTRAL);
    ASSERT_EQ_INT(c.num_key_value_heads, 16);
    ASSERT_EQ_INT(c.sliding_window, 0);
    ASSERT_EQ_INT(c.head_dim, 32);
    ASSERT_EQ_INT(c.bos_token_id, -1);
    ASSERT_EQ_INT(c.n_eos, 0);
    ASSERT_EQ_INT(c.attention_bias, 0); /* Mistral ignores the flag */
}

TEST(hf_config_explicit_head_dim_and_biases)
{
    /* Mistral-Nemo: head_dim 128 with D 5120, H 32 (D / H would be 160). */
    char *text = base_with("head_dim", "128");
    vrt_model_config c;
    vrt_err err;
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON_ReplaceItemInObject(root, "hidden_size", cJSON_CreateNumber(5120));
    cJSON_ReplaceItemInObject(root, "num_attention_heads", cJSON_CreateNumber(32));
    cJSON_AddItemToObject(root, "attention_bias", cJSON_CreateTrue());
    cJSON_AddItemToObject(root, "mlp_bias", cJSON_CreateTrue());
    cJSON_AddItemToObject(root, "tie_word_embeddings", cJSON_CreateTrue());
    cJSON_AddItemToObject(root, "pad_token_id", cJSON_CreateNumber(0));
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    int rc = vrt_model_config_parse(&c, text, "n", NULL, NULL, &err);
    free(text);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(c.head_dim, 128);
    ASSERT_EQ_INT(c.rotary_dim, 128);
    ASSERT_EQ_INT(c.attention_bias, 1); /* Llama honours the flags */
    ASSERT_EQ_INT(c.mlp_bias, 1);
    ASSERT_EQ_INT(c.tie_word_embeddings, 1);
    ASSERT_EQ_INT(c.pad_token_id, 0);
}

TEST(hf_config_eos_int_list_and_union)
{
    vrt_model_config c;
    vrt_err err;
    /* config int + generation_config list: union, config ids first. */
    ASSERT_OK(vrt_model_config_parse(&c, BASE, "c", "{\"eos_token_id\": [7, 2, 9, 7]}", "g", &err),
              &err);
    ASSERT_EQ_INT(c.n_eos, 3);
    ASSERT_EQ_INT(c.eos_token_ids[0], 2);
    ASSERT_EQ_INT(c.eos_token_ids[1], 7);
    ASSERT_EQ_INT(c.eos_token_ids[2], 9);

    /* config list + generation_config int. */
    char *text = base_with("eos_token_id", "[128001, 128009]");
    int rc = vrt_model_config_parse(&c, text, "c",
                                    "{\"eos_token_id\": 128008,"
                                    " \"bos_token_id\": 5,"
                                    " \"pad_token_id\": 6}",
                                    "g", &err);
    free(text);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(c.n_eos, 3);
    ASSERT(has_eos(&c, 128001) && has_eos(&c, 128008) && has_eos(&c, 128009));
    ASSERT_EQ_INT(c.bos_token_id, 5); /* generation_config overrides */
    ASSERT_EQ_INT(c.pad_token_id, 6);

    /* Only generation_config has a list (config eos null). */
    text = base_with("eos_token_id", "null");
    rc = vrt_model_config_parse(&c, text, "c", "{\"eos_token_id\": [3, 4]}", "g", &err);
    free(text);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(c.n_eos, 2);
    ASSERT(has_eos(&c, 3) && has_eos(&c, 4));

    /* config.json without the key: the class default 2 is not a stop
     * token once generation_config.json names the ids (a Llama-3 vocab has
     * an ordinary token 2). Without generation_config it is. */
    text = base_with("eos_token_id", NULL);
    rc = vrt_model_config_parse(&c, text, "c", "{\"eos_token_id\": [128001, 128009]}", "g", &err);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(c.n_eos, 2);
    ASSERT(has_eos(&c, 128001) && has_eos(&c, 128009) && !has_eos(&c, 2));
    rc = vrt_model_config_parse(&c, text, "c", "{\"eos_token_id\": null}", "g", &err);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(c.n_eos, 1);
    ASSERT_EQ_INT(c.eos_token_ids[0], 2);
    free(text);

    /* More distinct ids than VRT_MAX_EOS: an error naming file and key. */
    rc = vrt_model_config_parse(&c, BASE, "c", "{\"eos_token_id\": [10,11,12,13,14,15,16,17]}", "g",
                                &err);
    ASSERT_EQ_INT(rc, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(err.msg, "g: eos_token_id");
    /* Not ids. */
    rc = vrt_model_config_parse(&c, BASE, "c", "{\"eos_token_id\": [1, -2]}", "g", &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "g: eos_token_id");
    rc = vrt_model_config_parse(&c, BASE, "c", "{\"eos_token_id\": \"</s>\"}", "g", &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "g: eos_token_id");
}

TEST(hf_config_generation_config_values)
{
    vrt_model_config c;
    vrt_err err;
    ASSERT_OK(vrt_model_config_parse(&c, BASE, "c",
                                     "{\"do_sample\": false, \"temperature\": 0.7, \"top_k\": 40,"
                                     " \"top_p\": 0.95, \"repetition_penalty\": 1.1,"
                                     " \"max_new_tokens\": 256, \"max_length\": 4096}",
                                     "g", &err),
              &err);
    ASSERT(c.gen.present);
    ASSERT(c.gen.has_do_sample && !c.gen.do_sample);
    ASSERT_NEAR(c.gen.temperature, 0.7, 0);
    ASSERT(c.gen.has_top_k);
    ASSERT_EQ_INT(c.gen.top_k, 40);
    ASSERT_NEAR(c.gen.top_p, 0.95, 0);
    ASSERT_NEAR(c.gen.repetition_penalty, 1.1, 0);
    ASSERT_EQ_INT(c.gen.max_new_tokens, 256);
    ASSERT_EQ_INT(c.gen.max_length, 4096);
    int rc =
        vrt_model_config_parse(&c, BASE, "c", "{\"top_p\": 1.5}", "m/generation_config.json", &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/generation_config.json");
    ASSERT_CONTAINS(err.msg, "top_p");
    rc = vrt_model_config_parse(&c, BASE, "c", "{\"do_sample\": 1}", "m/generation_config.json",
                                &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/generation_config.json: do_sample");
    rc =
        vrt_model_config_parse(&c, BASE, "c", "{\"top_k\": 4.5}", "m/generation_config.json", &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/generation_config.json: top_k");
    rc = vrt_model_config_parse(&c, BASE, "c", "{\"top_k\": 4,", "m/generation_config.json", &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/generation_config.json: not valid JSON");
}

/* ---- rope tables against transformers ---------------------------------- */

/* Tolerance: inv_freq is float32 in both. transformers computes
 * base ** exponent with torch's vectorised float pow (SLEEF, documented
 * 1.0 ulp), we use glibc powf (correctly rounded in practice), so a value
 * may differ by 1 ulp before the reciprocal; the llama3 smoothing then
 * combines such values in a few float operations that follow torch's
 * order (so they round the same way). 2 ulp of the expected value
 * (2 * FLT_EPSILON relative) is "equal to float32 rounding" with one ulp of
 * room for the pow difference; the largest error seen on these fixtures is
 * 0.72 (printed by the test). A wrong formula (a missed factor, the wrong
 * band) is off by far more — see hf_config_rope_detects_wrong_formula. */
#define ROPE_ULPS 2.0

static double ulp_err(float got, double want)
{
    return fabs((double)got - want) / (fabs(want) * FLT_EPSILON);
}

TEST(hf_config_rope_inv_freq_matches_transformers)
{
    char *text = vrt_test_read_file(ROPE_CASES, NULL);
    ASSERT(text != NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    ASSERT(root != NULL);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *k;
    int n_cases = 0, seen[4] = {0};
    double worst = 0;
    cJSON_ArrayForEach(k, cases)
    {
        const char *name = cJSON_GetObjectItem(k, "name")->valuestring;
        char *cfg = cJSON_PrintUnformatted(cJSON_GetObjectItem(k, "config"));
        vrt_model_config c;
        vrt_err err;
        int rc = vrt_model_config_parse(&c, cfg, name, NULL, NULL, &err);
        free(cfg);
        if (rc != 0) {
            cJSON_Delete(root);
            TFAIL("%s: %s", name, err.msg);
        }
        const char *type = cJSON_GetObjectItem(k, "rope_type")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(k, "inv_freq");
        int n = cJSON_GetArraySize(want);
        int seq = (int)cJSON_GetObjectItem(k, "seq_len")->valuedouble;
        float inv[512], scale = 0;
        if (strcmp(vrt_rope_type_name(c.rope_scaling.type), type) != 0 || c.rotary_dim / 2 != n ||
            n > 512) {
            cJSON_Delete(root);
            TFAIL("%s: type %s rotary_dim %d, expected %s with %d values", name,
                  vrt_rope_type_name(c.rope_scaling.type), c.rotary_dim, type, n);
        }
        seen[c.rope_scaling.type] = 1;
        rc = vrt_rope_inv_freq(&c, seq, inv, &scale, &err);
        if (rc != 0) {
            cJSON_Delete(root);
            TFAIL("%s: %s", name, err.msg);
        }
        if (scale != (float)cJSON_GetObjectItem(k, "attention_scaling")->valuedouble) {
            cJSON_Delete(root);
            TFAIL("%s: attention_scaling %g", name, scale);
        }
        for (int i = 0; i < n; i++) {
            double w = cJSON_GetArrayItem(want, i)->valuedouble;
            double e = ulp_err(inv[i], w);
            worst = e > worst ? e : worst;
            if (e > ROPE_ULPS) {
                cJSON_Delete(root);
                TFAIL("%s: inv_freq[%d] = %.9g, transformers %.9g (%.2f ulp)", name, i, inv[i], w,
                      e);
            }
        }
        n_cases++;
    }
    cJSON_Delete(root);
    ASSERT_EQ_INT(n_cases, 13);
    ASSERT(seen[VRT_ROPE_DEFAULT] && seen[VRT_ROPE_LINEAR] && seen[VRT_ROPE_DYNAMIC] &&
           seen[VRT_ROPE_LLAMA3]);
    fprintf(stderr, "  rope: %d cases, largest error %.2f ulp\n", n_cases, worst);
}

/* The tolerance above is tight enough to catch plausible mistakes. */
TEST(hf_config_rope_detects_wrong_formula)
{
    vrt_model_config c;
    vrt_err err;
    ASSERT_OK(vrt_model_config_load(&c, HF_CFG "/llama31_8b_instruct", &err), &err);
    float ref[64], inv[64];
    ASSERT_OK(vrt_rope_inv_freq(&c, 0, ref, NULL, &err), &err);
    /* Kept (high frequency), smoothed and divided bands all occur. */
    vrt_model_config d = c;
    d.rope_scaling.type = VRT_ROPE_DEFAULT;
    ASSERT_OK(vrt_rope_inv_freq(&d, 0, inv, NULL, &err), &err);
    int kept = 0, divided = 0, smoothed = 0;
    for (int i = 0; i < 64; i++) {
        if (ref[i] == inv[i])
            kept++;
        else if (ulp_err(ref[i], inv[i] / 8.0f) <= ROPE_ULPS)
            divided++;
        else
            smoothed++;
    }
    ASSERT(kept > 0 && divided > 0 && smoothed > 0);
    /* Smoothed values lie strictly between the divided and the kept one and
     * are far more than the tolerance away from both. */
    for (int i = 0; i < 64; i++)
        if (ref[i] != inv[i] && ulp_err(ref[i], inv[i] / 8.0f) > ROPE_ULPS)
            ASSERT(ref[i] > inv[i] / 8.0f && ref[i] < inv[i] &&
                   ulp_err(ref[i], inv[i] / 8.0f) > 100 * ROPE_ULPS &&
                   ulp_err(ref[i], inv[i]) > 100 * ROPE_ULPS);
    /* dynamic at or below max_position_embeddings equals default; above it
     * the base grows so every frequency but the first gets smaller. */
    d.rope_scaling.type = VRT_ROPE_DYNAMIC;
    d.rope_scaling.factor = 2.0;
    ASSERT_OK(vrt_rope_inv_freq(&d, (int)d.max_position_embeddings, ref, NULL, &err), &err);
    for (int i = 0; i < 64; i++)
        ASSERT(ref[i] == inv[i]);
    ASSERT_OK(vrt_rope_inv_freq(&d, (int)d.max_position_embeddings + 1000, ref, NULL, &err), &err);
    ASSERT(ref[0] == inv[0]);
    for (int i = 1; i < 64; i++)
        ASSERT(ref[i] < inv[i]);
}

/* ---- errors ------------------------------------------------------------ */

TEST(hf_config_unsupported_architecture)
{
    int code;
    const char *m = fails_with("architectures", "[\"PhiForCausalLM\"]", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(m, "m/config.json");
    ASSERT_CONTAINS(m, "architectures");
    ASSERT_CONTAINS(m, "PhiForCausalLM");
    ASSERT_CONTAINS(m, "LlamaForCausalLM, MistralForCausalLM");
    /* Without architectures the model_type decides. */
    char *text = base_with("architectures", NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON_ReplaceItemInObject(root, "model_type", cJSON_CreateString("gemma"));
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    vrt_model_config c;
    vrt_err err;
    int rc = vrt_model_config_parse(&c, text, "m/config.json", NULL, NULL, &err);
    free(text);
    ASSERT_EQ_INT(rc, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(err.msg, "m/config.json: model_type 'gemma'");
    ASSERT_CONTAINS(err.msg, "LlamaForCausalLM, MistralForCausalLM");
    /* Neither key. */
    rc = vrt_model_config_parse(&c, "{\"hidden_size\": 64}", "m/config.json", NULL, NULL, &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/config.json");
    ASSERT_CONTAINS(err.msg, "architectures");
    ASSERT_CONTAINS(err.msg, "model_type");
    m = fails_with("architectures", "[1]", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: architectures");
}

TEST(hf_config_unknown_rope_type)
{
    int code;
    const char *m = fails_with("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(m, "m/config.json: rope_scaling");
    ASSERT_CONTAINS(m, "'yarn'");
    ASSERT_CONTAINS(m, "default, linear, dynamic, llama3");
    m = fails_with("rope_parameters", "{\"rope_type\": \"longrope\", \"rope_theta\": 1e4}", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(m, "m/config.json: rope_parameters");
    ASSERT_CONTAINS(m, "'longrope'");
    m = fails_with("rope_scaling", "{\"factor\": 4.0}", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_scaling has no rope_type");
    m = fails_with("rope_scaling", "{\"type\": \"linear\"}", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_scaling");
    ASSERT_CONTAINS(m, "factor");
    m = fails_with("rope_scaling",
                   "{\"rope_type\": \"llama3\", \"factor\": 8.0,"
                   " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}",
                   &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_scaling");
    ASSERT_CONTAINS(m, "original_max_position_embeddings");
    m = fails_with("rope_scaling", "\"linear\"", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_scaling must be an object");
    /* Wrong types inside the objects name the object and the key. */
    m = fails_with("rope_scaling", "{\"type\": \"linear\", \"factor\": \"4\"}", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_ECONFIG);
    ASSERT_CONTAINS(m, "m/config.json: rope_scaling: factor must be a number");
    m = fails_with("rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": \"1e4\"}",
                   &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_parameters: rope_theta must be a number");
    m = fails_with("rope_parameters",
                   "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
                   " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192.5}",
                   &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_parameters: original_max_position_embeddings must be");
    m = fails_with("rope_theta", "-5", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rope_theta");
}

TEST(hf_config_unsupported_hidden_act)
{
    int code;
    const char *m = fails_with("hidden_act", "\"gelu_new\"", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(m, "m/config.json: hidden_act 'gelu_new'");
    ASSERT_CONTAINS(m, "silu");
    m = fails_with("partial_rotary_factor", "0.5", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(m, "m/config.json: partial_rotary_factor");
    /* transformers v5 may write it inside rope_parameters; ignoring it
     * there would rotate all head_dim dims instead of a part. */
    m = fails_with("rope_parameters",
                   "{\"rope_type\": \"default\", \"rope_theta\": 1e4,"
                   " \"partial_rotary_factor\": 0.5}",
                   &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(m, "m/config.json: rope_parameters.partial_rotary_factor 0.5");
    vrt_model_config c;
    vrt_err err;
    char *text = base_with("rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": "
                                              "1e4, \"partial_rotary_factor\": 1.0}");
    int rc = vrt_model_config_parse(&c, text, "m", NULL, NULL, &err);
    free(text);
    ASSERT_OK(rc, &err);
}

TEST(hf_config_missing_required_key)
{
    static const char *const keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                       "num_attention_heads", "vocab_size"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int code;
        char want[128];
        const char *m = fails_with(keys[i], NULL, &code);
        ASSERT(m != NULL);
        ASSERT_EQ_INT(code, VRT_ECONFIG);
        snprintf(want, sizeof want, "m/config.json: required key %s", keys[i]);
        ASSERT_CONTAINS(m, want);
        /* Wrong type and non-positive values name the key too. */
        m = fails_with(keys[i], "\"64\"", &code);
        ASSERT(m != NULL);
        snprintf(want, sizeof want, "m/config.json: %s must be", keys[i]);
        ASSERT_CONTAINS(m, want);
        m = fails_with(keys[i], "0", &code);
        ASSERT(m != NULL);
        ASSERT_CONTAINS(m, want);
    }
}

TEST(hf_config_bad_json)
{
    vrt_model_config c;
    vrt_err err;
    int rc = vrt_model_config_parse(&c, "{\"hidden_size\": 64,", "m/config.json", NULL, NULL, &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/config.json: not valid JSON");
    rc = vrt_model_config_parse(&c, "[1, 2]", "m/config.json", NULL, NULL, &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/config.json: not a JSON object");
    /* Text after the object (two objects pasted together) is not JSON. */
    size_t n = strlen(BASE);
    char *two = malloc(2 * n + 2);
    snprintf(two, 2 * n + 2, "%s\n%s", BASE, BASE);
    rc = vrt_model_config_parse(&c, two, "m/config.json", NULL, NULL, &err);
    free(two);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "m/config.json: not valid JSON");
    /* Trailing whitespace is fine. */
    char *ws = malloc(n + 4);
    snprintf(ws, n + 4, "%s \n", BASE);
    rc = vrt_model_config_parse(&c, ws, "m/config.json", NULL, NULL, &err);
    free(ws);
    ASSERT_OK(rc, &err);
    /* Wrongly typed optional keys. */
    int code;
    const char *m = fails_with("rms_norm_eps", "\"1e-5\"", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: rms_norm_eps must be a number");
    m = fails_with("tie_word_embeddings", "1", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: tie_word_embeddings");
    m = fails_with("max_position_embeddings", "2048.5", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: max_position_embeddings must be an "
                       "integer");
}

TEST(hf_config_heads_not_dividing)
{
    int code;
    /* H = 8 is not a multiple of Hkv = 3. */
    const char *m = fails_with("num_key_value_heads", "3", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_ECONFIG);
    ASSERT_CONTAINS(m, "m/config.json");
    ASSERT_CONTAINS(m, "num_attention_heads (8)");
    ASSERT_CONTAINS(m, "num_key_value_heads (3)");
    m = fails_with("num_key_value_heads", "16", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "num_key_value_heads (16)");
    /* D = 256 is not divisible by H = 6 and head_dim is absent. */
    m = fails_with("num_attention_heads", "6", &code);
    ASSERT(m != NULL);
    ASSERT_EQ_INT(code, VRT_ECONFIG);
    ASSERT_CONTAINS(m, "m/config.json: hidden_size (256)");
    ASSERT_CONTAINS(m, "num_attention_heads (6)");
    ASSERT_CONTAINS(m, "head_dim");
    /* An odd head_dim cannot be rotated in pairs. */
    m = fails_with("head_dim", "15", &code);
    ASSERT(m != NULL);
    ASSERT_CONTAINS(m, "m/config.json: head_dim");
}

TEST(hf_config_file_missing)
{
    vrt_model_config c;
    vrt_err err;
    int rc = vrt_model_config_load(&c, "tests/fixtures/hf_config/nope", &err);
    ASSERT_EQ_INT(rc, VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "tests/fixtures/hf_config/nope/config.json");
    ASSERT_CONTAINS(err.msg, "not found");

    /* A broken generation_config.json is named (and config.json is fine). */
    char dir[] = "/tmp/vrt_cfg_XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char p[128], g[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(g, sizeof g, "%s/generation_config.json", dir);
    FILE *f = fopen(p, "w");
    fputs(BASE, f);
    fclose(f);
    f = fopen(g, "w");
    fputs("{\"eos_token_id\": ", f);
    fclose(f);
    rc = vrt_model_config_load(&c, dir, &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, g);
    /* A config.json that is not valid JSON is named with its path. */
    f = fopen(p, "w");
    fputs("{hidden_size: 64}", f);
    fclose(f);
    unlink(g);
    rc = vrt_model_config_load(&c, dir, &err);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, p);
    ASSERT_CONTAINS(err.msg, "not valid JSON");
    unlink(p);
    rmdir(dir);
}
