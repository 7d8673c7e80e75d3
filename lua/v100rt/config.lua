-- v100rt.config — the configuration schema, defaults, aliases and validation.
--
-- Every key an operator can set lives in SCHEMA below, with its type,
-- default, bounds and a one-line doc. The defaults are the settings of the
-- V100 operations guide this project grew from: memory fraction 0.85, 2048 input /
-- 4096 total tokens, 4096 prefill tokens per batch, block size 16, 4 GiB
-- swap, 8 concurrent requests per GPU. TGI and vLLM flag names are accepted
-- as aliases (ALIASES) so that an operator can paste their flags.
--
-- resolve(t) checks a config table and returns the resolved table (every key
-- present), where each value came from, and a list of all errors found. The
-- C side (runtime/lua/config.c) calls load_into() to copy the resolved values
-- into the plain C struct vrt_config; C never walks Lua tables after that.

local M = {}

local MB = 1000 * 1000

-- Type names used in the schema:
--   string, integer, number, boolean, enum (values = {...}),
--   list_integer, list_string, size (bytes: a number or "2MB", "512KiB"),
--   policy (a built-in name or a table of hook functions),
--   template (a built-in chat template name or a Lua function),
--   env_map (a table NAME = "value" of environment variables).
local SECTIONS = {
  { name = "model", doc = "The model to serve.", keys = {
    { "path", "string", nil, "Hugging Face model directory (config.json, *.safetensors, tokenizer.json). Relative paths are relative to the current directory.", required = true },
    { "dtype", "enum", "float16", "Activation and weight dtype on the device. bf16 checkpoints are converted to float16 at load (the V100 has no bf16).", values = { "float16", "float32", "auto" } },
    { "quantize", "enum", nil, "Quantized checkpoint format: nil (none), \"gptq\" or \"awq\". Must agree with the checkpoint.", values = { "gptq", "awq" } },
    { "max_model_len", "integer", nil, "Longest sequence (prompt + generated) the model may see; nil = the model's max_position_embeddings. Sets the default of batching.max_total_tokens.", min = 16, max = 1048576 },
    { "tokenizer", "string", nil, "Directory with tokenizer.json if not the model directory." },
    { "name", "string", nil, "Model name reported by /info and /v1/models; nil = the first of server.served_model_names, else the model directory's base name." },
    { "chat_template", "template", "auto", "Chat template for /v1/chat/completions: \"auto\" (from the model), \"llama-2\", \"mistral\", \"chatml\", \"gemma\", \"phi\", or a Lua function(messages) returning the prompt string." },
    { "trust_remote_code", "boolean", false, "Accepted for compatibility; v100rt never runs Python code from a model repository.", c = false },
  } },
  { name = "device", doc = "Where the model runs.", keys = {
    { "kind", "enum", "auto", "Backend: \"auto\" (cuda when a GPU is present, else cpu), \"cpu\", \"cuda\", or \"cuda-emu\" (the CUDA kernels run on the CPU; for tests).", values = { "auto", "cpu", "cuda", "cuda-emu" } },
    { derived = true, "gpus", "list_integer", "{0}", "CUDA device ordinals (as nvidia-smi numbers them, after CUDA_VISIBLE_DEVICES). The model runs on the first, device.gpus[1]; listing more is accepted for when tensor parallelism lands, and `check` says that only the first is used.", min = 0, max = 63, max_len = 16 },
    { "memory_fraction", "number", 0.85, "Fraction of each GPU's free memory v100rt may use (weights + activations + KV cache); the rest is left for the driver and other processes.", min = 0, min_open = true, max = 1 },
    { "threads", "integer", 0, "CPU threads for the cpu and cuda-emu backends; 0 = all cores.", min = 0, max = 1024 },
  } },
  { name = "parallel", doc = "Sharding over the GPUs of one node (tensor parallelism: not implemented yet).", keys = {
    { "tensor", "integer", 1, "Tensor-parallel size. Only 1 runs today: tensor parallelism is not implemented yet, and a larger value is refused by `check` and at startup (quantize with model.quantize to fit one GPU: see `v100rt plan`).", min = 1, max = 16 },
  } },
  { name = "cache", doc = "The paged KV cache.", keys = {
    { "block_size", "integer", 16, "Tokens per KV cache block: 8, 16 or 32.", values = { 8, 16, 32 } },
    { "swap_space", "number", 4, "CPU memory in GiB per GPU for KV blocks of preempted sequences; 0 = preempt by recomputation.", min = 0, max = 1024 },
    { "prefix_caching", "boolean", true, "Share the KV blocks of identical prompt prefixes between requests (full blocks only)." },
    { "num_blocks", "integer", nil, "Override the number of KV blocks per GPU; nil = derived from the memory plan (recommended).", min = 1 },
  } },
  { name = "batching", doc = "Request limits and continuous batching.", keys = {
    { derived = true, "max_input_tokens", "integer", "min(2048, max_total_tokens - 1)", "Longest prompt in tokens; longer prompts get 422 unless the request asks to truncate.", min = 1 },
    { derived = true, "max_total_tokens", "integer", "model.max_model_len or 4096", "Longest prompt + max_new_tokens of one request; also the memory plan's worst case for one sequence.", min = 2 },
    { "max_batch_prefill_tokens", "integer", 4096, "Most prompt tokens prefilled in one step (across requests).", min = 1 },
    { derived = true, "max_concurrent_requests", "integer", "8 x parallel.tensor (8 per GPU the model runs on)", "Requests in flight (running + waiting); more get 429.", min = 1 },
    { "max_batch_size", "integer", nil, "Most sequences in one step (decodes and prefills together; TGI --max-batch-size, vLLM --max-num-seqs); nil = limited by KV blocks and max_concurrent_requests.", min = 1 },
    { "max_waiting_tokens", "integer", 20, "Decode steps a waiting prefill may be deferred before it is forced into the batch (TGI).", min = 0 },
    { "waiting_served_ratio", "number", 1.2, "With requests running, new ones join the batch before max_waiting_tokens steps have passed only when at least this many times as many wait as run (TGI --waiting-served-ratio); 0 = whenever any waits.", min = 0, max = 1000 },
    { "chunked_prefill", "boolean", true, "Split long prompts into chunks of at most max_batch_prefill_tokens; when false, max_batch_prefill_tokens must be >= max_input_tokens." },
    { "preemption", "enum", "auto", "When KV blocks run out: \"swap\" the victim to CPU swap space, \"recompute\" it later, or \"auto\" (swap when cache.swap_space > 0).", values = { "auto", "swap", "recompute" } },
    { "policy", "policy", "fcfs", "Scheduling policy: \"fcfs\", \"priority\", \"fair\" (per tenant / API key), or a table of Lua hooks {admit=, priority=, on_step=, pick_victim=}." },
  } },
  { name = "server", doc = "The HTTP server (TGI and OpenAI APIs).", keys = {
    { "host", "string", "127.0.0.1", "Address to listen on; \"0.0.0.0\" for all interfaces (e.g. in a Kubernetes pod)." },
    { "port", "integer", 8080, "TCP port; 0 picks a free port (printed at startup).", min = 0, max = 65535 },
    { "api_keys", "list_string", {}, "Accepted bearer tokens (Authorization: Bearer KEY); empty = no auth. V100RT_API_KEYS (comma-separated) adds more." },
    { "payload_limit", "size", 2 * MB, "Largest request body in bytes (a number, or a string like \"2MB\"); larger gets 413.", min = 1024, max = 1024 * MB },
    { "max_connections", "integer", 1024, "Open connections accepted at once; more are closed at accept.", min = 1, max = 1000000 },
    { "read_timeout", "number", 30, "Seconds to receive a request's headers and body before 408 (slowloris guard).", min = 0.1, max = 3600 },
    { "keep_alive_timeout", "number", 60, "Seconds an idle keep-alive connection stays open.", min = 0, max = 86400 },
    { "cors_allow_origin", "list_string", {}, "Origins allowed by CORS (\"*\" for any); empty = no CORS headers." },
    { "served_model_names", "list_string", {}, "More names for the model (vLLM --served-model-name): /v1/models lists model.name and these, and a response reports the name its request used. The first one is the reported name when model.name is nil.", max_len = 32 },
    { "strict_model_name", "boolean", false, "false: an OpenAI request's \"model\" may be anything (TGI; clients send placeholders such as \"tgi\"); true: it must be a listed name or model.path, else 404 (vLLM)." },
  } },
  { name = "kernels", doc = "Kernel choices on the GPU.", keys = {
    { "custom", "boolean", true, "Use v100rt's fused CUDA kernels; false routes every op with a simpler fallback to it (TGI's --disable-custom-kernels)." },
    { "cuda_graphs", "boolean", true, "Capture decode steps in CUDA graphs; false = eager launches (vLLM's --enforce-eager)." },
  } },
  { name = "nccl", doc = "NCCL settings for multi-GPU, applied to the environment before NCCL starts. A variable already set in the environment wins.", keys = {
    { "debug", "enum", nil, "NCCL_DEBUG; the guide uses \"INFO\" when diagnosing.", values = { "VERSION", "WARN", "INFO", "TRACE" }, env = "NCCL_DEBUG" },
    { "debug_subsys", "string", nil, "NCCL_DEBUG_SUBSYS, e.g. \"ALL\" or \"INIT,P2P\".", env = "NCCL_DEBUG_SUBSYS" },
    { "p2p_disable", "boolean", false, "NCCL_P2P_DISABLE; set true when the GPUs sit on separate PCIe switches.", env = "NCCL_P2P_DISABLE" },
    { "p2p_level", "string", "NVL", "NCCL_P2P_LEVEL: how far peer-to-peer may reach (LOC, NVL, PIX, PXB, PHB, SYS).", env = "NCCL_P2P_LEVEL" },
    { "ib_disable", "boolean", false, "NCCL_IB_DISABLE; set true when InfiniBand is not configured properly.", env = "NCCL_IB_DISABLE" },
    { "shm_disable", "boolean", false, "NCCL_SHM_DISABLE; keep false and give the pod enough /dev/shm.", env = "NCCL_SHM_DISABLE" },
    { "socket_ifname", "string", "^lo,docker", "NCCL_SOCKET_IFNAME: network interfaces NCCL may use (\"eth0\", or ^ to exclude).", env = "NCCL_SOCKET_IFNAME" },
    { "extra", "env_map", {}, "More NCCL_* variables as a table, e.g. {NCCL_ALGO = \"Ring\"}." },
  } },
  { name = "logging", doc = "Logs (to stderr).", keys = {
    { "level", "enum", "info", "Least severe level printed.", values = { "debug", "info", "warn", "error" } },
    { "format", "enum", "text", "\"text\" lines or \"json\" lines (one object per line, for log collectors).", values = { "text", "json" } },
  } },
}

