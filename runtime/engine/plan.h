/* plan.h — the GPU memory plan: how much of a device goes to weights,
 * activations, CUDA graph pools and the paged KV cache, and whether one
 * sequence of max_total_tokens fits at all.
 *
 *   budget    = device memory × memory_fraction
 *   KV cache  = budget − weights − activation workspace − graph pools
 *   blocks    = KV cache / bytes of one block (all layers, K and V, fp16)
 *
 * Pure arithmetic on the model's config.json and the limits: no CUDA call,
 * so the runtime's start-up check against the device's free memory
 * (plan_device in runtime.c) and the `v100rt plan` command share it, and it
 * is tested on this CPU-only machine. The arithmetic takes a
 * tensor-parallel size (each GPU holds 1/tensor of the sharded weights and
 * of the KV heads) for when tensor parallelism lands; today the config
 * refuses parallel.tensor > 1, so callers pass 1, and no message proposes it.
 */
#ifndef VRT_ENGINE_PLAN_H
#define VRT_ENGINE_PLAN_H

#include "model/hf_config.h"
#include "vrt.h"

#include <stdint.h>

typedef struct vrt_plan_input {
    const vrt_model_config *model;
    int64_t device_bytes;             /* memory of one GPU */
    double memory_fraction;           /* device.memory_fraction */
    double weight_bytes_per_param;    /* 2 for fp16, 4 for fp32, ~0.5625 for 4-bit g128 */
    int tensor;                       /* parallel.tensor */
    int block_size;                   /* cache.block_size */
    int64_t max_total_tokens;         /* batching.max_total_tokens */
    int64_t max_batch_prefill_tokens; /* batching.max_batch_prefill_tokens */
    int max_concurrent_requests;      /* logits rows of one step */
    int64_t graph_pool_bytes;         /* CUDA graph pools (0 when graphs are off) */
} vrt_plan_input;

typedef struct vrt_plan {
    int64_t budget;           /* per GPU */
    int64_t weights;          /* per GPU */
    int64_t workspace;        /* activations of one prefill step, per GPU */
    int64_t graph_pools;      /* per GPU */
    int64_t kv_bytes;         /* what is left for the KV cache, per GPU */
    int64_t block_bytes;      /* one block of block_size tokens, per GPU */
    int64_t num_blocks;       /* KV blocks (the same on every GPU) */
    int64_t kv_tokens;        /* num_blocks × block_size */
    int64_t blocks_per_seq;   /* one sequence of max_total_tokens */
    int64_t full_length_seqs; /* sequences of max_total_tokens that fit at once */
    int64_t params;           /* parameters of the whole model */
} vrt_plan;

/* Bytes per parameter of the weights: 2 (float16), 4 (float32), 0.5625
 * with model.quantize (4-bit, group 128); quantize NULL or "none": none. */
double vrt_plan_weight_bytes(const char *dtype, const char *quantize);

/* Computes the plan. When one sequence of max_total_tokens does not fit,
 * returns VRT_EDEVICEOOM with the figures and what to change, only options
 * v100rt runs (quantize, a smaller batching.max_total_tokens or
 * max_batch_prefill_tokens, a larger memory_fraction, a larger GPU); *plan
 * is filled either way. */
int vrt_plan_compute(const vrt_plan_input *in, vrt_plan *plan, vrt_err *err);

/* A human-readable table of the plan (malloc'd). */
char *vrt_plan_format(const vrt_plan_input *in, const vrt_plan *plan);

#endif
