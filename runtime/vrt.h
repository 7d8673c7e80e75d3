/* vrt.h — the public C API of v100rt.
 *
 * This is the one public header. The part between VRT_FFI_BEGIN and
 * VRT_FFI_END is plain C that LuaJIT's ffi.cdef understands: the build embeds
 * it in the binary (vrt_ffi_cdef()) and lua/v100rt/ffi.lua declares it from
 * there, so Lua and C can never disagree on a struct layout. Keep that part
 * free of macros, includes and attributes.
 */
#ifndef VRT_H
#define VRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* VRT_FFI_BEGIN */

/* An error: code is 0 or a negative VRT_E* code (core/err.h); msg says what
 * went wrong, where, and what to do. */
typedef struct vrt_err {
    int code;
    char msg[4096];
} vrt_err;

const char *vrt_strerror(int code);
const char *vrt_err_name(int code);

/* Version string "0.1.0"; vrt_build_info() adds git revision, compiler and
 * the backends built in. */
const char *vrt_version(void);
const char *vrt_build_info(void);

/* The resolved configuration: every key of lua/v100rt/config.lua, with the
 * same names. Strings are owned by the struct (freed by vrt_config_free);
 * NULL means "not set". Integers that are "nil = automatic" in the schema
 * are 0 here. */
typedef struct vrt_config {
    const char *source; /* the config file's path */
    struct {
        const char *path;
        const char *dtype;    /* "float16" | "float32" | "auto" */
        const char *quantize; /* NULL | "gptq" | "awq" */
        int64_t max_model_len;
        const char *tokenizer;
        const char *name;
        const char *chat_template; /* built-in name or "custom" */
    } model;
    struct {
        const char *kind; /* "auto" | "cpu" | "cuda" | "cuda-emu" */
        int gpus[16];
        int n_gpus;
        double memory_fraction;
        int threads;
    } device;
    struct {
        int tensor; /* 1: tensor parallelism is not implemented yet (check refuses more) */
    } parallel;
    struct {
        int block_size;
        double swap_space; /* GiB per GPU */
        bool prefix_caching;
        int64_t num_blocks;
    } cache;
    struct {
        int64_t max_input_tokens;
        int64_t max_total_tokens;
        int64_t max_batch_prefill_tokens;
        int max_concurrent_requests;
        int max_batch_size;
        int max_waiting_tokens;
        double waiting_served_ratio;
        bool chunked_prefill;
        const char *preemption; /* "auto" | "swap" | "recompute" */
        const char *policy;     /* "fcfs" | "priority" | "fair" | "custom" */
    } batching;
    struct {
        const char *host;
        int port;
        const char **api_keys;
        int n_api_keys;
        int64_t payload_limit;
        int max_connections;
        double read_timeout;
        double keep_alive_timeout;
        const char **cors_allow_origin;
        int n_cors_allow_origin;
        const char **served_model_names;
        int n_served_model_names;
        bool strict_model_name;
    } server;
    struct {
        bool custom;
        bool cuda_graphs;
    } kernels;
    struct {
        const char **env; /* "NCCL_X=value" */
        int n_env;
    } nccl;
    struct {
        const char *level;
        const char *format;
    } logging;
    /* Notes and warnings of the load, one line each ("note: --x ignored:
     * ...", "warning: device.gpus lists 2 GPUs ..."): `check` prints them,
     * the runtime logs them when it opens. */
    const char **notes;
    int n_notes;
    void *mem_; /* internal: strings owned by the struct */
} vrt_config;

/* Runs a config file (Lua), validates it and fills *cfg. On error returns
 * VRT_ECONFIG (or another code) and err->msg lists every problem found, one
 * per line, each naming the key. *cfg must be freed with vrt_config_free
 * whether or not the load succeeded. path may also be a model directory
 * (see vrt_config_load_src). This is vrt_config_load_src without flags and
 * without the environment: what a library or script loads does not change
 * with the variables of the process that runs it. */
int vrt_config_load(vrt_config *cfg, const char *path, vrt_err *err);
void vrt_config_free(vrt_config *cfg);

/* Where a config comes from: a Lua file, or a model directory (then the
 * config is {model = {path = DIR}} and every other key is the schema's
 * default), plus flags typed on the command line and, when use_env is set,
 * TGI's environment variables (MAX_TOTAL_TOKENS, PORT, ...). Precedence,
 * highest first: argv flags, the file, the environment, the defaults. argv
 * holds the words as typed ("--port", "9000", "--max-total-tokens=512",
 * "--device", "cpu"): every TGI/vLLM flag the schema's aliases know, plus
 * v100rt's own overrides (--device KIND, --threads N, --port, --host,
 * --SECTION.KEY VALUE). A flag overrides the file's value; two flags that
 * set one key differently are an error. Container runtime flags (--ipc,
 * --shm-size, ...) are refused with a pointer to the README. path NULL:
 * the first word of argv that is not a flag or a flag's value is the path;
 * without one the config is the flags and the environment alone (TGI's
 * --model-id / MODEL_ID give model.path). cfg->source is the path used.
 * `serve`, `check` and `generate` load with use_env = 1. */
typedef struct vrt_config_source {
    const char *path; /* CONFIG.lua or MODEL_DIR, or NULL */
    const char *const *argv;
    int argc;
    int use_env;
} vrt_config_source;
int vrt_config_load_src(vrt_config *cfg, const vrt_config_source *src, vrt_err *err);
/* Used by the Lua side to hand strings to the struct. */
const char *vrt_config_strdup(vrt_config *cfg, const char *s);
const char **vrt_config_strv(vrt_config *cfg, int n);
size_t vrt_config_sizeof(void);
/* Sets the NCCL variables of cfg->nccl.env in the environment; a variable
 * already set there is left alone (the operator's environment wins). Logs
 * at INFO which it set and which it left. */
