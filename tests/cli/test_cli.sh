#!/usr/bin/env bash
# test_cli.sh — the command line as a user types it: exit codes, messages,
# `check` on good and bad configs, `run`, `help config` vs README, install.
# Prints one line per test and "RESULT passed failed" at the end.
set -u
cd "$(dirname "$0")/../.."
BIN=./v100rt
UNIT=${VRT_UNIT_TESTS:-build/release/unit_tests}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0; failed=0
OUT=$TMP/out; ERR=$TMP/err

. tests/cli/lib.sh

T="no arguments lists the commands, exit 2"
run $BIN; expect_rc 2; expect_out "commands:"; expect_out "check"; pass

T="bench prints a row per batch size on the cpu"
run $BIN bench --device cpu --batch 1,3 --prompt 8 --steps 2 models-trained/kjv-tiny; expect_rc 0
expect_out "| batch | prompt |"; expect_out "|     1 |      8 |"; expect_out "|     3 |      8 |"
expect_out "weights read per decode step: 10.3 MiB"; pass

T="bench refuses a bad batch list and too long a run, with the reason"
run $BIN bench --batch 0 models-trained/kjv-tiny; expect_rc 2; expect_err "--batch is a comma-separated list"
run $BIN bench --device cpu --prompt 500 --steps 64 models-trained/kjv-tiny; expect_rc 2
expect_err "exceed the model's 512 total tokens"; pass

T="unknown command suggests, exit 2"
run $BIN chekc; expect_rc 2; expect_err 'unknown command "chekc"; did you mean "check"?'; pass

T="unknown command without a close match, exit 2"
run $BIN frobnicate; expect_rc 2; expect_err 'unknown command "frobnicate"'; pass

T="help lists only commands that exist"
run $BIN help; expect_rc 0
for c in check mkmodel run generate serve plan bench perplexity quantize help version; do expect_out "  $c "; done
pass

T="help <command> shows usage"
run $BIN help check; expect_rc 0; expect_out "usage: v100rt check"; expect_out "--json"; pass

T="help of an unknown topic suggests, exit 2"
run $BIN help chek; expect_rc 2; expect_err 'did you mean "check"?'; pass

T="version names revision, compiler, lua and backends"
run $BIN version; expect_rc 0; expect_out "v100rt 0."; expect_out "git revision:"; expect_out "compiler:"; expect_out "LuaJIT"; expect_out "backends:"; pass

T="version names the cpu kernel level V100RT_CPU_ISA forces, or why it cannot"
run env V100RT_CPU_ISA=generic $BIN version; expect_rc 0; expect_out "cpu kernels:  generic (best on this CPU:"
run env V100RT_CPU_ISA=sse9 $BIN version; expect_rc 0; expect_out 'V100RT_CPU_ISA="sse9" is not a level'; pass

T="--version and --help work like the commands"
run $BIN --version; expect_rc 0; expect_out "git revision:"
run $BIN --help; expect_rc 0; expect_out "commands:"; pass

T="check the demo config: exit 0, resolved table with origins"
run $BIN check configs/tiny.lua; expect_rc 0
expect_out "model.path"; expect_out '"models-trained/kjv-tiny"'; expect_out "(set)"; expect_out "device.memory_fraction             0.85"
expect_err "configs/tiny.lua: ok"; pass

T="check --json prints the resolved config as JSON"
run $BIN check --json configs/tiny.lua; expect_rc 0
expect_out '"memory_fraction": 0.85'; expect_out '"max_total_tokens": 512'; expect_out '"quantize": null'
head -c1 "$OUT" | grep -q '{' || fail "not a JSON object"; pass