-- TGI and vLLM flag names → key paths. `invert` flips a boolean;
-- `sharded` is special (see apply_aliases).
local ALIASES = {
  { "cuda_memory_fraction", "device.memory_fraction", "TGI --cuda-memory-fraction" },
  { "gpu_memory_utilization", "device.memory_fraction", "vLLM --gpu-memory-utilization" },
  { "max_input_length", "batching.max_input_tokens", "TGI --max-input-length" },
  { "max_input_tokens", "batching.max_input_tokens", "TGI --max-input-tokens" },
  { "max_total_tokens", "batching.max_total_tokens", "TGI --max-total-tokens" },
  { "max_batch_prefill_tokens", "batching.max_batch_prefill_tokens", "TGI --max-batch-prefill-tokens" },
  { "max_num_batched_tokens", "batching.max_batch_prefill_tokens", "vLLM --max-num-batched-tokens" },
  { "max_concurrent_requests", "batching.max_concurrent_requests", "TGI --max-concurrent-requests" },
  { "max_batch_size", "batching.max_batch_size", "TGI --max-batch-size" },
  { "max_num_seqs", "batching.max_batch_size", "vLLM --max-num-seqs" },
  { "max_waiting_tokens", "batching.max_waiting_tokens", "TGI --max-waiting-tokens" },
  { "waiting_served_ratio", "batching.waiting_served_ratio", "TGI --waiting-served-ratio" },
  { "enable_chunked_prefill", "batching.chunked_prefill", "vLLM --enable-chunked-prefill" },
  { "num_shard", "parallel.tensor", "TGI --num-shard" },
  { "tensor_parallel_size", "parallel.tensor", "vLLM --tensor-parallel-size" },
  { "sharded", "parallel.tensor", "TGI --sharded (true = shard over all device.gpus)", sharded = true },
  { "block_size", "cache.block_size", "vLLM --block-size" },
  { "swap_space", "cache.swap_space", "vLLM --swap-space" },
  { "enable_prefix_caching", "cache.prefix_caching", "vLLM --enable-prefix-caching" },
  { "num_gpu_blocks_override", "cache.num_blocks", "vLLM --num-gpu-blocks-override" },
  { "max_model_len", "model.max_model_len", "vLLM --max-model-len" },
  { "quantize", "model.quantize", "TGI --quantize" },
  { "quantization", "model.quantize", "vLLM --quantization" },
  { "model_id", "model.path", "TGI --model-id" },
  { "dtype", "model.dtype", "TGI/vLLM --dtype" },
  { "served_model_name", "server.served_model_names", "vLLM --served-model-name", list = true },
  { "tokenizer", "model.tokenizer", "vLLM --tokenizer" },
  { "trust_remote_code", "model.trust_remote_code", "TGI/vLLM --trust-remote-code" },
  { "enforce_eager", "kernels.cuda_graphs", "vLLM --enforce-eager", invert = true },
  { "disable_custom_kernels", "kernels.custom", "TGI --disable-custom-kernels", invert = true },
  { "hostname", "server.host", "TGI --hostname" },
  { "host", "server.host", "vLLM --host" },
  { "port", "server.port", "TGI/vLLM --port" },
  { "payload_limit", "server.payload_limit", "TGI --payload-limit" },
  { "api_key", "server.api_keys", "vLLM --api-key", list = true },
  { "cors_allow_origin", "server.cors_allow_origin", "TGI --cors-allow-origin", list = true },
  { "json_output", "logging.format", "TGI --json-output (true = json)", json = true },
}

-- Flags that exist in TGI/vLLM but mean nothing here; accepted with a note so
-- pasted flag sets keep working.
-- `value` says whether the flag takes a value (for parsing a command line).
local LOADING_NOTE = "no effect in v100rt: the weights are memory-mapped and loaded by one thread "
  .. "(loading is bound by the disk, not by a worker count)"
local IGNORED_FLAGS = {
  disable_flash_attention = { "v100rt never uses FlashAttention (it needs sm_80); its own attention kernels run on sm_70" },
  disable_log_stats = { "statistics go to /metrics" },
  max_parallel_loading_workers = { LOADING_NOTE, value = true },
}

