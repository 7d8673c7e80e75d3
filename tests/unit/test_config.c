/* test_config.c — vrt_config_load from C: the struct `serve` will use, and
 * how the runtime takes every setting from it. */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/runtime_int.h"
#include "model/quantize.h"
#include "test.h"
#include "vrt.h"

#include <pthread.h>
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
    const char *files[] = {"configs/tiny.lua",           "configs/phi-2.lua",
                           "configs/gemma-2b.lua",       "configs/mistral-7b-instruct-gptq.lua",
                           "configs/mistral-7b-awq.lua", "configs/llama-2-7b-awq.lua"};
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
    ASSERT_EQ_INT(cfg.server.port, 9123);              /* the environment over the default */
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

/* ---- the keys that only feed the environment: nccl ---------------------- */

/* Every nccl key becomes its NCCL_* variable in this process's environment,
 * a variable the operator already set is left alone, and both are logged
 * at INFO (`serve` calls vrt_config_apply_nccl_env). */
TEST(config_nccl_every_key_reaches_the_environment)
{
    char path[64];
    write_tmp(path, "return { model = { path = 'x' }, nccl = { debug = 'TRACE',"
                    " debug_subsys = 'INIT,P2P', p2p_disable = true, p2p_level = 'PIX',"
                    " ib_disable = true, shm_disable = true, socket_ifname = 'eth7',"
                    " extra = { NCCL_ALGO = 'Tree', NCCL_NTHREADS = 256 } } }\n");
    vrt_config cfg;
    vrt_err err = {0};
    int rc = vrt_config_load(&cfg, path, &err);
    remove(path);
    ASSERT_OK(rc, &err);
    const char *names[] = {"NCCL_DEBUG",         "NCCL_DEBUG_SUBSYS", "NCCL_P2P_DISABLE",
                           "NCCL_P2P_LEVEL",     "NCCL_IB_DISABLE",   "NCCL_SHM_DISABLE",
                           "NCCL_SOCKET_IFNAME", "NCCL_ALGO",         "NCCL_NTHREADS"};
    const char *want[] = {"TRACE", "INIT,P2P", "1", "PIX", "1", "1", "eth7", "Tree", "256"};
    for (int i = 0; i < 9; i++)
        unsetenv(names[i]);
    setenv("NCCL_SHM_DISABLE", "0", 1); /* the operator's, kept */
    want[5] = "0";
    FILE *log = tmpfile();
    vrt_log_set_stream(log);
    rc = vrt_config_apply_nccl_env(&cfg, &err);
    vrt_log_set_stream(NULL);
    ASSERT_OK(rc, &err);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ_STR(getenv(names[i]), want[i]);
    char text[2048] = "";
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    ASSERT_CONTAINS(text, "INFO");
    ASSERT_CONTAINS(text, "nccl: set NCCL_DEBUG=TRACE NCCL_DEBUG_SUBSYS=INIT,P2P "
                          "NCCL_P2P_DISABLE=1 NCCL_P2P_LEVEL=PIX NCCL_IB_DISABLE=1 "
                          "NCCL_SOCKET_IFNAME=eth7 NCCL_ALGO=Tree NCCL_NTHREADS=256");
    ASSERT_CONTAINS(text, "left as the environment has them: NCCL_SHM_DISABLE=0");
    for (int i = 0; i < 9; i++)
        unsetenv(names[i]);
    vrt_config_free(&cfg);
}

/* ---- the runtime: every setting from the resolved config ----------------- */

static int load_args(vrt_config *cfg, const char *path, const char **argv, int argc, vrt_err *err)
{
    vrt_config_source src = {.path = path, .argv = argv, .argc = argc};
    return vrt_config_load_src(cfg, &src, err);
}

TEST(runtime_backend_opts_follow_device_and_kernels)
{
    vrt_config cfg;
    vrt_err err = {0};
    const char *argv[] = {"--device.gpus", "3,1", "--threads", "5", "--disable-custom-kernels"};
    ASSERT_OK(load_args(&cfg, "models-trained/kjv-tiny", argv, 5, &err), &err);
    vrt_backend_opts bo = vrt__backend_opts_of(&cfg);
    ASSERT_EQ_INT(bo.device, 3); /* device.gpus[1]: the one GPU used */
    ASSERT_EQ_INT(bo.threads, 5);
    ASSERT_EQ_INT(bo.custom_kernels, 0);
    vrt_config_free(&cfg);
    ASSERT_OK(load_args(&cfg, "models-trained/kjv-tiny", NULL, 0, &err), &err);
    bo = vrt__backend_opts_of(&cfg);
    ASSERT_EQ_INT(bo.device, 0); /* the default, {0} */
    ASSERT_EQ_INT(bo.threads, 0);
    ASSERT_EQ_INT(bo.custom_kernels, 1);
    vrt_config_free(&cfg);
}

