/* test_plan.c — the GPU memory plan on real model configs (the guide's
 * models: Mistral-7B on one 16 GB V100 does not fit in fp16, fits in 4-bit
 * or on two GPUs or on a 32 GB card). */
#include "test.h"

#include "core/err.h"
#include "engine/plan.h"

#include <stdlib.h>

#define GIB ((int64_t)1 << 30)

static vrt_plan_input mistral_input(vrt_model_config *c, int64_t gb, double bytes_per_param,
                                    int tensor)
{
    vrt_err err = {0};
    if (vrt_model_config_load(c, "tests/fixtures/hf_config/mistral_7b_v01", &err) != 0)
        fprintf(stderr, "%s\n", err.msg);
    vrt_plan_input in = {.model = c,
                         .device_bytes = gb * GIB,
                         .memory_fraction = 0.85,
                         .weight_bytes_per_param = bytes_per_param,
                         .tensor = tensor,
                         .block_size = 16,
                         .max_total_tokens = 4096,
                         .max_batch_prefill_tokens = 4096,
                         .max_concurrent_requests = 8};
    return in;
}

TEST(plan_mistral_7b_on_v100s)
{
    vrt_model_config c;
    vrt_plan p;
    vrt_err err = {0};
    /* 7.24 B parameters (the published count of Mistral-7B-v0.1). */
    vrt_plan_input in = mistral_input(&c, 16, 2.0, 1);
    ASSERT_EQ_INT(vrt_plan_compute(&in, &p, &err), VRT_EDEVICEOOM);
    ASSERT_NEAR((double)p.params / 1e9, 7.24, 0.01);
    ASSERT_CONTAINS(err.msg, "model.quantize");
    /* Only options v100rt runs: no tensor parallelism (not implemented yet). */
    ASSERT(strstr(err.msg, "parallel.tensor") == NULL);
    ASSERT_CONTAINS(err.msg, "tensor parallelism over several GPUs is not implemented yet");
    ASSERT_CONTAINS(err.msg, "batching.max_total_tokens = 4096");
    ASSERT(strstr(err.msg, "<= 0") == NULL);
    /* One KV block of 16 tokens: 2 (K, V) x 32 layers x 16 x 8 heads x 128 x 2 bytes. */
    ASSERT_EQ_INT(p.block_bytes, 2 * 32 * 16 * 8 * 128 * 2);
    /* 4-bit weights (group 128: ~4.5 bits per parameter) fit on 16 GB. */
    in = mistral_input(&c, 16, 0.5625, 1);
    ASSERT_OK(vrt_plan_compute(&in, &p, &err), &err);
    ASSERT(p.full_length_seqs >= 8);
    /* fp16 on two 16 GB cards: each holds half the weights and half the KV heads. */
    in = mistral_input(&c, 16, 2.0, 2);
    ASSERT_OK(vrt_plan_compute(&in, &p, &err), &err);
    ASSERT_EQ_INT(p.block_bytes, 2 * 32 * 16 * 4 * 128 * 2);
    ASSERT(p.weights > 6 * GIB && p.weights < 7 * GIB); /* 7.24e9 bytes / 2 */
    /* fp16 on a 32 GB card. */
    in = mistral_input(&c, 32, 2.0, 1);
    ASSERT_OK(vrt_plan_compute(&in, &p, &err), &err);
    ASSERT(p.num_blocks * p.block_bytes <= p.kv_bytes);
    ASSERT_EQ_INT(p.kv_tokens, p.num_blocks * 16);
    ASSERT(p.budget == (int64_t)(32.0 * GIB * 0.85));
    char *s = vrt_plan_format(&in, &p);
    ASSERT_CONTAINS(s, "MistralForCausalLM");
    ASSERT_CONTAINS(s, "fits at once");
    free(s);
    /* Bad input is an error, not a crash. */
    in.tensor = 0;
    ASSERT_EQ_INT(vrt_plan_compute(&in, &p, &err), VRT_EINVAL);
}

TEST(plan_weight_bytes_follow_dtype_and_quantize)
{
    ASSERT_NEAR(vrt_plan_weight_bytes("float16", NULL), 2.0, 0);
    ASSERT_NEAR(vrt_plan_weight_bytes("float32", "none"), 4.0, 0);
    ASSERT_NEAR(vrt_plan_weight_bytes("float16", "gptq"), 0.5625, 0);
    ASSERT_NEAR(vrt_plan_weight_bytes("auto", "awq"), 0.5625, 0);
}
