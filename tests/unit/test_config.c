/* test_config.c — vrt_config_load from C: the struct `serve` will use. */
#include "core/err.h"
#include "test.h"
#include "vrt.h"

#include <stdlib.h>
#include <unistd.h>

/* Writes text to a fresh temp .lua file; path must hold 64 bytes. */
static void write_tmp(char *path, const char *text)
{
    strcpy(path, "/tmp/vrt_cfg_XXXXXX.lua");
    int fd = mkstemps(path, 4);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

TEST(config_load_defaults_into_struct)
{
    char path[64];
    write_tmp(path,
              "local v = require 'v100rt'\nreturn v.config{ model = { path = 'models/tiny' } }\n");
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load(&cfg, path, &err);
    remove(path);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_STR(cfg.model.path, "models/tiny");
    ASSERT_EQ_STR(cfg.model.dtype, "float16");
    ASSERT(cfg.model.quantize == NULL);
    ASSERT_EQ_STR(cfg.device.kind, "auto");
    ASSERT_NEAR(cfg.device.memory_fraction, 0.85, 1e-12);
    ASSERT_EQ_INT(cfg.device.n_gpus, 1);
    ASSERT_EQ_INT(cfg.parallel.tensor, 1);
    ASSERT_EQ_INT(cfg.cache.block_size, 16);
    ASSERT_NEAR(cfg.cache.swap_space, 4, 0);
    ASSERT(cfg.cache.prefix_caching);
    ASSERT_EQ_INT(cfg.batching.max_input_tokens, 2048);
    ASSERT_EQ_INT(cfg.batching.max_total_tokens, 4096);
    ASSERT_EQ_INT(cfg.batching.max_batch_prefill_tokens, 4096);
    ASSERT_EQ_INT(cfg.batching.max_concurrent_requests, 8);
    ASSERT_EQ_STR(cfg.batching.policy, "fcfs");
    ASSERT_EQ_STR(cfg.server.host, "127.0.0.1");
    ASSERT_EQ_INT(cfg.server.port, 8080);
    ASSERT_EQ_INT(cfg.server.payload_limit, 2000000);
    ASSERT_EQ_INT(cfg.server.n_api_keys, 0);
    ASSERT(cfg.kernels.custom && cfg.kernels.cuda_graphs);
    ASSERT_EQ_STR(cfg.logging.level, "info");
    ASSERT_EQ_STR(cfg.source, path);
    vrt_config_free(&cfg);
}

TEST(config_load_reports_every_error)
{
    char path[64];
    write_tmp(
        path,
        "return { modle = {}, batching = { max_input_tokens = 5000, max_total_tokens = 4096 },"
        " model = { path = 'x' }, cache = { block_size = 12 } }\n");
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load(&cfg, path, &err);
    remove(path);
    vrt_config_free(&cfg);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "did you mean \"model\"");
    ASSERT_CONTAINS(err.msg, "cache.block_size");
    ASSERT_CONTAINS(err.msg, "batching.max_input_tokens (5000)");
    write_tmp(path, "return { model = { path = 'x' }, batching = { max_input_tokens = 5000, "
                    "max_total_tokens = 4096 } }\n");
    rc = vrt_config_load(&cfg, path, &err);
    remove(path);
    vrt_config_free(&cfg);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "batching.max_total_tokens (4096)");
    ASSERT_CONTAINS(err.msg, "batching.max_input_tokens (5000)");
}

TEST(config_lua_error_has_file_and_line)
{
    char path[64];
    write_tmp(path, "local x = nil\nreturn { model = { path = x.y } }\n");
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load(&cfg, path, &err);
    vrt_config_free(&cfg);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    char want[80];
    snprintf(want, sizeof want, "%s:2:", path);
    ASSERT_CONTAINS(err.msg, want);
    write_tmp(path, "return { model = { path = 'x' }\n");
    rc = vrt_config_load(&cfg, path, &err);
    remove(path);
    vrt_config_free(&cfg);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "expected");
}

TEST(config_missing_file)
{
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load(&cfg, "/nonexistent/cfg.lua", &err);
    vrt_config_free(&cfg);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "/nonexistent/cfg.lua");
}

