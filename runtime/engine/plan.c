/* plan.c — the GPU memory plan (see plan.h). */
#include "engine/plan.h"

#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double gib(int64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

static int64_t div_up(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

double vrt_plan_weight_bytes(const char *dtype, const char *quantize)
{
    if (quantize && strcmp(quantize, "none") != 0)
        return 0.5625; /* 4 bits + an f16 scale and a 4-bit zero per group of 128 */
    return dtype && strcmp(dtype, "float32") == 0 ? 4.0 : 2.0;
}

int vrt_plan_compute(const vrt_plan_input *in, vrt_plan *p, vrt_err *err)
{
    memset(p, 0, sizeof *p);
    const vrt_model_config *c = in->model;
    if (!c || in->device_bytes <= 0 || in->tensor < 1 || in->block_size < 1 ||
        in->max_total_tokens < 1 || in->weight_bytes_per_param <= 0)
        return vrt_err_set(err, VRT_EINVAL, "plan: missing or invalid input");
    const int64_t D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    const int64_t L = c->num_hidden_layers, t = in->tensor;
    const int64_t qd = (int64_t)c->num_attention_heads * c->head_dim;
    const int64_t kvd = (int64_t)c->num_key_value_heads * c->head_dim;
    /* Parameters: matrices are split over the GPUs (column / row parallel,
     * vocabulary-parallel embeddings), norms are replicated. */
    int64_t sharded =
        V * D * (c->tie_word_embeddings ? 1 : 2) + L * (D * qd + 2 * D * kvd + qd * D + 3 * D * F);
    int64_t replicated = L * 2 * D + D;
    if (c->attention_bias)
        sharded += L * (qd + 2 * kvd), replicated += L * D;
    if (c->mlp_bias)
        sharded += L * 2 * F, replicated += L * D;
    p->params = sharded + replicated;
    p->weights = (int64_t)((double)(div_up(sharded, t) + replicated) * in->weight_bytes_per_param);
    /* Activations of one step (f32, the backend contract): the residual
     * stream and its norm, q/k/v/attention, the MLP, for every token of a
     * prefill step plus one decode token per request, and the logits rows. */
    int64_t T = in->max_batch_prefill_tokens + in->max_concurrent_requests;
    int64_t rows = in->max_concurrent_requests > 0 ? in->max_concurrent_requests : 1;
    p->workspace = 4 * (T * (2 * D + 2 * div_up(qd, t) + 2 * div_up(kvd, t) + 2 * div_up(F, t)) +
                        rows * (D + V));
    p->graph_pools = in->graph_pool_bytes;
    p->budget = (int64_t)((double)in->device_bytes * in->memory_fraction);
    /* KV heads are split over the GPUs; with fewer heads than GPUs each
     * GPU keeps one. */
    int64_t kv_heads = c->num_key_value_heads / t > 0 ? c->num_key_value_heads / t : 1;
    p->block_bytes = 2 * L * in->block_size * kv_heads * c->head_dim * 2;
    p->kv_bytes = p->budget - p->weights - p->workspace - p->graph_pools;
    p->num_blocks = p->kv_bytes > 0 ? p->kv_bytes / p->block_bytes : 0;
    p->kv_tokens = p->num_blocks * in->block_size;
    p->blocks_per_seq = div_up(in->max_total_tokens, in->block_size);
    p->full_length_seqs = p->num_blocks / p->blocks_per_seq;
    if (p->full_length_seqs >= 1)
        return 0;
    /* What would fit: the longest sequence, and the options. */
    int64_t fit = p->kv_tokens;
    double w4 = (double)(div_up(sharded, t) + replicated) * 0.5625; /* 4-bit, group 128 */
    char shorter[96] = "";
    if (fit >= in->block_size)
        snprintf(shorter, sizeof shorter, "; batching.max_total_tokens <= %lld", (long long)fit);
    return vrt_err_set(
        err, VRT_EDEVICEOOM,
        "the model does not fit: %.2f GiB per GPU (%.0f%% of %.2f GiB) minus %.2f GiB of weights "
        "(%.2f B parameters / %d GPU%s), %.2f GiB of activations for %lld prefill tokens and "
        "%.2f GiB of graph pools leaves %.2f GiB for the KV cache: %lld tokens, but one sequence "
        "of batching.max_total_tokens = %lld needs %lld blocks of %.2f MiB (%.2f GiB). Options: "
        "model.quantize = \"awq\" or \"gptq\" with a 4-bit checkpoint (weights: about %.2f GiB "
        "per GPU)%s; a smaller batching.max_batch_prefill_tokens; a larger "
        "device.memory_fraction; a GPU with more memory (tensor parallelism over several GPUs "
        "is not implemented yet)",
        gib(p->budget), in->memory_fraction * 100.0, gib(in->device_bytes), gib(p->weights),
        (double)p->params / 1e9, (int)t, t > 1 ? "s" : "", gib(p->workspace),
        (long long)in->max_batch_prefill_tokens, gib(p->graph_pools),
        p->kv_bytes > 0 ? gib(p->kv_bytes) : 0.0, (long long)(fit > 0 ? fit : 0),
        (long long)in->max_total_tokens, (long long)p->blocks_per_seq,
        (double)p->block_bytes / (1024.0 * 1024.0), gib(p->blocks_per_seq * p->block_bytes),
        w4 / (1024.0 * 1024.0 * 1024.0), shorter);
}

char *vrt_plan_format(const vrt_plan_input *in, const vrt_plan *p)
{
    char *out = malloc(2048);
    if (!out)
        return NULL;
    snprintf(out, 2048,
             "model            %s, %.2f B parameters\n"
             "GPUs             %d x %.2f GiB, memory_fraction %.2f -> budget %.2f GiB per GPU\n"
             "weights          %.2f GiB per GPU (%.3g bytes per parameter)\n"
             "activations      %.2f GiB (%lld prefill tokens + %d decodes per step)\n"
             "graph pools      %.2f GiB\n"
             "KV cache         %.2f GiB per GPU: %lld blocks of %d tokens (%.2f MiB each) = "
             "%lld tokens\n"
             "one sequence     batching.max_total_tokens %lld = %lld blocks\n"
             "fits at once     %lld sequences of max_total_tokens\n",
             in->model->arch_name, (double)p->params / 1e9, in->tensor, gib(in->device_bytes),
             in->memory_fraction, gib(p->budget), gib(p->weights), in->weight_bytes_per_param,
             gib(p->workspace), (long long)in->max_batch_prefill_tokens,
             in->max_concurrent_requests, gib(p->graph_pools),
             p->kv_bytes > 0 ? gib(p->kv_bytes) : 0.0, (long long)p->num_blocks, in->block_size,
             (double)p->block_bytes / (1024.0 * 1024.0), (long long)p->kv_tokens,
             (long long)in->max_total_tokens, (long long)p->blocks_per_seq,
             (long long)p->full_length_seqs);
    return out;
}