-- Keys that were in the schema and are gone: written in a config they give
-- a note, not an error, so an older config keeps loading.
local REMOVED_KEYS = {
  ["parallel.loading_workers"] = LOADING_NOTE,
}

-- v100rt's own command-line flags beyond the aliases (--port and --host are
-- aliases). Any schema key is also a flag: --section.key VALUE.
local OWN_FLAGS = {
  device = { "device.kind", "--device KIND: cpu, cuda, cuda-emu or auto" },
  threads = { "device.threads", "--threads N: CPU threads of the cpu and cuda-emu backends" },
}

-- Flags of container runtimes (docker run, podman, a Kubernetes pod spec)
-- that operators paste by habit next to TGI/vLLM flags; true = takes a value.
local CONTAINER_FLAGS = {
  ipc = true, ulimit = true, shm_size = true, gpus = true, runtime = true, privileged = false,
  network = true, net = true, cap_add = true, security_opt = true, volume = true, mount = true,
  publish = true, env = true, env_file = true, rm = false, restart = true, pid = true,
  detach = false, interactive = false, tty = false, entrypoint = true,
}

-- TGI reads each of its launcher flags from an environment variable of the
-- same name in capitals (clap `env`): MAX_TOTAL_TOKENS is --max-total-tokens.
-- These are the ones that map onto v100rt keys, through the aliases.
local ENV_ALIASES = {
  "model_id", "quantize", "num_shard", "sharded", "dtype", "trust_remote_code",
  "max_input_tokens", "max_input_length", "max_total_tokens", "max_batch_prefill_tokens",
  "max_batch_size", "max_waiting_tokens", "waiting_served_ratio", "max_concurrent_requests", "cuda_memory_fraction",
  "disable_custom_kernels", "hostname", "port", "payload_limit", "json_output",
  "cors_allow_origin", "api_key",
}
-- TGI variables that change nothing here: read with a note.
local IGNORED_ENV = {
  MAX_BATCH_TOTAL_TOKENS = "v100rt sizes the KV cache from the memory plan (cache.num_blocks overrides it)",
  MAX_PARALLEL_LOADING_WORKERS = LOADING_NOTE,
  DISABLE_FLASH_ATTENTION = IGNORED_FLAGS.disable_flash_attention[1],
}

-- Indexes.
local SECTION_BY_NAME, KEY_BY_PATH, ALIAS_BY_NAME = {}, {}, {}
for _, sec in ipairs(SECTIONS) do
  SECTION_BY_NAME[sec.name] = sec
  sec.by_key = {}
  for _, e in ipairs(sec.keys) do
    e.key, e.type, e.default, e.doc = e[1], e[2], e[3], e[4]
    e.path = sec.name .. "." .. e.key
    sec.by_key[e.key] = e
    KEY_BY_PATH[e.path] = e
  end
end
for _, a in ipairs(ALIASES) do
  a.name, a.path, a.doc = a[1], a[2], a[3]
  ALIAS_BY_NAME[a.name] = a
end

M.SECTIONS, M.ALIASES, M.KEY_BY_PATH = SECTIONS, ALIASES, KEY_BY_PATH

-- The refusal of tensor parallelism (what names it: a key, alias, flag or
-- variable); also used by `v100rt plan`.
function M.tp_refusal(what)
  return what .. ": tensor parallelism is not implemented yet; use parallel.tensor = 1 (one GPU), "
    .. "or quantize (model.quantize) to fit one GPU: see `v100rt plan`"
end
M.ENV_ALIASES, M.IGNORED_FLAGS, M.REMOVED_KEYS = ENV_ALIASES, IGNORED_FLAGS, REMOVED_KEYS

-- Defaults that depend on other values are written as strings in the
-- schema (for the docs) and computed here, in dependency order.
local function derive_defaults(r, given)
  local d, p, b = r.device, r.parallel, r.batching
  if not given["device.gpus"] then
    d.gpus = {}
    for i = 1, math.max(p.tensor or 1, 1) do d.gpus[i] = i - 1 end
  end
  if not given["batching.max_total_tokens"] then
    b.max_total_tokens = r.model.max_model_len or 4096
  end
  if not given["batching.max_input_tokens"] then
    b.max_input_tokens = math.max(1, math.min(2048, b.max_total_tokens - 1))
  end
  if not given["batching.max_concurrent_requests"] then
    b.max_concurrent_requests = 8 * math.max(p.tensor or 1, 1)
  end
end