TEST(config_nccl_env_applied_but_environment_wins)
{
    char path[64];
    write_tmp(path, "return { model = { path = 'x' }, nccl = { debug = 'INFO', p2p_disable = true,"
                    " extra = { NCCL_ALGO = 'Ring' } } }\n");
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load(&cfg, path, &err);
    remove(path);
    ASSERT_OK(rc, &err);
    unsetenv("NCCL_DEBUG");
    unsetenv("NCCL_ALGO");
    setenv("NCCL_P2P_DISABLE", "0", 1); /* the operator's environment */
    ASSERT_OK(vrt_config_apply_nccl_env(&cfg, &err), &err);
    ASSERT_EQ_STR(getenv("NCCL_DEBUG"), "INFO");
    ASSERT_EQ_STR(getenv("NCCL_ALGO"), "Ring");
    ASSERT_EQ_STR(getenv("NCCL_P2P_DISABLE"), "0");
    ASSERT_EQ_STR(getenv("NCCL_SOCKET_IFNAME"), "^lo,docker");
    vrt_config_free(&cfg);
}

TEST(every_shipped_config_loads)
{
    const char *files[] = {"configs/tiny.lua",
                           "configs/phi-2.lua",
                           "configs/gemma-2b.lua",
                           "configs/mistral-7b-instruct-gptq.lua",
                           "configs/mistral-7b-awq.lua",
                           "configs/llama-2-7b-awq.lua"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        vrt_config cfg;
        vrt_err err = {0};
        int rc = vrt_config_load(&cfg, files[i], &err);
        vrt_config_free(&cfg);
        if (rc != 0)
            TFAIL("%s: %s", files[i], err.msg);
    }
    /* The 2-GPU file waits for tensor parallelism: refused, and runs on one
     * GPU with the override its header gives. */
    vrt_config cfg;
    vrt_err err = {0};
    ASSERT_EQ_INT(vrt_config_load(&cfg, "configs/llama-2-13b-chat-gptq-2gpu.lua", &err),
                  VRT_ECONFIG);
    vrt_config_free(&cfg);
    ASSERT_CONTAINS(err.msg, "parallel.tensor = 2: tensor parallelism is not implemented yet");
    const char *argv[] = {"--parallel.tensor", "1", "--device.gpus", "0"};
    vrt_config_source src = {"configs/llama-2-13b-chat-gptq-2gpu.lua", argv, 4, 0};
    ASSERT_OK(vrt_config_load_src(&cfg, &src, &err), &err);
    ASSERT_EQ_INT(cfg.parallel.tensor, 1);
    ASSERT_EQ_INT(cfg.device.n_gpus, 1);
    vrt_config_free(&cfg);
}

/* vrt_config_load_src from C: a model directory with flags (override) and
 * the environment (below the file); cfg->source is the path found. */
TEST(config_load_src_dir_flags_env)
{
    const char *argv[] = {"--max-total-tokens", "300", "models-trained/kjv-tiny", "--device=cpu",
                          "--enforce-eager"};
    setenv("PORT", "9123", 1);
    setenv("MAX_TOTAL_TOKENS", "200", 1);
    vrt_config_source src = {.path = NULL, .argv = argv, .argc = 5, .use_env = 1};
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load_src(&cfg, &src, &err);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_STR(cfg.source, "models-trained/kjv-tiny");
    ASSERT_EQ_STR(cfg.model.path, "models-trained/kjv-tiny");
    ASSERT_EQ_INT(cfg.batching.max_total_tokens, 300); /* the flag over the environment */
    ASSERT_EQ_INT(cfg.server.port, 9123);               /* the environment over the default */
    ASSERT_EQ_STR(cfg.device.kind, "cpu");
    ASSERT(!cfg.kernels.cuda_graphs);
    vrt_config_free(&cfg);
    /* use_env = 0 (vrt_config_load): the environment is not read. */
    ASSERT_OK(vrt_config_load(&cfg, "models-trained/kjv-tiny", &err), &err);
    ASSERT_EQ_INT(cfg.server.port, 8080);
    ASSERT_EQ_INT(cfg.batching.max_total_tokens, 4096);
    vrt_config_free(&cfg);
    /* A bad variable is an error naming it; a container flag points to the README. */
    setenv("PORT", "eighty", 1);
    src.argc = 3;
    ASSERT_EQ_INT(vrt_config_load_src(&cfg, &src, &err), VRT_ECONFIG);
    vrt_config_free(&cfg);
    ASSERT_CONTAINS(err.msg, "env PORT (server.port)");
    unsetenv("PORT");
    unsetenv("MAX_TOTAL_TOKENS");
    const char *argv2[] = {"models-trained/kjv-tiny", "--shm-size", "8g"};
    vrt_config_source src2 = {.argv = argv2, .argc = 3};
    ASSERT_EQ_INT(vrt_config_load_src(&cfg, &src2, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "--shm-size 8g is a container runtime flag");
    ASSERT_CONTAINS(err.msg, "see README, Kubernetes");
    vrt_config_free(&cfg);
}
