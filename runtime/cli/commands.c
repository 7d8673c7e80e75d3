/* commands.c — the table of commands, and `help` and `version`.
 *
 * A command is listed here only once it exists.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/util.h"
#include "lua/host.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

const vrt_cmd vrt_commands[] = {
    {"check",
     "validate a config (file or model directory + flags) and print the resolved configuration",
     "v100rt check [--json] [--quiet] CONFIG.lua|MODEL_DIR [FLAGS...]",
     "Loads the config exactly as `serve` will: CONFIG.lua or a model directory\n"
     "(then the config is {model = {path = DIR}} and the schema's defaults), the\n"
     "FLAGS after it (TGI/vLLM flags, --device KIND, --threads N, --port, --host,\n"
     "--SECTION.KEY VALUE; they override the file) and TGI's environment variables\n"
     "(MAX_TOTAL_TOKENS, PORT, ...; below the file). Validates every key against the\n"
     "schema (lua/v100rt/config.lua); when model.path exists, reads its config.json\n"
     "and quantization config as the loader does (the architecture must be one it\n"
     "supports, model.quantize must agree with the checkpoint). Prints the resolved\n"
     "configuration: every key, its value, and where the value came from (set, alias\n"
     "x, flag --x, env X, model directory, or the default), and notes and warnings.\n"
     "Prints every error found and exits 1 if the config is invalid (like `nginx -t`).\n"
     "\n",
     vrt_cmd_check, vrt_cli_check_opts, 12, NULL, 1, 8,
     (const char *const[]){"needs a config file or a model directory"}, 1},
    {"mkmodel", "write a model directory with seeded random weights (for demos and tests)",
     "v100rt mkmodel [--preset tiny|small|tinyllama] [--arch TYPE] [options] OUT_DIR",
     "Writes a Hugging Face-style model directory that transformers can load:\n"
     "config.json, generation_config.json, model.safetensors (HF tensor names,\n"
     "weights N(0, 0.02) from --seed), and a real SentencePiece-style BPE tokenizer\n"
     "(tokenizer.json, tokenizer_config.json; 3000 tokens) built into v100rt.\n"
     "Tensors are generated while they are written, so memory stays small.\n"
     "\n"
     "Presets (default tiny; options below override them):\n"
     "  tiny        dim 128, 4 layers, 4 heads, 2 kv heads, ffn 344, vocab 3000 (~1.5M params)\n"
     "  small       dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000, tied (~110M)\n"
     "  tinyllama   dim 2048, 22 layers, 32 heads, 4 kv heads, ffn 5632, vocab 32000 (1.1B)\n"
     "\n",
     vrt_cmd_mkmodel, vrt_cli_mkmodel_opts, 25,
     "\n"
     "`make demo-model` runs `v100rt mkmodel --preset tiny --seed 1 models/tiny`.\n",
     1, 1, (const char *const[]){"needs one output directory"}, 0},
    {"run", "run a Lua script with the v100rt runtime (require \"v100rt\")",
     "v100rt run SCRIPT.lua [ARGS...]",
     "Runs a Lua script in v100rt's LuaJIT host. The script sees its arguments in\n"
     "the global `arg` (arg[0] is the script), can `require \"v100rt\"` and reach the\n"
     "C API of runtime/vrt.h through `require \"v100rt.ffi\"`. A Lua error prints\n"
     "its message with file:line and a traceback, and exits 1. os.exit(n) sets\n"
     "the exit code.\n",
     vrt_cmd_run, NULL, 0, NULL, 0, 0, NULL, 0},
    {"serve", "serve a model over the TGI and OpenAI HTTP APIs",
     "v100rt serve CONFIG.lua|MODEL_DIR [FLAGS]",
     "Serves CONFIG.lua, or a model directory with the default settings, like\n"
     "`vllm serve MODEL` (TGI's `--model-id MODEL_DIR` works too, and so does\n"
     "MODEL_ID in the environment). Listens on server.host:server.port (port 0\n"
     "picks a free one), loads the model in the background (GET /health is 503\n"
     "until it is ready) and serves the TGI routes (/generate, /generate_stream, /,\n"
     "/info, /health, /metrics, /tokenize) and the OpenAI routes\n"
     "(/v1/completions, /v1/chat/completions, /v1/models) with continuous\n"
     "batching. SIGTERM or SIGINT stop accepting connections, let in-flight\n"
     "requests finish (up to 30 s) and exit 0. API keys: server.api_keys or\n"
     "V100RT_API_KEYS=key1,key2.\n"
     "\n"
     "FLAGS, before or after the config, override single keys of it (or of the\n"
     "defaults); they win over the file, which wins over TGI's environment\n"
     "variables (MAX_TOTAL_TOKENS, PORT, ...; README, Configuration):\n"
     "  --device KIND         device.kind: auto, cpu, cuda or cuda-emu\n"
     "  --port N              server.port (0 = any free port)\n"
     "  --host ADDR           server.host (0.0.0.0 in a container)\n"
     "  --threads N           device.threads (cpu and cuda-emu)\n"
     "  --SECTION.KEY VALUE   any key, e.g. --batching.max_batch_size 16\n"
     "  --TGI-OR-VLLM-FLAG    TGI and vLLM flags, e.g. --max-total-tokens 4096,\n"
     "                        --max-num-seqs 16 (the aliases of `v100rt help config`)\n",
     vrt_cmd_serve, vrt_cli_serve_opts, 24,
     "Container runtime flags (--ipc=host, --shm-size, --ulimit, --gpus) are\n"
     "refused: they belong to docker run or the pod spec (README, Kubernetes).\n",
     0, 8, NULL, 0},
    {"plan", "print the GPU memory plan of a config (weights, activations, KV cache)",
     "v100rt plan [--device-memory GIB] [--model-config DIR] CONFIG.lua|MODEL_DIR [FLAGS]",
     "Computes, without a GPU, how a config uses one GPU of --device-memory GiB\n"
     "(default 16, the 16 GB V100): device.memory_fraction of it, minus the\n"
     "weights (fp16, float32, or ~4.5 bits per parameter with model.quantize),\n"
     "minus the activations of\n"
     "one step, leaves the KV cache: how many blocks and tokens, and how many\n"
     "sequences of batching.max_total_tokens fit at once. Exits 1 with the\n"
     "figures and what to change when one sequence does not fit. The model's\n"
     "config.json is read from model.path, or from --model-config DIR. The config\n"
     "is loaded as `serve` loads it: FLAGS (e.g. --max-total-tokens 8192,\n"
     "--quantize awq) and TGI's environment variables apply.\n"
     "\n",
     vrt_cmd_plan, vrt_cli_plan_opts, 24, NULL, 1, 8,
     (const char *const[]){"needs a config file or a model directory"}, 0},
    {"bench", "measure prefill and decode speed of the forward pass (tokens/s, GB/s)",
     "v100rt bench [--batch 1,8,32] [--prompt N] [--steps N] [--device KIND] [--eager] "
     "CONFIG.lua|MODEL_DIR",
     "Loads the model of CONFIG.lua (or MODEL_DIR with the default settings)\n"
     "and, for each batch size, prefills that many sequences of --prompt random\n"
     "tokens (default 128), then times --steps decode steps (default 32) over all\n"
     "of them. Prints a markdown table: prefill and decode tokens/s, ms per decode\n"
     "step, and the bandwidth at which a step reads the weights, also as a share of\n"
     "the device's measured copy bandwidth (a decode step at batch 1 is bound by\n"
     "reading the weights once). The kernels alone: no HTTP, no sampling; `make\n"
     "bench` measures the server.\n"
     "\n",
     vrt_cmd_bench, vrt_cli_bench_opts, 17, NULL, 1, 1,
     (const char *const[]){"needs one config file or model directory"}, 0},
    {"generate", "load a model and stream the continuation of a prompt",
     "v100rt generate [OPTIONS] CONFIG.lua|MODEL_DIR PROMPT",
     "Loads the model of CONFIG.lua (or a model directory with the default\n"
     "settings), prints PROMPT and streams its continuation to stdout; then prints\n"
     "the prompt (prefill) and generation (decode) speeds to stderr. PROMPT \"-\"\n"
     "reads the prompt from stdin. Greedy unless --temperature or a sampling\n"
     "filter is given.\n"
     "\n",
     vrt_cmd_generate, vrt_cli_generate_opts, 28, NULL, 2, 2,
     (const char *const[]){"needs a config file (or model directory) and a prompt",
                           "needs a prompt (use - to read it from stdin)"},
     0},
    {"perplexity", "perplexity of a model over a text file (sliding window)",
     "v100rt perplexity [--context N] [--stride N] [--device KIND] [--quiet] "
     "CONFIG.lua|MODEL_DIR FILE.txt",
     "Tokenizes FILE.txt as the model does (BOS first) and computes the model's\n"
     "perplexity over it with a sliding window, like Hugging Face's strided\n"
     "perplexity: windows of --context tokens start every --stride tokens and each\n"
     "scores only the tokens the previous window did not score, conditioned on the\n"
     "rest of its window. Uses the model, backend (device.kind) and dtype of the\n"
     "config (a model directory: the default settings). Prints progress to stderr\n"
     "and one line to stdout:\n"
     "  perplexity: X (N tokens, W windows of C, stride S, mean nll L)\n"
     "\n",
     vrt_cmd_perplexity, vrt_cli_perplexity_opts, 16, NULL, 2, 2,
     (const char *const[]){"needs a config file (or model directory) and a text file",
                           "needs a text file"},
     0},
    {"quantize", "write a 4-bit GPTQ or AWQ checkpoint of a model (rtn, gptq, awq)",
     "v100rt quantize --method gptq|awq|rtn [--bits 4] [--group-size N] [--act-order] [--sym] "
     "[--calibration FILE.txt] [--samples N] [--seqlen N] [--damp X] [--threads N] [--force] "
     "IN_DIR OUT_DIR",
     "Reads a float16/float32/bfloat16 Hugging Face model directory (Llama or Mistral)\n"
     "and writes a 4-bit checkpoint in a standard on-disk format that AutoGPTQ,\n"
     "AutoAWQ, transformers, vLLM and v100rt load. The linears of every decoder layer\n"
     "are quantized; embeddings, norms and lm_head stay float16; tokenizer files are\n"
     "copied; config.json gets quantization_config.\n"
     "\n"
     "  --method rtn    round-to-nearest per group (no calibration), written in the\n"
     "                  GPTQ v1 format (quantize_config.json, checkpoint_format gptq)\n"
     "  --method gptq   GPTQ: Hessian 2XᵀX/n of each linear's calibration inputs,\n"
     "                  Cholesky inverse, column-by-column error feedback; GPTQ v1\n"
     "  --method awq    AWQ: per-channel scales s = mean|x|^α (20 α in [0, 1]) chosen\n"
     "                  to minimize the output error, folded into the RMSNorm / previous\n"
     "                  linear; AutoAWQ GEMM format (quant_config.json, version gemm)\n",
     vrt_cmd_quantize, vrt_cli_quantize_opts, 24,
     "\n"
     "Calibration runs the model on the cpu backend one layer at a time: layer l's\n"
     "inputs come from layers already quantized. Memory: the input model (mmapped),\n"
     "one float16 copy of its linears, the packed output, and one layer's work\n"
     "(GPTQ: its four K x K float64 Hessians and two more K x K work matrices; AWQ: up\n"
     "to 2048 calibration rows per input).\n",
     2, 2,
     (const char *const[]){"needs an input model directory and an output directory",
                           "needs an output directory"},
     0},
    {"help", "show help for a command, or the config reference (help config)",
     "v100rt help [COMMAND | config]",
     "Without arguments lists the commands. `v100rt help COMMAND` shows one\n"
     "command's usage; `v100rt help config` prints the configuration reference\n"
     "(every key, type, default and meaning, and the TGI/vLLM aliases).\n",
     vrt_cmd_help, NULL, 0, NULL, 0, 0, NULL, 0},
    {"version", "print the version, git revision, compiler and backends", "v100rt version",
     "Prints the version and how this binary was built.\n", vrt_cmd_version, NULL, 0, NULL, 0, 0,
     NULL, 0},
};
const size_t vrt_n_commands = sizeof vrt_commands / sizeof vrt_commands[0];

const vrt_cmd *vrt_cmd_find(const char *name)
{
    for (size_t i = 0; i < vrt_n_commands; i++)
        if (strcmp(vrt_commands[i].name, name) == 0)
            return &vrt_commands[i];
    return NULL;
}

static void list_commands(FILE *f)
{
    fprintf(f, "v100rt %s — LLM inference server and scripting runtime for V100 GPUs\n\n",
            vrt_version());
    fprintf(f, "usage: v100rt <command> [arguments]\n\ncommands:\n");
    for (size_t i = 0; i < vrt_n_commands; i++)
        fprintf(f, "  %-10s %s\n", vrt_commands[i].name, vrt_commands[i].summary);
    fprintf(f,
            "\n`v100rt help <command>` for details; `v100rt help config` for the config keys.\n");
}

static int print_config_reference(void)
{
    vrt_err err = {0};
    lua_State *L = vrt_lua_new(&err);
    if (!L) {
        fprintf(stderr, "v100rt help: %s\n", err.msg);
        return VRT_EXIT_FAIL;
    }
    int rc = VRT_EXIT_OK;
    lua_getglobal(L, "require");
    lua_pushstring(L, "v100rt.config");
    if (vrt_lua_pcall(L, 1, 1, &err) != 0) {
        fprintf(stderr, "v100rt help: %s\n", err.msg);
        rc = VRT_EXIT_FAIL;
        goto out;
    }
    lua_getfield(L, -1, "reference");
    if (vrt_lua_pcall(L, 0, 1, &err) != 0) {
        fprintf(stderr, "v100rt help: %s\n", err.msg);
        rc = VRT_EXIT_FAIL;
        goto out;
    }
    fputs(lua_tostring(L, -1), stdout);
out:
    vrt_lua_close(L);
    return rc;
}

int vrt_cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        list_commands(stdout);
        return VRT_EXIT_OK;
    }
    if (argc > 2)
        return vrt_cli_usage(vrt_cmd_find("help"), "too many arguments");
    if (strcmp(argv[1], "config") == 0)
        return print_config_reference();
    const vrt_cmd *c = vrt_cmd_find(argv[1]);
    if (!c) {
        const char *names[64];
        size_t n = 0;
        for (size_t i = 0; i < vrt_n_commands && n < 63; i++)
            names[n++] = vrt_commands[i].name;
        names[n++] = "config";
        const char *s = vrt_suggest(argv[1], names, n);
        fprintf(stderr, "v100rt help: no command or topic \"%s\"", argv[1]);
        if (s)
            fprintf(stderr, "; did you mean \"%s\"?", s);
        fprintf(stderr, "\n(`v100rt help` lists the commands)\n");
        return VRT_EXIT_USAGE;
    }
    vrt_cli_print_help(c);
    return VRT_EXIT_OK;
}

int vrt_cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return vrt_cli_usage(vrt_cmd_find("version"), "takes no arguments");
    fputs(vrt_build_info(), stdout);
    return VRT_EXIT_OK;
}