int vrt_config_apply_nccl_env(const vrt_config *cfg, vrt_err *err);

/* ---- the model runtime (runtime/engine/runtime.c) ----------------------
 * One loaded model with its tokenizer, backend and KV cache, for `v100rt
 * generate` and scripts (`v100rt run`). Not thread-safe: one caller at a
 * time per runtime. */
typedef struct vrt_runtime vrt_runtime;

/* Generation parameters. vrt_gen_params_init gives TGI's defaults: greedy,
 * 64 new tokens, BOS added, eos stops. */
typedef struct vrt_gen_params {
    int max_new_tokens;
    int do_sample;            /* 0: greedy */
    float temperature;        /* > 0 (0 = greedy) */
    int top_k;                /* 0: off */
    float top_p;              /* (0, 1], 1: off */
    float typical_p;          /* (0, 1], 1: off */
    float min_p;              /* [0, 1], 0: off */
    float repetition_penalty; /* 1: off */
    float frequency_penalty;  /* 0: off */
    float presence_penalty;   /* 0: off */
    uint64_t seed;
    int has_seed;      /* 0: a random seed (reported in the result) */
    const char **stop; /* [n_stop] stop strings */
    int n_stop;
    const int32_t *stop_ids; /* [n_stop_ids] extra stop token ids */
    int n_stop_ids;
    int ignore_eos;         /* 1: eos does not stop generation */
    int add_special_tokens; /* 1: BOS etc. as the tokenizer says */
    int n_logprobs;         /* top logprobs per token, 0..20 */
} vrt_gen_params;

typedef struct vrt_gen_result {
    char *text; /* generated text (malloc'd) */
    size_t text_len;
    int32_t *tokens; /* [n_tokens] generated ids (malloc'd) */
    float *logprobs; /* [n_tokens] logprob of each generated token */
    int n_tokens;
    int n_prompt_tokens;
    const char *finish_reason; /* "length" | "eos_token" | "stop_sequence" */
    uint64_t seed;
    double prefill_s, decode_s;         /* seconds: prompt (+ first token), the rest */
    double prefill_tok_s, decode_tok_s; /* tokens per second */
} vrt_gen_result;

/* Called with each piece of text as it becomes final (never half a UTF-8
 * character, never text a stop string later takes back); a non-zero
 * return stops generation (finish_reason "stop_sequence" is not set: the
 * generation ends as "length"). */
typedef int (*vrt_stream_fn)(void *ud, const char *text, size_t len);

void vrt_gen_params_init(vrt_gen_params *p);
void vrt_gen_result_free(vrt_gen_result *r);

/* Opens a config file (*.lua) or a model directory (then the config is
 * {model = {path = DIR}} with the schema's defaults: device.kind "auto").
 * No flags and no environment variables are read (vrt_config_load). */
int vrt_runtime_open(vrt_runtime **out, const char *config_or_dir, vrt_err *err);
void vrt_runtime_close(vrt_runtime *rt);

int vrt_runtime_generate(vrt_runtime *rt, const char *prompt, size_t len, const vrt_gen_params *p,
                         vrt_stream_fn fn, void *ud, vrt_gen_result *res, vrt_err *err);
/* The same from token ids (no tokenization, no BOS added). */
int vrt_runtime_generate_ids(vrt_runtime *rt, const int32_t *ids, int n, const vrt_gen_params *p,
                             vrt_stream_fn fn, void *ud, vrt_gen_result *res, vrt_err *err);

/* Token ids of text (*ids malloc'd, free with vrt_free). */
int vrt_runtime_tokenize(vrt_runtime *rt, const char *text, size_t len, int add_special_tokens,
                         int32_t **ids, int *n, vrt_err *err);
/* Text of ids (*text malloc'd and NUL-terminated, free with vrt_free). */
int vrt_runtime_detokenize(vrt_runtime *rt, const int32_t *ids, int n, int skip_special_tokens,
                           char **text, size_t *len, vrt_err *err);
/* Logits of every position of ids run as one sequence: out [n][vocab]. */
int vrt_runtime_logits(vrt_runtime *rt, const int32_t *ids, int n, float *out, vrt_err *err);

int vrt_runtime_vocab_size(const vrt_runtime *rt);
/* Longest prompt + generated tokens of one sequence (after the model's limit). */
int vrt_runtime_max_total_tokens(const vrt_runtime *rt);
/* A one-line description: model dir, architecture, sizes, dtype, backend. */
const char *vrt_runtime_describe(const vrt_runtime *rt);
void vrt_free(void *p);

/* What a scheduling policy hook sees of a request (lua/v100rt/policy.lua). */
typedef struct vrt_policy_req {
    uint64_t id;
    int prompt_tokens;
    int max_new_tokens;
    int generated_tokens;
    int priority;       /* the request's priority field / X-Priority header */
    const char *tenant; /* X-Tenant header, OpenAI user, or client address; may be NULL */
    double arrival_s;   /* seconds since the engine started */
    int preempted;      /* times preempted so far */
} vrt_policy_req;

/* What on_step sees. */
typedef struct vrt_policy_stats {
    int running, waiting, free_blocks, num_blocks;
    uint64_t steps, preemptions;
    double last_step_s;
} vrt_policy_stats;

/* Logging from scripts: level 0 debug, 1 info, 2 warn, 3 error. */
void vrt_log_write(int level, const char *msg);

/* The FFI declarations above, as text (for ffi.cdef). */
const char *vrt_ffi_cdef(void);

/* VRT_FFI_END */

#ifdef __cplusplus
}
#endif
#endif
