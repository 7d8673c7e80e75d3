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
        int tensor;
        int loading_workers;
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
    void *mem_; /* internal: strings owned by the struct */
} vrt_config;

/* Runs a config file (Lua), validates it and fills *cfg. On error returns
 * VRT_ECONFIG (or another code) and err->msg lists every problem found, one
 * per line, each naming the key. *cfg must be freed with vrt_config_free
 * whether or not the load succeeded. */
int vrt_config_load(vrt_config *cfg, const char *path, vrt_err *err);
void vrt_config_free(vrt_config *cfg);
/* Used by the Lua side to hand strings to the struct. */
const char *vrt_config_strdup(vrt_config *cfg, const char *s);
const char **vrt_config_strv(vrt_config *cfg, int n);
size_t vrt_config_sizeof(void);
/* Sets the NCCL variables of cfg->nccl.env in the environment; a variable
 * already set there is left alone (the operator's environment wins). */
int vrt_config_apply_nccl_env(const vrt_config *cfg, vrt_err *err);

/* Logging from scripts: level 0 debug, 1 info, 2 warn, 3 error. */
void vrt_log_write(int level, const char *msg);

/* The FFI declarations above, as text (for ffi.cdef). */
const char *vrt_ffi_cdef(void);

/* VRT_FFI_END */

#ifdef __cplusplus
}
#endif
#endif