T="every shipped config passes check, except the 2-GPU one (tensor parallelism)"
for f in configs/*.lua; do
  case "$f" in *-2gpu.lua) continue;; esac
  run $BIN check --quiet "$f"; [ "$RC" -eq 0 ] || fail "$f: exit $RC"
done
run $BIN check --quiet configs/llama-2-13b-chat-gptq-2gpu.lua; expect_rc 1
expect_err "parallel.tensor = 2: tensor parallelism is not implemented yet; use parallel.tensor = 1 (one GPU), or quantize (model.quantize) to fit one GPU: see \`v100rt plan\`"
grep -qF -- "--parallel.tensor 1 --device.gpus 0" configs/llama-2-13b-chat-gptq-2gpu.lua || fail "the 2-GPU file does not say how to run it today"
pass

T="seed configs carry the guide's settings"
run $BIN check --json configs/llama-2-13b-chat-gptq-2gpu.lua --parallel.tensor 1 --device.gpus 0; expect_rc 0
expect_out '"tensor": 1'; expect_out '"gpus": [0]'; expect_out '"max_concurrent_requests": 16'; expect_out '"quantize": "gptq"'
run $BIN check --json configs/mistral-7b-awq.lua; expect_out '"quantize": "awq"'; expect_out '"block_size": 16'; expect_out '"swap_space": 4'
pass

T="check: phi-2 and gemma configs are refused once their model directory is there"
mkdir -p "$TMP/phi-2" && cp tests/fixtures/hf_config/phi2/config.json "$TMP/phi-2/"
run env V100RT_MODEL="$TMP/phi-2" $BIN check configs/phi-2.lua; expect_rc 1
expect_err "architectures[0] 'PhiForCausalLM' is not supported (supported: LlamaForCausalLM, MistralForCausalLM)"
expect_err "the loader cannot serve this model"
run $BIN check "$TMP/phi-2"; expect_rc 1; expect_err "PhiForCausalLM"
run env V100RT_MODEL="$TMP/phi-2" $BIN check configs/gemma-2b.lua; expect_rc 1; expect_err "PhiForCausalLM"; pass

T="check: model.quantize must agree with the checkpoint"
run $BIN check --quiet models-trained/kjv-tiny --quantize gptq; expect_rc 1
expect_err 'model.quantize = "gptq" but the checkpoint is not quantized'
run $BIN check --quiet models-trained/kjv-tiny; expect_rc 0; pass

T="check: unknown section modle suggests model, exit 1"
F=$(cfg modle.lua 'return { model = { path = "x" }, modle = {} }')
run $BIN check "$F"; expect_rc 1; expect_err "modle: unknown key"; expect_err 'did you mean "model"?'; pass

T="check: input 5000 > total 4096 names both keys, exit 1"
F=$(cfg tot.lua 'return { model = { path = "x" }, batching = { max_input_tokens = 5000, max_total_tokens = 4096 } }')
run $BIN check "$F"; expect_rc 1; expect_err "batching.max_total_tokens (4096)"; expect_err "batching.max_input_tokens (5000)"; pass

T="check: all errors at once, counted"
F=$(cfg many.lua 'return { modle = {}, cache = { block_size = 12 }, device = { memory_fraction = 2 } }')
run $BIN check "$F"; expect_rc 1; expect_err "4 errors:"; expect_err "cache.block_size"; expect_err "device.memory_fraction"; expect_err "model.path is required"; pass

T="check: Lua syntax error names file and line, exit 1"
F=$(cfg syn.lua $'return {\n  model = { path = "x" \n}')
run $BIN check "$F"; expect_rc 1; expect_err "syn.lua:"; pass

T="check: endless loop in a config is stopped"
F=$(cfg loop.lua 'while true do end')
run timeout 60 $BIN check "$F"; expect_rc 1; expect_err "time budget"; pass

T="check: bad usage exits 2 with a suggestion"
run $BIN check; expect_rc 2; expect_err "usage: v100rt check"
run $BIN check --jsn configs/tiny.lua; expect_rc 2; expect_err "did you mean --json?"; pass

T="check: two paths is an error naming the second; --help exits 0"
run $BIN check a.lua b.lua; expect_rc 1; expect_err 'unexpected argument "b.lua": give one CONFIG.lua or MODEL_DIR'
run $BIN check --help; expect_rc 0; expect_out "usage: v100rt check"; pass

T="check: missing file, exit 1"
run $BIN check /nonexistent/x.lua; expect_rc 1; expect_err "/nonexistent/x.lua"; pass

T="check: pasted TGI flags"
F=$(cfg flags.lua 'return { model = { path = "x" }, flags = "--num-shard 1 --max-total-tokens 8192 --enforce-eager" }')
run $BIN check "$F"; expect_rc 0; expect_out "(config flags --num-shard)"; expect_out "kernels.cuda_graphs                false"; pass

T="check MODEL_DIR [flags]: what serve will run, with each value's origin"
run $BIN check models-trained/kjv-tiny --port 9000 --device cpu --max-total-tokens=256 --enforce-eager; expect_rc 0
expect_out 'model.path                         "models-trained/kjv-tiny" (model directory)'
expect_out "server.port                        9000                     (flag --port)"
expect_out 'device.kind                        "cpu"                    (flag --device)'
expect_out "batching.max_total_tokens          256                      (flag --max-total-tokens)"
expect_out "kernels.cuda_graphs                false                    (flag --enforce-eager)"
F=$(cfg over.lua 'return { model = { path = "models-trained/kjv-tiny" }, server = { port = 8000 } }')
run $BIN check "$F" --server.port 8001; expect_rc 0; expect_out "server.port                        8001                     (flag --server.port)"; pass

T="check: TGI environment variables, below the file, origin shown; a bad one is named"
run env PORT=9100 MAX_TOTAL_TOKENS=300 $BIN check models-trained/kjv-tiny; expect_rc 0
expect_out "server.port                        9100                     (env PORT)"
expect_out "batching.max_total_tokens          300                      (env MAX_TOTAL_TOKENS)"
run env MAX_TOTAL_TOKENS=300 $BIN check configs/tiny.lua; expect_rc 0
expect_out "batching.max_total_tokens          512                      (set)"
expect_err "note: env MAX_TOTAL_TOKENS = 300 is overridden by the config file"
run env CUDA_MEMORY_FRACTION=most $BIN check models-trained/kjv-tiny; expect_rc 1
expect_err "env CUDA_MEMORY_FRACTION (device.memory_fraction): expected a number"
run env MODEL_ID=models-trained/kjv-tiny $BIN check --port 9000; expect_rc 0; expect_out "(env MODEL_ID)"; pass

T="check: container runtime flags point to the README, not 'unknown flag'"
run $BIN check models-trained/kjv-tiny --ipc=host --ulimit memlock=-1 --shm-size 1g; expect_rc 1
expect_err "--ipc=host is a container runtime flag (docker/podman/Kubernetes), not a v100rt flag; see README, Kubernetes"
expect_err "--ulimit memlock=-1 is a container runtime flag"; expect_err "--shm-size 1g is a container runtime flag"
F=$(cfg dock.lua 'return { model = { path = "x" }, flags = "--max-total-tokens 512 --ipc=host" }')
run $BIN check "$F"; expect_rc 1; expect_err "--ipc=host is a container runtime flag"; pass

T="check: tensor parallelism refused from every spelling"
for a in "--num-shard 2" "--tensor-parallel-size 2" "--parallel.tensor 2" "--sharded"; do
  run $BIN check --quiet models-trained/kjv-tiny $a; expect_rc 1; expect_err "tensor parallelism is not implemented yet"
done
run env NUM_SHARD=2 $BIN check --quiet models-trained/kjv-tiny; expect_rc 1; expect_err "(env NUM_SHARD): tensor parallelism"; pass

T="check: several GPUs with tensor 1 warn that only the first is used"
run $BIN check --quiet models-trained/kjv-tiny --device.gpus 1,2; expect_rc 0
expect_err "warning: device.gpus lists 2 GPUs {1, 2} but parallel.tensor = 1: only the first, GPU 1 (device.gpus[1]), is used"
expect_err "one server per GPU"; pass

T="check: loading workers have no effect: a note, not an error"
F=$(cfg lw.lua 'return { model = { path = "x" }, parallel = { loading_workers = 4 } }')
run $BIN check --quiet "$F" --max-parallel-loading-workers 2; expect_rc 0
expect_err "note: parallel.loading_workers ignored: no effect in v100rt"
expect_err "note: --max-parallel-loading-workers ignored: no effect in v100rt"; pass

T="run: script gets args, require v100rt and the FFI API"
F=$(cfg s.lua 'local v = require "v100rt"; local F = require "v100rt.ffi"
print(arg[0]:match("s.lua$"), arg[1], arg[2], v.VERSION == require("ffi").string(F.C.vrt_version()))
os.exit(3)')
run $BIN run "$F" one two; expect_rc 3; expect_out "s.lua	one	two	true"; pass

T="run: a Lua error prints file:line and traceback, exit 1"
F=$(cfg e.lua $'local a = 1\nerror("broken here")')
run $BIN run "$F"; expect_rc 1; expect_err "e.lua:2: broken here"; expect_err "stack traceback"; pass

T="run: no script, exit 2"
run $BIN run; expect_rc 2; expect_err "usage: v100rt run"; pass

T="run examples/bench/serve.lua: bad option exits 2; no server still writes the table"
run $BIN run examples/bench/serve.lua --concurency 4; expect_rc 2; expect_err "unknown option --concurency"
run $BIN run examples/bench/serve.lua --url http://127.0.0.1:9 --concurrency 2 --requests 2 \
  --timeout 2 --max-time 5 --out "$TMP/bench.md" --csv "$TMP/bench.csv"
expect_rc 0; expect_out "| concurrency | requests | req/s | gen tok/s |"; expect_out "| 2 | 2 |"
grep -qF "| 2 | 2 |" "$TMP/bench.md" || fail "no row in --out"
grep -q "^date,url,max_tokens,concurrency" "$TMP/bench.csv" || fail "no CSV header in --csv"
pass

T="mkmodel: bad usage exits 2 with a suggestion"
run $BIN mkmodel; expect_rc 2; expect_err "needs one output directory"; expect_err "usage: v100rt mkmodel"
run $BIN mkmodel --preset tinny "$TMP/m"; expect_rc 2; expect_err 'did you mean "tiny"?'
run $BIN mkmodel --arch mistrl "$TMP/m"; expect_rc 2; expect_err 'did you mean "mistral"?'
run $BIN mkmodel --dtype bf16 "$TMP/m"; expect_rc 2; expect_err '(one of: f16, f32)'
run $BIN mkmodel --dim abc "$TMP/m"; expect_rc 2; expect_err '--dim: expected an integer'
run $BIN mkmodel --seed -1 "$TMP/m"; expect_rc 2; expect_err '--seed: expected a non-negative integer'
run $BIN mkmodel --heads 3 "$TMP/m"; expect_rc 2; expect_err "(--kv-heads) must divide num_attention_heads 3 (--heads)"
run $BIN mkmodel --vocab 512 "$TMP/m"; expect_rc 2; expect_err "use --vocab 3000 or more"
run $BIN mkmodel --sliding-window 64 "$TMP/m"; expect_rc 2; expect_err "add --arch mistral"
run $BIN mkmodel --laers 2 "$TMP/m"; expect_rc 2; expect_err "did you mean --layers?"
run $BIN mkmodel a b; expect_rc 2; expect_err 'unexpected argument "b"'
[ -e "$TMP/m" ] && fail "a usage error created $TMP/m"
pass

T="mkmodel: writes a tiny model, same seed same bytes, refuses to overwrite"
run $BIN mkmodel --seed 3 "$TMP/m1"; expect_rc 0; expect_out "wrote $TMP/m1: LlamaForCausalLM"; expect_out "1.49M parameters"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  [ -s "$TMP/m1/$f" ] || fail "missing $f"; done
cmp -s "$TMP/m1/tokenizer.json" tests/fixtures/tokenizers/sentencepiece/tokenizer.json || fail "tokenizer.json differs from the fixture"
run $BIN mkmodel --seed 3 "$TMP/m2"; expect_rc 0
cmp -s "$TMP/m1/model.safetensors" "$TMP/m2/model.safetensors" || fail "same seed, different weights"
run $BIN mkmodel --seed 3 "$TMP/m1"; expect_rc 1; expect_err "is not empty"; expect_err "--force"
run $BIN mkmodel --seed 4 --force "$TMP/m1"; expect_rc 0
cmp -s "$TMP/m1/model.safetensors" "$TMP/m2/model.safetensors" && fail "--force with seed 4 kept seed 3's weights"
pass

T="mkmodel: mistral, f32, tied, explicit sizes"
run $BIN mkmodel --arch mistral --dtype f32 --tie --dim 64 --layers 1 --heads 4 --kv-heads 1 --ffn 96 --vocab 3072 --head-dim 32 --max-pos 512 --rope-theta 1e6 --sliding-window 128 "$TMP/m3"
expect_rc 0; expect_out "MistralForCausalLM"; expect_out "F32"; expect_out "tied embeddings"
grep -q '"sliding_window": 128' "$TMP/m3/config.json" || fail "sliding_window not 128"
grep -q '"rope_theta": 1000000.0' "$TMP/m3/config.json" || fail "rope_theta not 1000000.0"
grep -q '"torch_dtype": "float32"' "$TMP/m3/config.json" || fail "torch_dtype not float32"
grep -q 'lm_head' "$TMP/m3/model.safetensors" && fail "tied model has lm_head.weight"
pass

T="generate: streams text and prints speeds"
run $BIN mkmodel --seed 3 "$TMP/gen-model"; expect_rc 0
run $BIN generate --max-new-tokens 12 --ignore-eos "$TMP/gen-model" "In the beginning"
expect_rc 0; expect_out "In the beginning"; expect_err "tokens/s"; expect_err "generated: 12 tokens"; expect_err "finish: length"
cp "$OUT" "$TMP/gen1"
run $BIN generate --max-new-tokens 12 --ignore-eos --quiet "$TMP/gen-model" "In the beginning"
expect_rc 0; [ -s "$ERR" ] && fail "--quiet still wrote to stderr"
grep -q "In the beginning" "$OUT" && fail "--quiet echoed the prompt"
echo "In the beginning" | $BIN generate --max-new-tokens 12 --ignore-eos --quiet "$TMP/gen-model" - > "$TMP/gen2" 2>/dev/null
[ -s "$TMP/gen2" ] || fail "prompt from stdin gave nothing"
pass

T="generate: same seed, same text"
run $BIN generate --quiet --temperature 0.9 --seed 5 --max-new-tokens 16 "$TMP/gen-model" "Hello"; cp "$OUT" "$TMP/s1"
run $BIN generate --quiet --temperature 0.9 --seed 5 --max-new-tokens 16 "$TMP/gen-model" "Hello"
cmp -s "$OUT" "$TMP/s1" || fail "seed 5 gave two different texts"
pass

T="generate: bad usage exits 2, bad model or limits exit 1"
run $BIN generate; expect_rc 2; expect_err "usage: v100rt generate"
run $BIN generate "$TMP/gen-model"; expect_rc 2; expect_err "needs a prompt"
run $BIN generate --temprature 1 "$TMP/gen-model" "Hi"; expect_rc 2; expect_err "did you mean --temperature?"
run $BIN generate --top-p 2 "$TMP/gen-model" "Hi"; expect_rc 2; expect_err "--top-p"
run $BIN generate "$TMP/no-such-model" "Hi"; expect_rc 1; expect_err "no-such-model"
run $BIN generate --max-new-tokens 5000 "$TMP/gen-model" "Hi"; expect_rc 1; expect_err "batching.max_total_tokens"
pass

T="plan: Mistral-7B fits a 16 GB V100 in 4-bit, not in fp16; exit codes"
M=tests/fixtures/hf_config/mistral_7b_v01
run $BIN plan --model-config $M configs/mistral-7b-instruct-gptq.lua; expect_rc 0
expect_out "7.24 B parameters"; expect_out "fits at once"
run $BIN plan --model-config $M --device-memory 16 configs/tiny.lua; expect_rc 1
expect_err "the model does not fit"; expect_err 'model.quantize = "awq"'
grep -qF "parallel.tensor" "$ERR" && fail "plan proposes parallel.tensor, which v100rt cannot run"
run $BIN plan --model-config $M --device-memory 32 configs/tiny.lua; expect_rc 0
run $BIN plan --device-memory lots configs/tiny.lua; expect_rc 2; expect_err "--device-memory"
run $BIN plan --model-config "$TMP/none" configs/tiny.lua; expect_rc 1; expect_err "--model-config"
pass

T="plan: device.memory_fraction sets the budget"
F=$(cfg mf.lua 'return { model = { path = "x", quantize = "gptq" }, device = { memory_fraction = 0.5 } }')
run $BIN plan --model-config $M "$F"; expect_rc 0; expect_out "memory_fraction 0.50 -> budget 8.00 GiB per GPU"
F2=$(cfg mf2.lua 'return { model = { path = "x", quantize = "gptq" } }')
run $BIN plan --model-config $M "$F2"; expect_rc 0; expect_out "memory_fraction 0.85 -> budget 13.60 GiB per GPU"
run $BIN plan --model-config $M "$F"; B1=$(grep "^KV cache" "$OUT")
run $BIN plan --model-config $M "$F2"; [ "$(grep "^KV cache" "$OUT")" != "$B1" ] || fail "the KV cache does not change with memory_fraction"
pass

T="plan: parallel.tensor > 1 is refused like check does"
run $BIN plan --model-config $M configs/llama-2-13b-chat-gptq-2gpu.lua; expect_rc 1
expect_err "parallel.tensor = 2: tensor parallelism is not implemented yet"
run env NUM_SHARD=2 $BIN plan --model-config $M configs/mistral-7b-instruct-gptq.lua; expect_rc 1
expect_err "(env NUM_SHARD): tensor parallelism is not implemented yet"; pass

T="plan: flags apply as serve would take them (a key, an alias, --num-shard refused)"
run $BIN plan --model-config $M "$F2" --device.memory_fraction 0.5; expect_rc 0
expect_out "memory_fraction 0.50 -> budget 8.00 GiB per GPU"
run $BIN plan --model-config $M --max-total-tokens 2048 --max-input-tokens 1024 "$F2"; expect_rc 0
expect_out "one sequence     batching.max_total_tokens 2048 = 128 blocks"
run $BIN plan --model-config $M "$F2" --num-shard 2; expect_rc 1
expect_err "parallel.tensor = 2 (flag --num-shard): tensor parallelism is not implemented yet"
run $BIN plan --model-config $M "$F2" --max-totl-tokens 2048; expect_rc 1; expect_err "max-totl-tokens"; pass

T="perplexity: kjv-tiny on the held-out text reproduces transformers' 67.70 (one window)"
# tests/fixtures/kjv/expected.json: perplexity 67.7015 from transformers, one
# window over <s> + text (503 tokens), fp16 weights computed in fp32. The
# paged KV cache is fp16, so 0.1% (as in tests/lua/test_trained.lua).
PPL_CFG=$(cfg ppl.lua 'local v100rt = require "v100rt"
return v100rt.config{ model = { path = "models-trained/kjv-tiny", dtype = "float32" },
  device = { kind = "cpu", threads = 2 },
  batching = { max_input_tokens = 511, max_total_tokens = 512, max_batch_prefill_tokens = 512 } }')
run $BIN perplexity "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 0
expect_out "(502 tokens, 1 window of 512, stride 256"; expect_err "503 tokens (with BOS), context 512"; expect_err "[1/1] 502 tokens scored"
WANT=$(grep -o '"perplexity": [0-9.]*' tests/fixtures/kjv/expected.json | awk '{print $2}')
GOT=$(awk '/^perplexity:/{print $2}' "$OUT")
awk -v g="$GOT" -v w="$WANT" 'BEGIN{d=(g-w)/w; if (d<0) d=-d; exit !(w > 60 && d < 1e-3)}' || fail "perplexity $GOT, transformers $WANT (tolerance 0.1%)"
pass

T="perplexity: a sliding window scores every token once; stride = context gives chunks"
run $BIN perplexity --quiet --context 128 "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 0
expect_out "(502 tokens, 7 windows of 128, stride 64"; [ -s "$ERR" ] && fail "--quiet wrote to stderr"
P128=$(awk '/^perplexity:/{print $2}' "$OUT")
run $BIN perplexity --quiet --context 128 --stride 128 "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 0
expect_out "(499 tokens, 4 windows of 128, stride 128"
# Less context per token cannot be the same number as the full window's.
awk -v a="$P128" -v b="$GOT" 'BEGIN{exit !(a > 30 && a < 120 && a != b)}' || fail "context 128 gave $P128 (full window $GOT)"
pass

T="perplexity: cuda-emu (device.kind from the config) agrees with cpu"
head -c 500 tests/fixtures/kjv/heldout.txt > "$TMP/short.txt"
run $BIN perplexity --quiet "$PPL_CFG" "$TMP/short.txt"; expect_rc 0; PC=$(awk '/^perplexity:/{print $2}' "$OUT")
EMU_CFG=$(cfg ppl-emu.lua "$(sed 's/kind = "cpu"/kind = "cuda-emu"/; s/float32/float16/' "$PPL_CFG")")
if $BIN version | grep -q cuda-emu; then
  run $BIN perplexity --quiet "$EMU_CFG" "$TMP/short.txt"; expect_rc 0; PE=$(awk '/^perplexity:/{print $2}' "$OUT")
  # fp16 weights on cuda-emu vs fp32 on cpu: within 1% (tests/lua/test_trained.lua's bound).
  awk -v a="$PC" -v b="$PE" 'BEGIN{d=(a-b)/a; if (d<0) d=-d; exit !(a > 1 && d < 1e-2)}' || fail "cpu $PC vs cuda-emu $PE"
fi
pass

T="perplexity: bad usage exits 2, bad files exit 1"
run $BIN perplexity; expect_rc 2; expect_err "usage: v100rt perplexity"
run $BIN perplexity "$PPL_CFG"; expect_rc 2; expect_err "needs a text file"
run $BIN perplexity --context 1 "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 2; expect_err "--context: expected an integer in 2.."
run $BIN perplexity --context 1024 "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 2; expect_err "batching.max_total_tokens"
run $BIN perplexity --context 64 --stride 65 "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 2; expect_err "--stride 65 is more than --context 64"
run $BIN perplexity --strid 5 "$PPL_CFG" tests/fixtures/kjv/heldout.txt; expect_rc 2; expect_err "did you mean --stride?"
run $BIN perplexity "$PPL_CFG" "$TMP/no-such.txt"; expect_rc 1; expect_err "no-such.txt"
: > "$TMP/empty.txt"
run $BIN perplexity "$PPL_CFG" "$TMP/empty.txt"; expect_rc 1; expect_err "needs at least 2"
pass

T="quantize: bad usage exits 2 with what to do"
run $BIN quantize; expect_rc 2; expect_err "usage: v100rt quantize"
run $BIN quantize --method gptq models-trained/kjv-tiny; expect_rc 2; expect_err "needs an output directory"
run $BIN quantize models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "needs --method gptq, awq or rtn"
run $BIN quantize --method gtpq models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err 'did you mean "gptq"?'
run $BIN quantize --method rtn --bits 3 models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "--bits: only 4"
run $BIN quantize --method rtn --group-size 0 models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "--group-size"
run $BIN quantize --method gptq models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "--calibration FILE.txt"
run $BIN quantize --method awq --act-order --calibration x models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "--act-order needs --method gptq"
run $BIN quantize --method awq --sym --calibration x models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "--sym"
run $BIN quantize --method rtn --calibration x models-trained/kjv-tiny "$TMP/q0"; expect_rc 2; expect_err "no calibration data"
run $BIN quantize --method gptq --calibration "$TMP/none.txt" models-trained/kjv-tiny "$TMP/q0"; expect_rc 1; expect_err "none.txt"
run $BIN quantize --method rtn "$TMP/no-model" "$TMP/q0"; expect_rc 1; expect_err "no-model"
run $BIN quantize --method rtn models-trained/kjv-tiny models-trained/kjv-tiny; expect_rc 1; expect_err "is the input model directory"
[ -e "$TMP/q0" ] && fail "a failed quantize created $TMP/q0"
pass

# Quantized checkpoints of a small random model, checked against docs/formats.md by
# tests/fixtures/quant_out/check_quant.py (numpy, independent of v100rt).
run $BIN mkmodel --seed 7 "$TMP/qm"
HAVE_NUMPY=0; python3 -c "import numpy" 2>/dev/null && HAVE_NUMPY=1
[ "$HAVE_NUMPY" = 1 ] || echo "skip  quantize output decoded with numpy (python3 numpy not installed)"
qcheck() { # qcheck DIR: structure (always), numpy decode (when numpy is there)
  [ -s "$1/model.safetensors" ] && [ -s "$1/tokenizer.json" ] && [ -s "$1/config.json" ] || fail "$1: files missing"
  grep -q '"quantization_config"' "$1/config.json" || fail "$1: no quantization_config"
  if [ "$HAVE_NUMPY" = 1 ]; then
    python3 tests/fixtures/quant_out/check_quant.py "$TMP/qm" "$1" >"$TMP/qc.out" 2>&1 || fail "$(cat "$TMP/qc.out")"
  fi
}
for args in "rtn" "rtn --sym --group-size 32" "gptq" "gptq --act-order --sym --group-size 64" "gptq --group-size -1" "awq --group-size 64" "awq --group-size 8"; do
  T="quantize --method $args: standard files that decode by docs/formats.md"
  D="$TMP/q-$(echo "$args" | tr -c 'a-z0-9' '_')"
  CAL=""; case "$args" in rtn*) ;; *) CAL="--calibration tests/fixtures/kjv/heldout.txt --samples 3 --seqlen 64";; esac
  run $BIN quantize --quiet --method $args $CAL "$TMP/qm" "$D"; expect_rc 0; expect_out "wrote $D"
  qcheck "$D"
  case "$args" in
    rtn*|gptq*) grep -q '"quant_method":[[:space:]]*"gptq"' "$D/quantize_config.json" || fail "quantize_config.json: quant_method"
                grep -q '"checkpoint_format":[[:space:]]*"gptq"' "$D/config.json" || fail "config.json: checkpoint_format";;
    awq*) grep -q '"version":[[:space:]]*"GEMM"' "$D/quant_config.json" || fail "quant_config.json: version"
          grep -q '"version":[[:space:]]*"gemm"' "$D/config.json" || fail "config.json: version";;
  esac
  case "$args" in gptq*) expect_out "calibration 3 x 64 tokens";; esac
  pass
done
T="quantize --method awq: a linear the format cannot hold stays float16, listed in modules_to_not_convert"
# mkmodel's tiny model has intermediate_size 344: 344 % 64 != 0, so down_proj is kept.
grep -q '"model.layers.0.mlp.down_proj"' "$TMP/q-awq___group_size_64_/config.json" || fail "down_proj not in modules_to_not_convert"
grep -q 'modules_to_not_convert":[[:space:]]*null' "$TMP/q-awq___group_size_8_/config.json" || fail "group size 8 should quantize every linear"
pass

T="quantize: refuses a non-empty OUT_DIR unless --force"
run $BIN quantize --method rtn "$TMP/qm" "$TMP/q-rtn_"; expect_rc 1; expect_err "not empty"; expect_err "--force"
run $BIN quantize --quiet --method rtn --force "$TMP/qm" "$TMP/q-rtn_"; expect_rc 0
pass

T="help mkmodel documents the presets"
run $BIN help mkmodel; expect_rc 0; expect_out "usage: v100rt mkmodel"; expect_out "tinyllama"; expect_out "--sliding-window"; pass

T="help config prints the reference and README embeds it verbatim"
run $BIN help config; expect_rc 0; expect_out "batching.max_input_tokens"; expect_out "cuda_memory_fraction"
awk '/<!-- config-reference:begin -->/{f=1;next} /<!-- config-reference:end -->/{f=0} f' README.md > "$TMP/readme_ref"
diff -q "$OUT" "$TMP/readme_ref" >/dev/null || fail "README.md config reference differs from \`v100rt help config\` (run: make readme)"
pass

T="installed binary finds its Lua modules and writes a model"
run make --no-print-directory install PREFIX="$TMP/prefix"
expect_rc 0
run "$TMP/prefix/bin/v100rt" check --quiet "$TMP/prefix/share/v100rt/configs/tiny.lua"; expect_rc 0
(cd "$TMP" && "$TMP/prefix/bin/v100rt" mkmodel "$TMP/inst-model" >"$OUT" 2>"$ERR"); RC=$?; expect_rc 0
cmp -s "$TMP/inst-model/tokenizer_config.json" tests/fixtures/tokenizers/sentencepiece/tokenizer_config.json || fail "installed mkmodel: tokenizer_config.json differs"
pass

T="the unit test runner isolates crashes, hangs and failures"
run env VRT_TEST_SELFCHECK=1 VRT_TEST_TIMEOUT=1 "$UNIT" selfcheck_
expect_rc 1; expect_out "RESULT 1 3"; expect_out "killed by signal"; expect_out "timed out"; expect_err "1 + 1 == 3: 2 != 3"
pass

echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
