/* runtime_int.h — the inside of vrt_runtime, shared by runtime.c (logits
 * of one sequence; generate, through its synchronous engine) and engine.c
 * (continuous batching), which takes over the same model, KV cache and
 * tokenizer.
 */
#ifndef VRT_ENGINE_RUNTIME_INT_H
#define VRT_ENGINE_RUNTIME_INT_H

#include "engine/kv_blocks.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "vrt.h"

struct vrt_runtime {
    char *model_dir;
    vrt_backend *be;
    vrt_model *m;
    vrt_tokenizer *tok;
    vrt_kv_cache kv;
    vrt_block_pool pool;
    vrt_sample_scratch scratch;
    int max_total;   /* tokens of one sequence */
    int max_input;   /* prompt tokens */
    int max_prefill; /* tokens per prefill chunk */
    int max_blocks;  /* blocks of one sequence */
    int32_t eos[VRT_MAX_EOS + 1];
    int n_eos;
    char desc[512];
    int64_t cfg_num_blocks;        /* cache.num_blocks as configured; 0 = derived */
    int64_t plan_blocks;           /* KV blocks the GPU memory plan leaves (0 = no plan: cpu) */
    int prefix_caching;            /* cache.prefix_caching */
    int64_t swap_bytes;            /* cache.swap_space in bytes; 0 = preemption by recompute */
    struct vrt_engine *gen_engine; /* generate's synchronous engine (made on first use) */
    int generating;                /* 1 inside vrt_runtime_generate_ids */
};

/* Opens the runtime of a loaded config (vrt_config_load_src: a file or a
 * model directory, flags, the environment): `serve` and `generate` load
 * with the command line's flags, then open with this. Every setting comes
 * from cfg (the schema's defaults included): nothing is restated here.
 * Logs cfg->notes; refuses parallel.tensor > 1. */
int vrt__runtime_open_cfg(vrt_runtime **out, const vrt_config *cfg, vrt_err *err);
/* The backend options of a config: device.threads, kernels.custom, and
 * device.gpus[1] as the CUDA device ordinal. */
vrt_backend_opts vrt__backend_opts_of(const vrt_config *cfg);
/* Applies logging.level (unless keep_level: a command's --quiet wins) and
 * logging.format of cfg to the process's log. */
void vrt__config_apply_logging(const vrt_config *cfg, int keep_level);
/* What the loader checks model.quantize against: cfg->model.quantize;
 * unset, "none" (an unquantized checkpoint), except for a model directory
 * opened without a config file, where NULL (as the checkpoint is). */
const char *vrt__config_quantize(const vrt_config *cfg);
/* Replaces the KV cache and block pool by ones of num_blocks blocks (all
 * sequences must be released). */
int vrt__runtime_resize_kv(vrt_runtime *rt, int num_blocks, vrt_err *err);

/* One step of a sequence's text: the incremental detokenizer's piece for
 * tok (flush = 0), or what it still holds at the end (flush = 1), fed
 * through the stop-string checker; what became final is appended to *out.
 * At the end, without a stop string, the checker's held tail is released
 * too. *matched is the stop string found, or -1. */
int vrt__text_step(vrt_detok *d, vrt_stop_checker *stop, vrt_stop_out *out, int32_t tok, int flush,
                   int *matched, vrt_err *err);

/* The checks every request gets before it runs, in this order: a non-empty
 * prompt of ids in the vocabulary, stop ids in the vocabulary, sampling
 * parameters, batching.max_input_tokens, max_new_tokens >= 1, and prompt +
 * max_new_tokens <= batching.max_total_tokens. */
int vrt__runtime_check_request(const vrt_runtime *rt, const int32_t *ids, int n, int max_new_tokens,
                               const int32_t *stop_ids, int n_stop_ids,
                               const vrt_sampling_params *sp, vrt_err *err);

/* The runtime's synchronous engine (engine.h, vrt__engine_create_sync),
 * made on first use: vrt_runtime_generate[_ids] submits its request there
 * and runs the engine's steps until it ends. */
int vrt__runtime_engine(vrt_runtime *rt, struct vrt_engine **out, vrt_err *err);

#endif