TEST(runtime_open_refuses_tensor_parallel)
{
    vrt_config cfg;
    vrt_err err = {0};
    ASSERT_OK(vrt_config_load(&cfg, "models-trained/kjv-tiny", &err), &err);
    cfg.parallel.tensor = 2; /* a struct that did not come through the rules */
    vrt_runtime *rt = NULL;
    ASSERT_EQ_INT(vrt__runtime_open_cfg(&rt, &cfg, &err), VRT_ECONFIG);
    ASSERT(rt == NULL);
    ASSERT_CONTAINS(err.msg, "parallel.tensor = 2: tensor parallelism is not implemented yet");
    vrt_config_free(&cfg);
    /* And through the public API, from a file. */
    char path[64];
    write_tmp(path, "return { model = { path = 'models-trained/kjv-tiny' }, num_shard = 2 }\n");
    int rc = vrt_runtime_open(&rt, path, &err);
    remove(path);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "(alias num_shard): tensor parallelism is not implemented yet");
}

/* The runtime takes each setting from the config: KV cache, limits,
 * swap/preemption, prefix caching, CUDA graphs, the policy the engine
 * loads; the description reports the KV blocks as they are when asked. */
TEST(runtime_open_takes_every_setting_from_the_config)
{
    vrt_config cfg;
    vrt_err err = {0};
    const char *argv[] = {"--device",
                          "cpu",
                          "--cache.block_size",
                          "8",
                          "--cache.num_blocks",
                          "70",
                          "--max-total-tokens",
                          "500",
                          "--max-input-tokens",
                          "300",
                          "--max-batch-prefill-tokens",
                          "64",
                          "--enforce-eager",
                          "--enable-prefix-caching",
                          "false",
                          "--swap-space",
                          "2",
                          "--batching.policy",
                          "priority"};
    ASSERT_OK(load_args(&cfg, "models-trained/kjv-tiny", argv, 19, &err), &err);
    vrt_runtime *rt;
    ASSERT_OK(vrt__runtime_open_cfg(&rt, &cfg, &err), &err);
    ASSERT_EQ_INT(rt->pool.block_size, 8);
    ASSERT_EQ_INT(rt->pool.num_blocks, 70);
    ASSERT_EQ_INT(rt->max_total, 500);
    ASSERT_EQ_INT(rt->max_input, 300);
    ASSERT_EQ_INT(rt->max_prefill, 64);
    ASSERT_EQ_INT(rt->m->graphs, 0);
    ASSERT_EQ_INT(rt->prefix_caching, 0);
    ASSERT_EQ_INT(rt->swap_bytes, 2LL << 30);
    /* The flag's policy, not the file's: what vrt_engine_create loads. */
    ASSERT_EQ_STR(cfg.batching.policy, "priority");
    ASSERT_CONTAINS(vrt_runtime_describe(rt), "cpu backend, 70 KV blocks of 8");
    ASSERT_CONTAINS(vrt_runtime_describe(rt), "f16 weights");
    /* The engine resizes the cache after open: the description follows. */
    ASSERT_OK(vrt__runtime_resize_kv(rt, 90, &err), &err);
    ASSERT_CONTAINS(vrt_runtime_describe(rt), "90 KV blocks of 8");
    vrt_runtime_close(rt);
    vrt_config_free(&cfg);
    /* The schema's defaults when nothing is set (nothing restated in C). */
    const char *cpu[] = {"--device", "cpu"};
    ASSERT_OK(load_args(&cfg, "models-trained/kjv-tiny", cpu, 2, &err), &err);
    ASSERT_OK(vrt__runtime_open_cfg(&rt, &cfg, &err), &err);
    ASSERT_EQ_INT(rt->pool.block_size, 16);
    ASSERT_EQ_INT(rt->max_prefill, 4096);
    ASSERT_EQ_INT(rt->m->graphs, 1);
    ASSERT_EQ_INT(rt->prefix_caching, 1);
    ASSERT_EQ_INT(rt->swap_bytes, 4LL << 30);
    ASSERT_EQ_STR(cfg.batching.policy, "fcfs");
    vrt_runtime_close(rt);
    vrt_config_free(&cfg);
    /* batching.preemption = "recompute": no swap space. */
    const char *rec[] = {"--device", "cpu", "--batching.preemption", "recompute"};
    ASSERT_OK(load_args(&cfg, "models-trained/kjv-tiny", rec, 4, &err), &err);
    ASSERT_OK(vrt__runtime_open_cfg(&rt, &cfg, &err), &err);
    ASSERT_EQ_INT(rt->swap_bytes, 0);
    vrt_runtime_close(rt);
    vrt_config_free(&cfg);
}

/* logging.level and logging.format of a config file take effect when the
 * runtime opens it. */