-- Cross-field rules. Each adds errors naming every key involved. A rule runs
-- only when the keys it reads are valid themselves (clean), so one typo does
-- not cause a second, misleading error.
local function cross_check(r, add, clean, origin, notes)
  local b, c, d, p = r.batching, r.cache, r.device, r.parallel
  if clean("batching.max_total_tokens", "batching.max_input_tokens", "model.max_model_len")
    and b.max_total_tokens <= b.max_input_tokens then
    add("batching.max_total_tokens",
      ("batching.max_total_tokens (%d) must be greater than batching.max_input_tokens (%d), "
        .. "or no token could be generated: raise max_total_tokens or lower max_input_tokens")
        :format(b.max_total_tokens, b.max_input_tokens))
  end
  if clean("batching.chunked_prefill", "batching.max_batch_prefill_tokens", "batching.max_input_tokens")
    and not b.chunked_prefill and b.max_batch_prefill_tokens < b.max_input_tokens then
    add("batching.max_batch_prefill_tokens",
      ("batching.max_batch_prefill_tokens (%d) must be at least batching.max_input_tokens (%d) "
        .. "when batching.chunked_prefill is false: raise it, lower max_input_tokens, or enable chunked_prefill")
        :format(b.max_batch_prefill_tokens, b.max_input_tokens))
  end
  if clean("model.max_model_len", "batching.max_total_tokens")
    and r.model.max_model_len and b.max_total_tokens > r.model.max_model_len then
    add("batching.max_total_tokens",
      ("batching.max_total_tokens (%d) is larger than model.max_model_len (%d): lower it or raise max_model_len")
        :format(b.max_total_tokens, r.model.max_model_len))
  end
  if clean("parallel.tensor") and p.tensor > 1 then
    local o = origin["parallel.tensor"]
    add("parallel.tensor", M.tp_refusal(("parallel.tensor = %d%s"):format(p.tensor,
      (o and o ~= "set" and o ~= "default") and (" (" .. o .. ")") or "")))
  elseif clean("parallel.tensor", "device.gpus") and #d.gpus > 1 then
    notes[#notes + 1] = ("warning: device.gpus lists %d GPUs {%s} but parallel.tensor = 1: only the first, "
      .. "GPU %d (device.gpus[1]), is used. To use all of them, run one server per GPU "
      .. "(device.gpus = {N} or --device.gpus N) as replicas behind one Service; tensor parallelism is planned")
      :format(#d.gpus, table.concat(d.gpus, ", "), d.gpus[1])
  end
  local seen = {}
  for _, g in ipairs(d.gpus) do
    if seen[g] then
      add("device.gpus", ("device.gpus lists GPU %d twice"):format(g))
    end
    seen[g] = true
  end
  if clean("batching.max_batch_size", "batching.max_concurrent_requests", "device.gpus")
    and b.max_batch_size and b.max_batch_size > b.max_concurrent_requests then
    add("batching.max_batch_size",
      ("batching.max_batch_size (%d) is larger than batching.max_concurrent_requests (%d): "
        .. "no batch could ever be that full"):format(b.max_batch_size, b.max_concurrent_requests))
  end
  if clean("batching.preemption", "cache.swap_space") and b.preemption == "swap" and c.swap_space == 0 then
    add("batching.preemption",
      "batching.preemption is \"swap\" but cache.swap_space is 0: give swap space (GiB) or use \"recompute\"")
  end
  if clean("model.dtype", "model.quantize") and r.model.dtype == "float32" and r.model.quantize then
    add("model.dtype", "model.dtype = \"float32\" cannot be combined with model.quantize; use \"float16\"")
  end
end

---------------------------------------------------------------------------
-- Helpers

-- Edit distance counting a swap of two neighbours as one edit (optimal
-- string alignment), so "cdua" is closer to "cuda" than to "cpu".
local function edit_distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

-- Closest of candidates to word, if close enough to be a plausible typo.
local function suggest(word, candidates)
  local best, bestd
  for _, c in ipairs(candidates) do
    local dist = edit_distance(word, c)
    if not bestd or dist < bestd then best, bestd = c, dist end
  end
  if best and bestd <= math.max(2, math.floor(#word / 3)) then return best end
  return nil
end
M.suggest = suggest

local function fmt_value(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = fmt_value(x) end
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "number" then keys[#keys + 1] = k end
    end
    table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
    for _, k in ipairs(keys) do
      parts[#parts + 1] = tostring(k) .. " = " .. (type(v[k]) == "function" and "function" or fmt_value(v[k]))
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end
M.fmt_value = fmt_value

local function is_integer(v) return type(v) == "number" and v == math.floor(v) and v > -2^53 and v < 2^53 end

local SIZE_UNITS = { [""] = 1, b = 1, kb = 1e3, mb = 1e6, gb = 1e9, kib = 1024, mib = 1024^2, gib = 1024^3 }

-- Parses a size: a number of bytes or "2MB", "512 KiB", "1.5GB".
local function parse_size(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local num, unit = v:lower():match("^%s*([%d%.]+)%s*(%a*)%s*$")
  num = tonumber(num)
  if not num or not SIZE_UNITS[unit] then return nil end
  return math.floor(num * SIZE_UNITS[unit] + 0.5)
end

local HOOKS = { admit = true, priority = true, on_step = true, pick_victim = true, name = true }
local POLICIES = { "fcfs", "priority", "fair" }
local TEMPLATES = { "auto", "llama-2", "mistral", "chatml", "gemma", "phi" }

local function in_list(v, list)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function list_str(list)
  local t = {}
  for i, x in ipairs(list) do t[i] = fmt_value(x) end
  return table.concat(t, ", ")
end

-- Checks one value against its schema entry; returns the normalized value
-- or nil plus an error message.
local function check_value(e, v)
  local t = e.type
  local function range(x)
    if e.min and (x < e.min or (e.min_open and x == e.min)) then
      return nil, ("%s is out of range: must be %s %s"):format(fmt_value(x), e.min_open and ">" or ">=", fmt_value(e.min))
    end
    if e.max and x > e.max then
      return nil, ("%s is out of range: must be <= %s"):format(fmt_value(x), fmt_value(e.max))
    end
    return x
  end
  if t == "string" then
    if type(v) ~= "string" then return nil, ("expected a string, got %s %s"):format(type(v), fmt_value(v)) end
    if #v > 4000 then return nil, "string is longer than 4000 bytes" end
    return v
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return nil, ("expected true or false, got %s %s"):format(type(v), fmt_value(v)) end
    return v
  elseif t == "integer" or t == "number" then
    if type(v) ~= "number" or v ~= v then return nil, ("expected a number, got %s %s"):format(type(v), fmt_value(v)) end
    if t == "integer" and not is_integer(v) then return nil, ("expected an integer, got %s"):format(fmt_value(v)) end
    if e.values and not in_list(v, e.values) then
      return nil, ("%s is not allowed: must be one of %s"):format(fmt_value(v), list_str(e.values))
    end
    return range(v)
  elseif t == "enum" then
    if type(v) ~= "string" then return nil, ("expected one of %s, got %s %s"):format(list_str(e.values), type(v), fmt_value(v)) end
    for _, x in ipairs(e.values) do
      if x:lower() == v:lower() then return x end
    end
    if e.path == "model.dtype" and (v == "bfloat16" or v == "bf16") then
      return nil, "the V100 has no bf16: use \"float16\" (bf16 checkpoints are converted to float16 at load)"
    end
    local s = suggest(v, e.values)
    return nil, ("%s is not one of %s%s"):format(fmt_value(v), list_str(e.values), s and ("; did you mean " .. fmt_value(s) .. "?") or "")
  elseif t == "size" then
    local n = parse_size(v)
    if not n then return nil, ("expected a size in bytes (a number or a string like \"2MB\"), got %s"):format(fmt_value(v)) end
    if not is_integer(n) then return nil, ("expected a whole number of bytes, got %s"):format(fmt_value(v)) end
    return range(n)
  elseif t == "list_integer" or t == "list_string" then
    if type(v) == (t == "list_integer" and "number" or "string") then v = { v } end
    if type(v) ~= "table" then return nil, ("expected a list, got %s %s"):format(type(v), fmt_value(v)) end
    local n = 0
    for k in pairs(v) do
      n = n + 1
      if type(k) ~= "number" or not is_integer(k) or k < 1 or k > #v then
        return nil, ("expected a list like {a, b}, found key %s"):format(fmt_value(k))
      end
    end
    if e.max_len and n > e.max_len then return nil, ("at most %d entries, got %d"):format(e.max_len, n) end
    local out = {}
    for i = 1, n do
      local x = v[i]
      if t == "list_integer" then
        if not is_integer(x) then return nil, ("entry %d: expected an integer, got %s"):format(i, fmt_value(x)) end
        local ok, msg = range(x)
        if not ok then return nil, ("entry %d: %s"):format(i, msg) end
      elseif type(x) ~= "string" then
        return nil, ("entry %d: expected a string, got %s"):format(i, fmt_value(x))
      end
      out[i] = x
    end
    return out
  elseif t == "policy" then
    if type(v) == "string" then
      if in_list(v, POLICIES) then return v end
      local s = suggest(v, POLICIES)
      return nil, ("%s is not a built-in policy (%s)%s; or give a table of hooks {admit=, priority=, on_step=, pick_victim=}")
        :format(fmt_value(v), list_str(POLICIES), s and ("; did you mean " .. fmt_value(s) .. "?") or "")
    end
    if type(v) ~= "table" then return nil, ("expected a policy name or a table of hook functions, got %s"):format(type(v)) end
    local any = false
    for k, f in pairs(v) do
      if not HOOKS[k] then
        local s = suggest(tostring(k), { "admit", "priority", "on_step", "pick_victim" })
        return nil, ("unknown hook %s%s; hooks are admit, priority, on_step, pick_victim")
          :format(fmt_value(k), s and ("; did you mean " .. fmt_value(s) .. "?") or "")
      end
      if k == "name" then
        if type(f) ~= "string" then return nil, "hook table field name must be a string" end
      elseif type(f) ~= "function" then
        return nil, ("hook %s must be a function, got %s"):format(k, type(f))
      else
        any = true
      end
    end
    if not any then return nil, "a policy table needs at least one hook function (admit, priority, on_step, pick_victim)" end
    return v
  elseif t == "template" then
    if type(v) == "function" then return v end
    if type(v) == "string" and in_list(v, TEMPLATES) then return v end
    if type(v) == "string" then
      local s = suggest(v, TEMPLATES)
      return nil, ("%s is not a built-in chat template (%s)%s; or give a Lua function(messages)")
        :format(fmt_value(v), list_str(TEMPLATES), s and ("; did you mean " .. fmt_value(s) .. "?") or "")
    end
    return nil, ("expected a template name or a function, got %s"):format(type(v))
  elseif t == "env_map" then
    if type(v) ~= "table" then return nil, ("expected a table NAME = \"value\", got %s"):format(type(v)) end
    local out = {}
    for k, x in pairs(v) do
      if type(k) ~= "string" or not k:match("^[A-Z_][A-Z0-9_]*$") then
        return nil, ("%s is not an environment variable name"):format(fmt_value(k))
      end
      if type(x) == "number" or type(x) == "boolean" then x = tostring(x) end
      if type(x) ~= "string" then return nil, ("%s: expected a string value, got %s"):format(k, type(x)) end
      out[k] = x
    end
    return out
  end
  return nil, "internal: unknown schema type " .. tostring(t)
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- Turns a string typed on a command line or in the environment into the
-- type its key wants: numbers, booleans (true/false, 1/0, yes/no, on/off)
-- and comma-separated lists. What does not convert stays a string, so the
-- schema check names the key and the bad value.
local function coerce(a, e, s)
  if (a and (a.invert or a.sharded or a.json)) or e.type == "boolean" then
    local l = s:lower()
    if l == "true" or l == "1" or l == "yes" or l == "on" then return true end
    if l == "false" or l == "0" or l == "no" or l == "off" then return false end
    return s
  end
  if e.type == "integer" or e.type == "number" then return tonumber(s) or s end
  if e.type == "list_integer" or e.type == "list_string" then
    local t = {}
    for x in s:gmatch("[^,]+") do
      x = x:match("^%s*(.-)%s*$")
      t[#t + 1] = e.type == "list_integer" and (tonumber(x) or x) or x
    end
    return t
  end
  return s
end

-- The key a flag name sets: an own flag (--device), a key path
-- (--batching.max_total_tokens) or an alias. Returns the alias (or nil) and
-- the schema entry, or nothing when the name is none of these.
local function flag_target(name)
  if OWN_FLAGS[name] then return nil, KEY_BY_PATH[OWN_FLAGS[name][1]] end
  if name:find(".", 1, true) then return nil, KEY_BY_PATH[name] end
  local a = ALIAS_BY_NAME[name]
  if a then return a, KEY_BY_PATH[a.path] end
end

-- Whether a flag takes the next word as its value. Booleans do only when it
-- is true or false, so `--enforce-eager config.lua` leaves the path alone.
local function takes_value(name)
  local a, e = flag_target(name)
  if e then return not ((a and (a.invert or a.sharded or a.json)) or e.type == "boolean") end
  if IGNORED_FLAGS[name] then return IGNORED_FLAGS[name].value == true end
  if CONTAINER_FLAGS[name] ~= nil then return CONTAINER_FLAGS[name] end
  return true -- unknown: the next word is most likely its value
end

-- Splits a command line ({"--num-shard", "2", "--port=9000", "--enforce-eager"})
-- into flags { name = "num_shard", value = "2" | true, flag = "--num-shard",
-- text = "--num-shard 2" } and positional words.
local function split_words(words, add)
  local flags, pos = {}, {}
  local i = 1
  while i <= #words do
    local w = words[i]
    local name, val = w:match("^%-%-(%w[%w%-_%.]*)=(.*)$")
    if not name then name = w:match("^%-%-(%w[%w%-_%.]*)$") end
    if name then
      local norm = name:gsub("%-", "_")
      local text = w
      if val == nil then
        local nxt = words[i + 1]
        local known = flag_target(norm) ~= nil or IGNORED_FLAGS[norm] or CONTAINER_FLAGS[norm] ~= nil
        if takes_value(norm) then
          if nxt ~= nil and not nxt:match("^%-%-") then
            val, i, text = nxt, i + 1, w .. " " .. nxt
          elseif known and CONTAINER_FLAGS[norm] == nil then
            add("flags", ("%s needs a value (%s VALUE or %s=VALUE)"):format(w, w, w))
            val = false
          else
            val = true
          end
        elseif nxt and (nxt:lower() == "true" or nxt:lower() == "false") then
          val, i, text = nxt, i + 1, w .. " " .. nxt
        else
          val = true
        end
      end
      if val ~= false then
        if type(val) == "string" then val = val:gsub('^"(.*)"$', "%1"):gsub("^'(.*)'$", "%1") end
        flags[#flags + 1] = { name = norm, value = val, flag = "--" .. name, text = text }
      end
    elseif w:match("^%-%a") then
      add("flags", ("%s: v100rt's flags are long, --name VALUE (e.g. --port 8080); see `v100rt help serve`")
        :format(fmt_value(w)))
    else
      pos[#pos + 1] = w
    end
    i = i + 1
  end
  return flags, pos
end
M.split_words = split_words

-- What an alias, flag or variable sets: { path, value (normalized), raw,
-- from } or { sharded = bool, from }; nil after add() when the value is bad.
-- Strings from a command line or the environment are converted first.
local function setting(name, v, from, add, from_text)
  local a, e = flag_target(name)
  local path = e.path
  if from_text and type(v) == "string" then v = coerce(a, e, v) end
  local raw = v
  if a and (a.invert or a.sharded or a.json) then
    if type(v) ~= "boolean" then
      add(a.name, ("%s (%s): expected true or false, got %s"):format(from, a.path, fmt_value(v)))
      return nil
    end
    if a.sharded then return { sharded = v, from = from } end
    if a.invert then v = not v else v = v and "json" or "text" end
  end
  local nv, msg = check_value(e, v)
  if msg then
    add(path, ("%s (%s): %s"):format(from, path, msg))
    return nil
  end
  return { path = path, value = nv, raw = raw, from = from }
end

local function suggest_flag(name)
  local cands = {}
  for _, a in ipairs(ALIASES) do cands[#cands + 1] = a.name end
  for k in pairs(OWN_FLAGS) do cands[#cands + 1] = k end
  for k in pairs(IGNORED_FLAGS) do cands[#cands + 1] = k end
  if name:find(".", 1, true) then
    cands = {}
    for p in pairs(KEY_BY_PATH) do cands[#cands + 1] = p end
    table.sort(cands)
  end
  local s = suggest(name, cands)
  if s and not s:find(".", 1, true) then s = s:gsub("_", "-") end
  return s and ("--" .. s)
end

-- The settings of parsed flags (from = "flag" on the command line, "config
-- flags" in a config's flags string); notes for ignored flags, errors for
-- container flags and unknown ones.
local function flag_settings(flags, from, add, notes)
  local out = {}
  for _, f in ipairs(flags) do
    local name = f.name
    local a, e = flag_target(name)
    if CONTAINER_FLAGS[name] ~= nil or (name == "device" and type(f.value) == "string" and f.value:match("^/dev/")) then
      add("flags", ("%s is a container runtime flag (docker/podman/Kubernetes), not a v100rt flag; "
        .. "see README, Kubernetes"):format(f.text))
    elseif IGNORED_FLAGS[name] then
      notes[#notes + 1] = ("note: %s ignored: %s"):format(f.flag, IGNORED_FLAGS[name][1])
    elseif REMOVED_KEYS[name] then
      notes[#notes + 1] = ("note: %s ignored: %s"):format(f.flag, REMOVED_KEYS[name])
    elseif e then
      local s = setting(name, f.value, from .. " " .. f.flag, add, true)
      if s then out[#out + 1] = s end
    else
      local s = suggest_flag(name)
      add("flags", ("%s is not a flag v100rt knows%s; it takes the TGI/vLLM flags of `v100rt help config` "
        .. "(aliases), --device, --threads and --SECTION.KEY VALUE for any key")
        :format(f.flag, s and (" (did you mean " .. s .. "?)") or ""))
    end
  end
  return out
end

local function is_ip(s)
  return s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or (s:find(":", 1, true) ~= nil and s:match("^[%x:%.]+$") ~= nil)
end

-- The settings of TGI's environment variables (env: NAME → value).
local function env_settings(env, add, notes)
  local out = {}
  for _, name in ipairs(ENV_ALIASES) do
    local var = name:upper()
    local v = env[var]
    if v ~= nil and v ~= "" then
      if name == "hostname" and not is_ip(v) then
        notes[#notes + 1] = ("note: HOSTNAME=%s ignored: not an IP address (Docker and Kubernetes set HOSTNAME "
          .. "to the container's name); set server.host or --host to choose the address"):format(v)
      else
        local s = setting(name, v, "env " .. var, add, true)
        if s then out[#out + 1] = s end
      end
    end
  end
  local ign = {}
  for var in pairs(IGNORED_ENV) do ign[#ign + 1] = var end
  table.sort(ign)
  for _, var in ipairs(ign) do
    if env[var] ~= nil and env[var] ~= "" then
      notes[#notes + 1] = ("note: %s=%s ignored: %s"):format(var, env[var], IGNORED_ENV[var])
    end
  end
  return out
end

-- The environment variables load_src reads (TGI's names).
function M.env_names()
  local t = {}
  for _, name in ipairs(ENV_ALIASES) do t[#t + 1] = name:upper() end
  for var in pairs(IGNORED_ENV) do t[#t + 1] = var end
  table.sort(t)
  return t
end

---------------------------------------------------------------------------
-- resolve(t, src) → resolved, origin, errors, notes
--   t:        the table a config file returned
--   src:      optional: flags = parsed command-line flags (split_words),
--             env = { NAME = value } of TGI's variables, errors/notes to
--             append to
--   resolved: every section with every key (defaults filled)
--   origin:   key path → "set" | "alias NAME" | "flag --x" | "env X" | "default" ...
--   errors:   list of {path=, msg=}
--   notes:    list of strings, "note: ..." or "warning: ..."
--
-- Precedence, highest first: command-line flags, the file (its sections,
-- aliases and flags string: two of them disagreeing is an error), the
-- environment, the defaults.

function M.resolve(t, src)
  src = src or {}
  local errors, notes = src.errors or {}, src.notes or {}
  local function add(path, msg) errors[#errors + 1] = { path = path, msg = msg } end
  if type(t) ~= "table" then
    add("(config)", ("the config file must return a table (usually v100rt.config{...}), got %s"):format(type(t)))
    return nil, {}, errors, notes
  end

  local section_names, alias_names = {}, {}
  for _, sec in ipairs(SECTIONS) do section_names[#section_names + 1] = sec.name end
  for _, a in ipairs(ALIASES) do alias_names[#alias_names + 1] = a.name end

  -- given[path] = the layer that set it: "file", "env" or "flag".
  local given, origin, values = {}, {}, {}
  for _, sec in ipairs(SECTIONS) do values[sec.name] = {} end
  local file_settings = {}
  local sharded = {}

  local function shown(path)
    local sec, key = path:match("^(%w+)%.(.+)$")
    local o = origin[path]
    return ("%s = %s%s"):format(path, fmt_value(values[sec][key]), o == "set" and "" or (" (" .. o .. ")"))
  end
  local function apply(s, layer)
    if s.sharded ~= nil then sharded[layer] = s return end
    local sec, key = s.path:match("^(%w+)%.(.+)$")
    local prev = given[s.path]
    local same = prev and fmt_value(values[sec][key]) == fmt_value(s.value)
    if prev == layer and not same then
      add(s.path, ("%s = %s conflicts with %s: set only one"):format(s.from, fmt_value(s.raw), shown(s.path)))
      return
    end
    if layer == "env" and prev == "file" then
      if not same then
        notes[#notes + 1] = ("note: %s = %s is overridden by the config file: %s")
          :format(s.from, fmt_value(s.raw), shown(s.path))
      end
      return
    end
    values[sec][key] = s.value
    given[s.path] = layer
    origin[s.path] = s.from
  end

  -- Top level: sections, aliases, `flags`.
  local top = {}
  for k in pairs(t) do top[#top + 1] = k end
  table.sort(top, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(top) do
    local v = t[k]
    if type(k) ~= "string" then
      add("(config)", ("unexpected positional value %s at the top level: write key = value"):format(fmt_value(v)))
    elseif SECTION_BY_NAME[k] then
      if type(v) ~= "table" then
        add(k, ("%s must be a table { ... }, got %s %s"):format(k, type(v), fmt_value(v)))
      end
    elseif k == "flags" then
      if type(v) ~= "string" then
        add("flags", "flags must be a string of --flags as given to TGI or vLLM")
      else
        local words = {}
        for w in v:gmatch("%S+") do words[#words + 1] = w end
        local fl, pos = split_words(words, add)
        for _, w in ipairs(pos) do
          add("flags", ("flags: %s is not a --flag"):format(fmt_value(w)))
        end
        for _, s in ipairs(flag_settings(fl, "config flags", add, notes)) do
          file_settings[#file_settings + 1] = s
        end
      end
    else
      local norm = k:gsub("%-", "_")
      if ALIAS_BY_NAME[norm] then
        local s = setting(norm, v, "alias " .. k, add, false)
        if s then file_settings[#file_settings + 1] = s end
      elseif IGNORED_FLAGS[norm] then
        notes[#notes + 1] = ("note: %s ignored: %s"):format(k, IGNORED_FLAGS[norm][1])
      else
        -- Maybe a key of some section written at the top level.
        local where
        for _, sec in ipairs(SECTIONS) do
          if sec.by_key[k] then where = sec.name .. "." .. k break end
        end
        local s = suggest(k, section_names) or suggest(norm, alias_names)
        add(k, ("%s: unknown key at the top level%s"):format(k,
          where and ("; it belongs in a section: " .. where) or
          s and ("; did you mean " .. fmt_value(s) .. "?") or
          ("; top-level keys are the sections " .. table.concat(section_names, ", ") .. " and TGI/vLLM flag aliases")))
      end
    end
  end

  -- Section keys.
  for _, sec in ipairs(SECTIONS) do
    local st = t[sec.name]
    if type(st) == "table" then
      local keys = {}
      for k in pairs(st) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(keys) do
        local e = sec.by_key[k]
        local path = sec.name .. "." .. tostring(k)
        if not e and REMOVED_KEYS[path] then
          notes[#notes + 1] = ("note: %s ignored: %s"):format(path, REMOVED_KEYS[path])
        elseif not e then
          local names = {}
          for _, x in ipairs(sec.keys) do names[#names + 1] = x.key end
          local s = type(k) == "string" and suggest(k, names)
          local other
          if type(k) == "string" and not s then
            for _, sec2 in ipairs(SECTIONS) do
              if sec2.by_key[k] then other = sec2.name .. "." .. k break end
            end
          end
          add(path, ("%s: unknown key %s in %s%s"):format(path, fmt_value(k), sec.name,
            s and ("; did you mean " .. sec.name .. "." .. s .. "?") or
            other and ("; it belongs in " .. other) or
            ("; keys of " .. sec.name .. " are " .. table.concat(names, ", "))))
        else
          local v, msg = check_value(e, st[k])
          if msg then
            add(path, path .. ": " .. msg)
          else
            apply({ path = path, value = v, raw = st[k], from = "set" }, "file")
          end
        end
      end
    end
  end

  -- Aliases and the flags string (after explicit keys, so conflicts can be
  -- named), then the environment, then the command line.
  for _, s in ipairs(file_settings) do apply(s, "file") end
  if src.env then
    for _, s in ipairs(env_settings(src.env, add, notes)) do apply(s, "env") end
  end
  if src.flags then
    for _, s in ipairs(flag_settings(src.flags, "flag", add, notes)) do apply(s, "flag") end
  end

  -- Defaults and the resolved table.
  local r = {}
  for _, sec in ipairs(SECTIONS) do
    r[sec.name] = {}
    for _, e in ipairs(sec.keys) do
      local v = values[sec.name][e.key]
      -- Derived defaults (their schema default is a doc string) come later.
      if v == nil and not e.derived then v = copy(e.default) end
      r[sec.name][e.key] = v
      origin[e.path] = origin[e.path] or "default"
    end
  end
  -- sharded = true (TGI): one shard per listed GPU, unless the tensor size
  -- is given; the highest layer that says anything about it decides.
  local sh = sharded.flag or sharded.file or sharded.env
  if sh and sh.sharded and not given["parallel.tensor"] then
    if given["device.gpus"] then
      r.parallel.tensor = #r.device.gpus
      given["parallel.tensor"] = true
      origin["parallel.tensor"] = sh.from
    else
      add("sharded", M.tp_refusal(sh.from .. " = true (shard over every GPU)"))
    end
  end
  for _, e in pairs(KEY_BY_PATH) do
    if e.required and not given[e.path] then
      add(e.path, ("%s is required: %s"):format(e.path, e.doc))
    end
  end
  derive_defaults(r, given)
  local bad = {}
  for _, e in ipairs(errors) do bad[e.path] = true end
  cross_check(r, add, function(...)
    for _, path in ipairs({ ... }) do
      if bad[path] then return false end
    end
    return true
  end, origin, notes)
  return r, origin, errors, notes
end

---------------------------------------------------------------------------
-- Output: the resolved config as a table or JSON, and the reference docs.

M.NULL = setmetatable({}, { __tostring = function() return "null" end })

local function json_encode(v, indent, pad)
  pad = pad or ""
  local t = type(v)
  if t == "nil" or v == M.NULL then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v == math.floor(v) and math.abs(v) < 2^53 then return ("%d"):format(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    for prec = 15, 17 do -- the shortest text that reads back as the same number
      local txt = ("%." .. prec .. "g"):format(v)
      if tonumber(txt) == v then return txt end
    end
  end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
      return map[c] or ("\\u%04x"):format(c:byte())
    end) .. '"'
  end
  if t == "function" then return '"<lua function>"' end
  if t == "table" then
    local inner = pad .. (indent or "")
    local nl = indent and "\n" or ""
    local sep = indent and ": " or ":"
    if #v > 0 or next(v) == nil then
      if next(v) == nil then return "[]" end
      local parts = {}
      for i, x in ipairs(v) do parts[i] = json_encode(x, nil) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for i, k in ipairs(keys) do
      parts[i] = inner .. json_encode(tostring(k)) .. sep .. json_encode(v[k], indent, inner)
    end
    return "{" .. nl .. table.concat(parts, "," .. nl) .. nl .. pad .. "}"
  end
  return '"<' .. t .. '>"'
end
M.json_encode = json_encode

-- The resolved config as text: one line per key with its origin.
function M.format(r, origin, as_json)
  if as_json then
    local out = {}
    for _, sec in ipairs(SECTIONS) do
      out[sec.name] = {}
      for _, e in ipairs(sec.keys) do
        local v = r[sec.name][e.key]
        if type(v) == "table" and (e.type == "policy") then v = "custom" end
        if v == nil then v = M.NULL end
        out[sec.name][e.key] = v
      end
    end
    return json_encode(out, "  ") .. "\n"
  end
  local lines = {}
  for _, sec in ipairs(SECTIONS) do
    for _, e in ipairs(sec.keys) do
      local v = r[sec.name][e.key]
      local shown
      if v == nil then shown = "nil"
      elseif type(v) == "function" then shown = "<lua function>"
      elseif type(v) == "table" and e.type == "policy" then shown = "<lua hooks>"
      else shown = fmt_value(v) end
      local o = origin[e.path] or "default"
      lines[#lines + 1] = ("%-34s %-24s %s"):format(e.path, shown, o == "default" and "" or "(" .. o .. ")")
        :gsub("%s+$", "")
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

local function default_text(e)
  local d = e.default
  if d == nil then return "nil" end
  if e.derived then return d end
  if e.path == "server.payload_limit" then return "2000000 (2 MB)" end
  return fmt_value(d)
end

local function type_text(e)
  local t = e.type
  if t == "enum" or (e.values and t == "integer") then return "one of " .. list_str(e.values) end
  if t == "list_integer" then return "list of integers" end
  if t == "list_string" then return "list of strings" end
  if t == "env_map" then return "table" end
  if t == "policy" then return "name or hook table" end
  if t == "template" then return "name or function" end
  return t
end

-- The configuration reference (markdown), printed by `v100rt help config`
-- and embedded in README.md.
function M.reference()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("A config file is Lua returning a table, normally:")
  w("")
  w("```lua")
  w('local v100rt = require "v100rt"')
  w("return v100rt.config{")
  w('  model = { path = "models/tiny" },')
  w("  batching = { max_total_tokens = 4096 },")
  w("}")
  w("```")
  w("")
  w("Every key is optional except `model.path`. Unknown keys, wrong types, out-of-range values and")
  w("inconsistent combinations are errors that name the key; `v100rt check FILE` lists them all.")
  for _, sec in ipairs(SECTIONS) do
    w("")
    w(("### `%s` — %s"):format(sec.name, sec.doc))
    w("")
    w("| key | type | default | meaning |")
    w("|---|---|---|---|")
    for _, e in ipairs(sec.keys) do
      local rng = ""
      if e.min and not e.values then rng = rng .. (" %s %s"):format(e.min_open and ">" or ">=", fmt_value(e.min)) end
      if e.max and not e.values then rng = rng .. (", <= %s"):format(fmt_value(e.max)) end
      w(("| `%s` | %s%s | %s | %s |"):format(e.path, type_text(e), rng, default_text(e), (e.doc:gsub("|", "\\|"))))
    end
  end
  w("")
  w("### Aliases: TGI and vLLM flag names")
  w("")
  w("These may be written at the top level of the config table (underscores or dashes), or pasted as")
  w('one string: `flags = "--max-total-tokens 4096 --enforce-eager"`. In a file, an alias and its key')
  w("set to different values is an error.")
  w("")
  w("| alias | key | origin |")
  w("|---|---|---|")
  for _, a in ipairs(ALIASES) do
    local how = a.invert and " (negated)" or ""
    w(("| `%s` | `%s`%s | %s |"):format(a.name, a.path, how, a.doc))
  end
  local ign = {}
  for k in pairs(IGNORED_FLAGS) do ign[#ign + 1] = k end
  table.sort(ign)
  w("")
  w("Accepted and ignored, with a note: " .. table.concat((function()
    local t = {}
    for i, k in ipairs(ign) do t[i] = "`" .. k .. "` (" .. IGNORED_FLAGS[k][1] .. ")" end
    return t
  end)(), "; ") .. ".")
  local rem = {}
  for k in pairs(REMOVED_KEYS) do rem[#rem + 1] = "`" .. k .. "` (" .. REMOVED_KEYS[k] .. ")" end
  table.sort(rem)
  w("Removed keys, accepted with a note: " .. table.concat(rem, "; ") .. ".")
  w("")
  w("### On the command line and in the environment")
  w("")
  w("`v100rt serve` and `v100rt check` (and `generate`) take `CONFIG.lua` or a model directory, then")
  w("flags: every alias above as `--name VALUE`, `--name=VALUE` (dashes or underscores; a boolean")
  w("alone is true), `--device KIND` (device.kind), `--threads N` (device.threads) and")
  w("`--SECTION.KEY VALUE` for any key (lists comma-separated: `--device.gpus 1`). Flags override the")
  w("file. Container runtime flags (`--ipc`, `--shm-size`, `--ulimit`, `--gpus`, ...) are refused with")
  w("a pointer to the Kubernetes section.")
  w("")
  w("TGI's environment variables are read as TGI reads them, below the file in precedence")
  w("(flags > file > environment > defaults): " .. table.concat((function()
    local t = {}
    for i, name in ipairs(ENV_ALIASES) do t[i] = "`" .. name:upper() .. "`" end
    return t
  end)(), ", ") .. ", each as its alias. `HOSTNAME` is used only when it is an IP address.")
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- Loading a file and filling the C struct (called from runtime/lua/config.c).

-- "dir", "file" or "missing": a directory opens for reading on Linux, and
-- reading from it fails with EISDIR.
local function path_kind(path)
  local f = io.open(path, "r")
  if not f then return "missing" end
  local _, _, code = f:read(1)
  f:close()
  return code == 21 and "dir" or "file"
end

-- Runs a config file: the table it returns, or nil and the error.
local function run_file(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, t = xpcall(chunk, debug.traceback)
  if not ok then return nil, tostring(t) end
  return t
end

-- A config from where `serve`, `check` and `generate` take it (vrt.h,
-- vrt_config_load_src): path is CONFIG.lua, a model directory
-- ({model = {path = DIR}}), or nil (then the first positional word of argv,
-- if any; else the config is the flags and the environment alone); argv the
-- command-line words; use_env reads TGI's variables (getenv, default
-- os.getenv). Returns resolved, origin, errors, notes, path.
function M.load_src(path, argv, use_env, getenv)
  local errors, notes = {}, {}
  local function add(p, msg) errors[#errors + 1] = { path = p, msg = msg } end
  local flags, pos = split_words(argv or {}, add)
  if path == nil or path == "" then path = table.remove(pos, 1) end
  for _, w in ipairs(pos) do
    add("(command line)", ("unexpected argument %s: give one CONFIG.lua or MODEL_DIR, then --flags")
      :format(fmt_value(w)))
  end
  local env
  if use_env then
    getenv = getenv or os.getenv
    env = {}
    for _, name in ipairs(M.env_names()) do env[name] = getenv(name) end
  end
  local t, kind = {}, nil
  if path ~= nil then
    kind = path_kind(path)
    if kind == "dir" then
      t = { model = { path = path } }
    elseif kind == "missing" and not path:match("%.lua$") then
      add("(file)", ("%s: no such config file (*.lua) or model directory"):format(path))
      return nil, {}, errors, notes, path
    else
      local err
      t, err = run_file(path)
      if t == nil then
        add("(file)", err)
        return nil, {}, errors, notes, path
      end
    end
  end
  local r, origin = M.resolve(t, { flags = flags, env = env, errors = errors, notes = notes })
  if kind == "dir" and origin["model.path"] == "set" then origin["model.path"] = "model directory" end
  return r, origin, errors, notes, path
end

-- Runs a config file (or a model directory) and resolves it, without
-- flags or the environment. Returns resolved, origin, errors, notes.
function M.load_file(path)
  local r, origin, errors, notes = M.load_src(path, nil, false)
  return r, origin, errors, notes
end

-- Joins errors into one message, one per line.
function M.error_text(errors)
  local lines = {}
  for i, e in ipairs(errors) do lines[i] = e.msg end
  return table.concat(lines, "\n")
end

-- Copies resolved values into the C struct `vrt_config *` (a cdata pointer).
-- Keys map by name: cfg.<section>.<key>; lists get a count field n_<key>;
-- strings are copied into memory owned by the struct. Keys marked c = false,
-- and the nccl section (which becomes cfg.nccl.env), are not mapped.
function M.fill(cfg, r)
  local C = require("v100rt.ffi").C
  local function str(s)
    if s == nil then return nil end
    return C.vrt_config_strdup(cfg, s)
  end
  for _, sec in ipairs(SECTIONS) do
    local cs = cfg[sec.name]
    for _, e in ipairs(sec.keys) do
      local v = r[sec.name][e.key]
      if e.c == false or e.env or e.type == "env_map" then
        -- handled below or not needed in C
      elseif e.type == "string" or e.type == "enum" then
        cs[e.key] = str(v)
      elseif e.type == "template" or e.type == "policy" then
        cs[e.key] = str(type(v) == "string" and v or "custom")
      elseif e.type == "boolean" then
        cs[e.key] = v and true or false
      elseif e.type == "integer" or e.type == "number" or e.type == "size" then
        cs[e.key] = v or 0
      elseif e.type == "list_integer" then
        for i, x in ipairs(v) do cs[e.key][i - 1] = x end
        cs["n_" .. e.key] = #v
      elseif e.type == "list_string" then
        local arr = C.vrt_config_strv(cfg, #v)
        for i, x in ipairs(v) do arr[i - 1] = str(x) end
        cs[e.key] = arr
        cs["n_" .. e.key] = #v
      end
    end
  end
  -- nccl: the environment variables to set, "NAME=value".
  local env = {}
  for _, e in ipairs(SECTION_BY_NAME.nccl.keys) do
    local v = r.nccl[e.key]
    if e.env and v ~= nil then
      if type(v) == "boolean" then v = v and "1" or "0" end
      env[#env + 1] = e.env .. "=" .. tostring(v)
    end
  end
  local extra = {}
  for k in pairs(r.nccl.extra) do extra[#extra + 1] = k end
  table.sort(extra)
  for _, k in ipairs(extra) do env[#env + 1] = k .. "=" .. r.nccl.extra[k] end
  local arr = C.vrt_config_strv(cfg, #env)
  for i, x in ipairs(env) do arr[i - 1] = str(x) end
  cfg.nccl.env = arr
  cfg.nccl.n_env = #env
end

-- Same, from a light userdata pointer (how runtime/lua/config.c passes it).
function M.fill_ptr(p, r)
  local F = require "v100rt.ffi"
  M.fill(F.ffi.cast("vrt_config *", p), r)
end

return M