TEST(runtime_open_applies_logging_keys)
{
    char path[64];
    write_tmp(path,
              "return { model = { path = 'models-trained/kjv-tiny' }, device = { kind = 'cpu' },"
              " logging = { level = 'warn', format = 'json' } }\n");
    int before = vrt_log_get_level();
    FILE *log = tmpfile();
    vrt_log_set_stream(log);
    vrt_runtime *rt;
    vrt_err err = {0};
    int rc = vrt_runtime_open(&rt, path, &err);
    remove(path);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(vrt_log_get_level(), VRT_LOG_WARN);
    VRT_WARN("probe %d", 42);
    vrt_log_set_stream(NULL);
    vrt_log_set_format(VRT_LOG_TEXT);
    vrt_log_set_level(before);
    char text[4096] = "";
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    ASSERT_CONTAINS(text, "\"level\":\"warn\",\"msg\":\"probe 42\"");
    ASSERT(strstr(text, "device.kind") == NULL); /* INFO lines were not printed */
    vrt_runtime_close(rt);
}

/* A 4-bit model is described as such, not as "f16 weights". */
TEST(runtime_describe_names_int4_weights)
{
    char dir[] = "/tmp/vrt_rtn_XXXXXX";
    ASSERT(mkdtemp(dir));
    vrt_quantize_opts qo;
    vrt_quantize_opts_init(&qo);
    qo.method = VRT_QM_RTN;
    qo.force = true;
    vrt_quantize_report rep;
    vrt_err err = {0};
    FILE *log = tmpfile();
    vrt_log_set_stream(log);
    int rc = vrt_quantize_model("models-trained/kjv-tiny", dir, &qo, &rep, &err);
    vrt_log_set_stream(NULL);
    fclose(log);
    ASSERT_OK(rc, &err);
    vrt_runtime *rt;
    ASSERT_OK(vrt_cli_open_runtime(dir, "cpu", 0, &rt, &err), &err);
    const char *d = vrt_runtime_describe(rt);
    ASSERT_CONTAINS(d, "int4 (gptq, group 128) + f16 weights");
    vrt_runtime_close(rt);
    /* A config file without model.quantize: the checkpoint must be unquantized. */
    char path[64], text[256];
    snprintf(text, sizeof text, "return { model = { path = '%s' }, device = { kind = 'cpu' } }\n",
             dir);
    write_tmp(path, text);
    rc = vrt_runtime_open(&rt, path, &err);
    remove(path);
    ASSERT_EQ_INT(rc, VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "set model.quantize = \"gptq\"");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
}

/* ---- cache.prefix_caching through the engine ----------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int done;
} finish_count;

static void count_finish(void *ud, const vrt_engine_event *ev)
{
    finish_count *f = ud;
    if (ev->kind == VRT_EV_FINISH || ev->kind == VRT_EV_ERROR) {
        pthread_mutex_lock(&f->mu);
        f->done++;
        pthread_mutex_unlock(&f->mu);
    }
}

/* The same 48-token prompt three times, one after the other: the prefix
 * cache finds its full blocks when cache.prefix_caching is on, and never
 * when it is off. Returns the hits in blocks. */
static long long prefix_hits(const char *on, vrt_err *err)
{
    const char *argv[] = {"--device", "cpu", "--enable-prefix-caching", on};
    vrt_config cfg;
    vrt_runtime *rt = NULL;
    vrt_engine *e = NULL;
    long long hits = -1;
    if (load_args(&cfg, "models-trained/kjv-tiny", argv, 4, err) != 0 ||
        vrt__runtime_open_cfg(&rt, &cfg, err) != 0 || vrt_engine_create(&e, rt, &cfg, err) != 0)
        goto out;
    int32_t ids[48];
    for (int i = 0; i < 48; i++)
        ids[i] = 100 + 7 * i;
    finish_count f = {.done = 0};
    pthread_mutex_init(&f.mu, NULL);
    for (int k = 0; k < 3; k++) {
        vrt_request_params p = {.sampling = vrt_sampling_params_default(), .max_new_tokens = 2};
        uint64_t id;
        if (vrt_engine_submit(e, ids, 48, &p, count_finish, &f, &id, err) != 0)
            goto out;
        for (int t = 0; t < 3000; t++) {
            pthread_mutex_lock(&f.mu);
            int d = f.done;
            pthread_mutex_unlock(&f.mu);
            if (d > k)
                break;
            usleep(10000);
        }
    }
    vrt_engine_stats st;
    vrt_engine_stats_get(e, &st);
    hits = f.done == 3 ? (long long)st.prefix_cache_hits : -2;
out:
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    vrt_config_free(&cfg);
    return hits;
}

TEST(engine_prefix_caching_key_turns_the_cache_on_and_off)
{
    vrt_err err = {0};
    long long on = prefix_hits("true", &err);
    if (on < 0)
        TFAIL("prefix caching on: %lld: %s", on, err.msg);
    long long off = prefix_hits("false", &err);
    if (off < 0)
        TFAIL("prefix caching off: %lld: %s", off, err.msg);
    ASSERT(on > 0);
    ASSERT_EQ_INT(off, 0);
}
