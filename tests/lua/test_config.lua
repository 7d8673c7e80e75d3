-- test_config.lua — the config schema: defaults from the guide, every kind
-- of error message, aliases, flags, and the C struct filled through the FFI.
local config = require "v100rt.config"

local T = {}

local function resolve(t)
  local r, origin, errors, notes = config.resolve(t)
  return r, origin, errors, notes
end

local function ok(t)
  local r, origin, errors = resolve(t)
  if #errors > 0 then error("unexpected errors:\n" .. config.error_text(errors), 2) end
  return r, origin
end

-- Asserts that resolving t fails with an error whose message contains every
-- one of the given fragments (plain text).
local function fails(t, ...)
  local _, _, errors = resolve(t)
  if #errors == 0 then error("expected an error, got none", 2) end
  local text = config.error_text(errors)
  for _, frag in ipairs({ ... }) do
    if not text:find(frag, 1, true) then
      error(("error text lacks %q:\n%s"):format(frag, text), 2)
    end
  end
  return text, errors
end

local function eq(a, b, what)
  if a ~= b then error(("%s: expected %s, got %s"):format(what or "value", tostring(b), tostring(a)), 2) end
end

local function base(t)
  t = t or {}
  t.model = t.model or {}
  if t.model.path == nil then t.model.path = "models/tiny" end
  return t
end

function T.defaults_equal_the_guide()
  local r = ok(base())
  eq(r.device.memory_fraction, 0.85, "memory_fraction (--cuda-memory-fraction 0.85)")
  eq(r.batching.max_input_tokens, 2048, "max_input_tokens (--max-input-length 2048)")
  eq(r.batching.max_total_tokens, 4096, "max_total_tokens (--max-total-tokens 4096)")
  eq(r.batching.max_batch_prefill_tokens, 4096, "max_batch_prefill_tokens (4096)")
  eq(r.batching.max_concurrent_requests, 8, "max_concurrent_requests (8 x 1 GPU)")
  eq(r.cache.block_size, 16, "block_size (--block-size 16)")
  eq(r.cache.swap_space, 4, "swap_space (--swap-space 4)")
  eq(r.parallel.tensor, 1, "tensor")
  eq(#r.device.gpus, 1, "#gpus")
  eq(r.device.gpus[1], 0, "gpus[1]")
  eq(r.device.kind, "auto", "device.kind")
  eq(r.model.dtype, "float16", "dtype")
  eq(r.model.quantize, nil, "quantize")
  eq(r.cache.prefix_caching, true, "prefix_caching")
  eq(r.batching.policy, "fcfs", "policy")
  eq(r.server.host, "127.0.0.1", "host")
  eq(r.server.port, 8080, "port")
  eq(r.server.payload_limit, 2000000, "payload_limit (2 MB)")
  eq(r.kernels.custom, true, "kernels.custom")
  eq(r.kernels.cuda_graphs, true, "kernels.cuda_graphs")
  eq(r.nccl.p2p_level, "NVL", "NCCL_P2P_LEVEL")
  eq(r.nccl.socket_ifname, "^lo,docker", "NCCL_SOCKET_IFNAME")
  eq(r.nccl.p2p_disable, false, "NCCL_P2P_DISABLE")
  eq(r.nccl.ib_disable, false, "NCCL_IB_DISABLE")
  eq(r.nccl.shm_disable, false, "NCCL_SHM_DISABLE")
  eq(r.logging.level, "info", "logging.level")
end

function T.gpus_default_to_0_and_only_the_first_is_used()
  local r, _, _, notes = config.resolve(base())
  eq(#r.device.gpus, 1, "#gpus") eq(r.device.gpus[1], 0, "gpus[1]")
  eq(#notes, 0, "no note for one GPU")
  local errors
  r, _, errors, notes = config.resolve(base { device = { gpus = { 2, 0, 1, 3 } } })
  eq(#errors, 0, "four GPUs with tensor 1 are accepted")
  eq(r.parallel.tensor, 1, "tensor stays 1")
  eq(r.batching.max_concurrent_requests, 8, "8 per GPU the model runs on")
  local text = table.concat(notes, "\n")
  assert(text:find("warning: device.gpus lists 4 GPUs", 1, true), text)
  assert(text:find("only the first, GPU 2 (device.gpus[1]), is used", 1, true), text)
  assert(text:find("one server per GPU", 1, true) and text:find("tensor parallelism is planned", 1, true), text)
end

function T.unknown_section_suggests()
  local text = fails({ model = { path = "x" }, modle = {} }, "modle", "did you mean \"model\"")
  assert(not text:find("batching"), text)
end

function T.unknown_key_in_section_suggests()
  fails(base { batching = { max_input_token = 10 } }, "batching.max_input_token", "did you mean batching.max_input_tokens?")
end

function T.key_in_wrong_section_is_placed()
  fails(base { batching = { block_size = 16 } }, "batching.block_size", "it belongs in cache.block_size")
  fails(base { block_sizee = 16 }, "block_sizee", "did you mean \"block_size\"")
end

function T.total_must_exceed_input_names_both()
  fails(base { batching = { max_input_tokens = 5000, max_total_tokens = 4096 } },
    "batching.max_total_tokens (4096)", "batching.max_input_tokens (5000)")
end

function T.prefill_budget_without_chunking()
  fails(base { batching = { max_input_tokens = 3000, max_total_tokens = 8192, max_batch_prefill_tokens = 2048, chunked_prefill = false } },
    "batching.max_batch_prefill_tokens (2048)", "batching.max_input_tokens (3000)", "chunked_prefill")
  ok(base { batching = { max_input_tokens = 3000, max_total_tokens = 8192, max_batch_prefill_tokens = 2048 } })
end

-- Tensor parallelism is not implemented: every way of asking for it is
-- refused with what names it and what to do.
function T.tensor_parallel_refused()
  local want = "tensor parallelism is not implemented yet; use parallel.tensor = 1 (one GPU), or quantize (model.quantize) to fit one GPU: see `v100rt plan`"
  fails(base { parallel = { tensor = 2 } }, "parallel.tensor = 2: " .. want)
  fails(base { num_shard = 2 }, "parallel.tensor = 2 (alias num_shard): " .. want)
  fails(base { tensor_parallel_size = 4 }, "parallel.tensor = 4 (alias tensor_parallel_size)", want)
  fails(base { flags = "--num-shard 2" }, "parallel.tensor = 2 (config flags --num-shard)", want)
  fails(base { sharded = true }, "alias sharded = true (shard over every GPU)", want)
  fails(base { sharded = true, device = { gpus = { 0, 1 } } }, "parallel.tensor = 2 (alias sharded)", want)
  eq(ok(base { parallel = { tensor = 1 } }).parallel.tensor, 1)
end

function T.memory_fraction_range()
  fails(base { device = { memory_fraction = 0 } }, "device.memory_fraction", "must be > 0")
  fails(base { device = { memory_fraction = 1.2 } }, "device.memory_fraction", "must be <= 1")
  eq(ok(base { device = { memory_fraction = 1 } }).device.memory_fraction, 1)
end

function T.block_size_values()
  fails(base { cache = { block_size = 12 } }, "cache.block_size", "8, 16, 32")
  for _, b in ipairs { 8, 16, 32 } do eq(ok(base { cache = { block_size = b } }).cache.block_size, b) end
end

function T.wrong_types_name_the_key()
  fails(base { cache = { block_size = "16" } }, "cache.block_size", "expected a number")
  fails(base { server = { port = 80.5 } }, "server.port", "expected an integer")
  fails(base { cache = { prefix_caching = "yes" } }, "cache.prefix_caching", "true or false")
  fails(base { device = { gpus = { 0, "1" } } }, "device.gpus", "entry 2")
  fails(base { server = { port = 70000 } }, "server.port", "<= 65535")
  fails({ model = "models/tiny" }, "model must be a table")
  fails(base { device = { kind = "gpu" } }, "device.kind", "\"cpu\"")
  fails(base { device = { kind = "cdua" } }, "did you mean \"cuda\"")
end

function T.bf16_is_explained()
  fails(base { model = { path = "x", dtype = "bfloat16" } }, "model.dtype", "no bf16")
end

function T.required_path()
  fails({ device = {} }, "model.path is required")
end

function T.many_errors_reported_together()
  local _, errors = fails({ modle = {}, cache = { block_size = 3 }, server = { port = -1 } },
    "modle", "cache.block_size", "server.port", "model.path")
  assert(#errors >= 4, "expected 4 errors, got " .. #errors)
end

function T.invalid_key_does_not_trigger_cross_rules()
  local text, errors = fails(base { batching = { max_input_tokens = "5000", max_total_tokens = 4096 } },
    "batching.max_input_tokens: expected a number")
  eq(#errors, 1, "only the type error: " .. text)
  -- Unrelated errors do not hide a cross-field error.
  fails({ model = { path = "x" }, modle = {}, batching = { max_input_tokens = 5000, max_total_tokens = 4096 } },
    "did you mean \"model\"", "batching.max_input_tokens (5000)")
end

function T.non_table_config()
  fails(42, "must return a table")
end

function T.enum_case_insensitive()
  eq(ok(base { model = { path = "x", quantize = "GPTQ" } }).model.quantize, "gptq")
end

function T.sizes_with_units()
  eq(ok(base { server = { payload_limit = "4MB" } }).server.payload_limit, 4000000)
  eq(ok(base { server = { payload_limit = "1 MiB" } }).server.payload_limit, 1048576)
  fails(base { server = { payload_limit = "4 parsecs" } }, "server.payload_limit", "size in bytes")
end

function T.max_model_len_sets_total()
  local r = ok(base { model = { path = "x", max_model_len = 1024 } })
  eq(r.batching.max_total_tokens, 1024, "total from max_model_len")
  eq(r.batching.max_input_tokens, 1023, "input = min(2048, total - 1)")
  fails(base { model = { path = "x", max_model_len = 1024 }, batching = { max_total_tokens = 2048 } },
    "batching.max_total_tokens (2048)", "model.max_model_len (1024)")
end

-- Every alias maps onto its key.
function T.every_alias_maps()
  local samples = {
    ["device.memory_fraction"] = 0.5, ["batching.max_input_tokens"] = 1000,
    ["batching.max_total_tokens"] = 3000, ["batching.max_batch_prefill_tokens"] = 3000,
    ["batching.max_concurrent_requests"] = 5, ["batching.max_batch_size"] = 4,
    ["batching.max_waiting_tokens"] = 7, ["batching.chunked_prefill"] = false,
    ["parallel.tensor"] = 1, ["cache.block_size"] = 32,
    ["cache.swap_space"] = 8, ["cache.prefix_caching"] = false, ["cache.num_blocks"] = 100,
    ["model.max_model_len"] = 4096, ["model.quantize"] = "awq", ["model.path"] = "/m",
    ["model.dtype"] = "float32", ["model.name"] = "m", ["model.tokenizer"] = "/t",
    ["model.trust_remote_code"] = true,
    ["server.host"] = "0.0.0.0", ["server.port"] = 9000, ["server.payload_limit"] = 5000000,
  }
  for _, a in ipairs(config.ALIASES) do
    local sec, key = a.path:match("^(%w+)%.(.+)$")
    local t = { model = { path = "models/tiny" } }
    local v, want = samples[a.path], nil
    if a.invert then v, want = true, false
    elseif a.sharded then v = nil
    elseif a.json then v, want = true, "json"
    elseif a.list then v, want = "k1", "k1"
    end
    if v ~= nil then
      if a.path == "model.path" then t.model = nil end
      if a.path == "model.dtype" and t.model then t.model.quantize = nil end
      t[a.name] = v
      if a.name == "quantize" or a.name == "quantization" then t.dtype = nil end
      local r, origin = ok(t)
      local got = r[sec][key]
      if a.list then got = got[1] end
      if want == nil then want = v end
      eq(got, want, "alias " .. a.name .. " -> " .. a.path)
      eq(origin[a.path], "alias " .. a.name, "origin of " .. a.path)
    end
  end
end

function T.aliases_with_dashes_and_conflicts()
  local r = ok(base { ["max-input-length"] = 1000 })
  eq(r.batching.max_input_tokens, 1000)
  fails(base { max_total_tokens = 3000, batching = { max_total_tokens = 4000 } },
    "alias max_total_tokens = 3000 conflicts with batching.max_total_tokens = 4000")
  -- The same value twice is fine.
  ok(base { max_total_tokens = 4000, batching = { max_total_tokens = 4000 } })
end

function T.enforce_eager_and_disable_custom_kernels_negate()
  local r = ok(base { enforce_eager = true, disable_custom_kernels = true })
  eq(r.kernels.cuda_graphs, false)
  eq(r.kernels.custom, false)
  fails(base { enforce_eager = "yes" }, "expected true or false")
end

function T.sharded_on_one_gpu_runs()
  local r = ok(base { sharded = true, device = { gpus = { 3 } } })
  eq(r.parallel.tensor, 1)
  eq(r.device.gpus[1], 3)
  r = ok(base { sharded = true, num_shard = 1 })
  eq(r.parallel.tensor, 1)
  eq(ok(base { sharded = false }).parallel.tensor, 1)
end

function T.pasted_flags()
  local r, origin, errors, notes = config.resolve(base {
    flags = "--num-shard 1 --max-total-tokens=8192 --max-input-length 4000 --enforce-eager --cuda-memory-fraction 0.9 --disable-flash-attention",
  })
  assert(#errors == 0, config.error_text(errors))
  eq(r.parallel.tensor, 1)
  eq(r.batching.max_total_tokens, 8192)
  eq(r.batching.max_input_tokens, 4000)
  eq(r.kernels.cuda_graphs, false)
  eq(r.device.memory_fraction, 0.9)
  eq(origin["parallel.tensor"], "config flags --num-shard")
  assert(notes[1] and notes[1]:find("disable%-flash%-attention"), "note for an ignored flag")
  fails(base { flags = "--max-totl-tokens 5" }, "--max-totl-tokens", "did you mean --max-total-tokens")
end

function T.policy_hooks()
  local r = ok(base { batching = { policy = { admit = function() return true end } } })
  eq(type(r.batching.policy), "table")
  fails(base { batching = { policy = { admitt = function() end } } }, "unknown hook \"admitt\"", "did you mean \"admit\"")
  fails(base { batching = { policy = { admit = 1 } } }, "hook admit must be a function")
  fails(base { batching = { policy = "fifo" } }, "not a built-in policy")
end

function T.chat_template_function_or_name()
  ok(base { model = { path = "x", chat_template = function(m) return "" end } })
  fails(base { model = { path = "x", chat_template = "chatm" } }, "did you mean \"chatml\"")
end

function T.nccl_extra_env()
  local r = ok(base { nccl = { extra = { NCCL_ALGO = "Ring", NCCL_NTHREADS = 256 } } })
  eq(r.nccl.extra.NCCL_NTHREADS, "256")
  fails(base { nccl = { extra = { ["bad name"] = "1" } } }, "not an environment variable name")
end

function T.reference_documents_every_key_and_alias()
  local ref = config.reference()
  for path in pairs(config.KEY_BY_PATH) do
    assert(ref:find("`" .. path .. "`", 1, true), "reference lacks " .. path)
  end
  for _, a in ipairs(config.ALIASES) do
    assert(ref:find("`" .. a.name .. "`", 1, true), "reference lacks alias " .. a.name)
  end
end

function T.format_shows_origin_and_json_parses_back()
  local r, origin = ok(base { batching = { max_total_tokens = 5000 }, max_input_length = 100 })
  local text = config.format(r, origin, false)
  assert(text:find("batching.max_total_tokens%s+5000%s+%(set%)"), text)
  assert(text:find("batching.max_input_tokens%s+100%s+%(alias max_input_length%)"), text)
  local js = config.format(r, origin, true)
  assert(js:find('"max_total_tokens": 5000', 1, true), js)
  assert(js:find('"quantize": null', 1, true), js)
end

-- The C struct, through the same path `serve` uses (vrt_config_load).
function T.c_struct_layout_and_fill()
  local F = require "v100rt.ffi"
  local ffi, C = F.ffi, F.C
  eq(tonumber(C.vrt_config_sizeof()), ffi.sizeof("vrt_config"), "sizeof(vrt_config) in C and FFI")
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write([[return { model = { path = "m" }, device = { gpus = {0, 1} }, server = { api_keys = {"a", "bb"} },
    nccl = { debug = "INFO" }, batching = { policy = { admit = function() return true end } } }]])
  f:close()
  local cfg = ffi.new("vrt_config")
  local err = ffi.new("vrt_err")
  local rc = C.vrt_config_load(cfg, path, err)
  os.remove(path)
  eq(rc, 0, "vrt_config_load: " .. ffi.string(err.msg))
  eq(ffi.string(cfg.model.path), "m")
  eq(cfg.device.n_gpus, 2)
  eq(cfg.device.gpus[1], 1)
  eq(cfg.parallel.tensor, 1)
  eq(cfg.batching.max_concurrent_requests, 8)
  eq(cfg.n_notes, 1, "the note that only GPU 0 is used")
  assert(ffi.string(cfg.notes[0]):find("only the first, GPU 0", 1, true))
  eq(tonumber(cfg.batching.max_total_tokens), 4096)
  eq(cfg.device.memory_fraction, 0.85)
  eq(cfg.server.n_api_keys, 2)
  eq(ffi.string(cfg.server.api_keys[1]), "bb")
  eq(ffi.string(cfg.batching.policy), "custom")
  eq(cfg.model.quantize, nil, "NULL quantize")
  local env = {}
  for i = 0, cfg.nccl.n_env - 1 do env[#env + 1] = ffi.string(cfg.nccl.env[i]) end
  local joined = table.concat(env, " ")
  assert(joined:find("NCCL_DEBUG=INFO", 1, true), joined)
  assert(joined:find("NCCL_P2P_LEVEL=NVL", 1, true), joined)
  assert(joined:find("NCCL_P2P_DISABLE=0", 1, true), joined)
  C.vrt_config_free(cfg)
end

-- ---- load_src: a file or a model directory, command-line flags, TGI's
-- environment variables (what `serve`, `check` and `generate` load).

local function tmpcfg(text)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function src(path, argv, env)
  local getenv = env and function(k) return env[k] end
  return config.load_src(path, argv or {}, env ~= nil, getenv)
end

local function src_ok(path, argv, env)
  local r, origin, errors, notes, p = src(path, argv, env)
  if #errors > 0 then error("unexpected errors:\n" .. config.error_text(errors), 2) end
  return r, origin, notes, p
end

local function src_fails(path, argv, env, ...)
  local _, _, errors = src(path, argv, env)
  if #errors == 0 then error("expected an error, got none", 2) end
  local text = config.error_text(errors)
  for _, frag in ipairs({ ... }) do
    if not text:find(frag, 1, true) then error(("error text lacks %q:\n%s"):format(frag, text), 2) end
  end
  return text
end

function T.load_src_model_dir_is_model_path_with_defaults()
  local r, origin = src_ok("models-trained/kjv-tiny")
  eq(r.model.path, "models-trained/kjv-tiny")
  eq(origin["model.path"], "model directory")
  eq(r.batching.max_total_tokens, 4096, "the schema's default")
  eq(origin["batching.max_total_tokens"], "default")
  src_fails("/nonexistent/model", nil, nil, "/nonexistent/model: no such config file (*.lua) or model directory")
  src_fails("/nonexistent/x.lua", nil, nil, "/nonexistent/x.lua")
end

function T.load_src_flags_override_the_file()
  local path = tmpcfg('return { model = { path = "m" }, server = { port = 8000 }, max_total_tokens = 1000 }')
  local r, origin = src_ok(path, { "--port", "9001", "--max-total-tokens=2000", "--device", "cpu",
    "--enforce-eager", "--batching.max-input-tokens", "100", "--device.gpus", "1", "--threads", "3",
    "--enable-prefix-caching", "false", "--api-key", "k1" })
  os.remove(path)
  eq(r.server.port, 9001) eq(origin["server.port"], "flag --port")
  eq(r.batching.max_total_tokens, 2000) eq(origin["batching.max_total_tokens"], "flag --max-total-tokens")
  eq(r.device.kind, "cpu") eq(origin["device.kind"], "flag --device")
  eq(r.kernels.cuda_graphs, false) eq(origin["kernels.cuda_graphs"], "flag --enforce-eager")
  eq(r.batching.max_input_tokens, 100) eq(origin["batching.max_input_tokens"], "flag --batching.max-input-tokens")
  eq(r.device.gpus[1], 1) eq(#r.device.gpus, 1)
  eq(r.device.threads, 3)
  eq(r.cache.prefix_caching, false)
  eq(r.server.api_keys[1], "k1")
end

function T.load_src_flags_are_checked_like_keys()
  src_fails("models-trained/kjv-tiny", { "--port", "abc" }, nil, "flag --port (server.port): expected a number")
  src_fails("models-trained/kjv-tiny", { "--device", "gpu" }, nil, "flag --device (device.kind)", "\"cpu\"")
  src_fails("models-trained/kjv-tiny", { "--port" }, nil, "--port needs a value")
  src_fails("models-trained/kjv-tiny", { "--max-totl-tokens", "5" }, nil, "--max-totl-tokens is not a flag v100rt knows (did you mean --max-total-tokens?)")
  src_fails("models-trained/kjv-tiny", { "--batching.max_totl_tokens", "5" }, nil, "did you mean --batching.max_total_tokens?")
  src_fails("models-trained/kjv-tiny", { "--max-input-length", "10", "--max-input-tokens", "20" }, nil,
    "flag --max-input-tokens = 20 conflicts with batching.max_input_tokens = 10 (flag --max-input-length)")
  src_fails("models-trained/kjv-tiny", { "-p", "80" }, nil, "v100rt's flags are long")
  src_fails("a.lua", { "b.lua" }, nil, "unexpected argument \"b.lua\"")
end

function T.load_src_path_from_argv_or_model_id()
  local r, _, _, p = src_ok(nil, { "--port", "9000", "models-trained/kjv-tiny", "--enforce-eager" })
  eq(p, "models-trained/kjv-tiny", "the positional word is the path")
  eq(r.server.port, 9000) eq(r.kernels.cuda_graphs, false)
  local origin
  r, origin = src_ok(nil, { "--model-id", "models-trained/kjv-tiny" })
  eq(r.model.path, "models-trained/kjv-tiny") eq(origin["model.path"], "flag --model-id")
  src_fails(nil, {}, nil, "model.path is required")
end

function T.load_src_container_flags_point_to_the_readme()
  local want = "is a container runtime flag (docker/podman/Kubernetes), not a v100rt flag; see README, Kubernetes"
  src_fails("models-trained/kjv-tiny", { "--ipc=host" }, nil, "--ipc=host " .. want)
  src_fails("models-trained/kjv-tiny", { "--ulimit", "memlock=-1" }, nil, "--ulimit memlock=-1 " .. want)
  src_fails("models-trained/kjv-tiny", { "--shm-size", "1g" }, nil, "--shm-size 1g " .. want)
  src_fails("models-trained/kjv-tiny", { "--gpus", "all" }, nil, "--gpus all " .. want)
  src_fails("models-trained/kjv-tiny", { "--privileged" }, nil, "--privileged " .. want)
  fails(base { flags = "--ipc=host --max-total-tokens 100" }, "--ipc=host " .. want)
end

function T.load_src_ignored_flags_and_removed_keys_give_notes()
  local _, _, notes = src_ok("models-trained/kjv-tiny", { "--max-parallel-loading-workers", "4", "--disable-flash-attention" })
  local text = table.concat(notes, "\n")
  assert(text:find("note: --max-parallel-loading-workers ignored: no effect in v100rt", 1, true), text)
  assert(text:find("note: --disable-flash-attention ignored", 1, true), text)
  local r, _, errors, notes2 = config.resolve(base { parallel = { loading_workers = 4 }, max_parallel_loading_workers = 2 })
  eq(#errors, 0, "a removed key is not an error")
  text = table.concat(notes2, "\n")
  assert(text:find("note: parallel.loading_workers ignored: no effect in v100rt", 1, true), text)
  assert(text:find("note: max_parallel_loading_workers ignored: no effect in v100rt", 1, true), text)
  eq(r.parallel.loading_workers, nil, "not in the resolved config")
end

function T.load_src_env_below_the_file_above_defaults()
  local env = { MAX_TOTAL_TOKENS = "1000", MAX_INPUT_TOKENS = "600", PORT = "9100", CUDA_MEMORY_FRACTION = "0.5",
    QUANTIZE = "gptq", MODEL_ID = "models-trained/kjv-tiny", JSON_OUTPUT = "true",
    DISABLE_CUSTOM_KERNELS = "1", CORS_ALLOW_ORIGIN = "https://a.example,https://b.example",
    MAX_BATCH_SIZE = "4", MAX_WAITING_TOKENS = "7", MAX_CONCURRENT_REQUESTS = "5", MAX_BATCH_PREFILL_TOKENS = "512",
    PAYLOAD_LIMIT = "1000000", TRUST_REMOTE_CODE = "true", DTYPE = "float16", HOSTNAME = "0.0.0.0", API_KEY = "s3" }
  local r, origin, notes = src_ok(nil, {}, env)
  eq(r.model.path, "models-trained/kjv-tiny") eq(origin["model.path"], "env MODEL_ID")
  eq(r.batching.max_total_tokens, 1000) eq(origin["batching.max_total_tokens"], "env MAX_TOTAL_TOKENS")
  eq(r.batching.max_input_tokens, 600)
  eq(r.server.port, 9100) eq(origin["server.port"], "env PORT")
  eq(r.server.host, "0.0.0.0") eq(origin["server.host"], "env HOSTNAME")
  eq(r.device.memory_fraction, 0.5)
  eq(r.model.quantize, "gptq")
  eq(r.logging.format, "json")
  eq(r.kernels.custom, false)
  eq(r.server.cors_allow_origin[2], "https://b.example")
  eq(r.batching.max_batch_size, 4) eq(r.batching.max_waiting_tokens, 7)
  eq(r.batching.max_concurrent_requests, 5) eq(r.batching.max_batch_prefill_tokens, 512)
  eq(r.server.payload_limit, 1000000) eq(r.model.trust_remote_code, true)
  eq(r.server.api_keys[1], "s3")
  eq(#notes, 0, table.concat(notes, "\n"))
  -- The file wins over the environment (with a note), a flag over both.
  local path = tmpcfg('return { model = { path = "m" }, batching = { max_total_tokens = 2000 } }')
  r, origin, notes = src_ok(path, { "--port", "9200" }, { MAX_TOTAL_TOKENS = "1000", PORT = "9100", MAX_INPUT_TOKENS = "100" })
  os.remove(path)
  eq(r.batching.max_total_tokens, 2000) eq(origin["batching.max_total_tokens"], "set")
  eq(r.batching.max_input_tokens, 100) eq(origin["batching.max_input_tokens"], "env MAX_INPUT_TOKENS")
  eq(r.server.port, 9200) eq(origin["server.port"], "flag --port")
  local text = table.concat(notes, "\n")
  assert(text:find("note: env MAX_TOTAL_TOKENS = 1000 is overridden by the config file: batching.max_total_tokens = 2000", 1, true), text)
  -- Without use_env nothing is read.
  r = src_ok("models-trained/kjv-tiny", {}, nil)
  eq(r.server.port, 8080)
end

function T.load_src_bad_env_names_the_variable()
  src_fails("models-trained/kjv-tiny", {}, { PORT = "http" }, "env PORT (server.port): expected a number")
  src_fails("models-trained/kjv-tiny", {}, { QUANTIZE = "bitsandbytes" }, "env QUANTIZE (model.quantize)", "\"gptq\", \"awq\"")
  src_fails("models-trained/kjv-tiny", {}, { NUM_SHARD = "2" }, "parallel.tensor = 2 (env NUM_SHARD): tensor parallelism is not implemented yet")
  src_fails("models-trained/kjv-tiny", {}, { SHARDED = "true" }, "env SHARDED = true (shard over every GPU): tensor parallelism")
  src_fails("models-trained/kjv-tiny", {}, { SHARDED = "maybe" }, "env SHARDED (parallel.tensor): expected true or false")
  src_fails("models-trained/kjv-tiny", {}, { MAX_INPUT_TOKENS = "10", MAX_INPUT_LENGTH = "20" },
    "env MAX_INPUT_LENGTH = 20 conflicts with batching.max_input_tokens = 10 (env MAX_INPUT_TOKENS)")
  -- HOSTNAME is the container's name in Docker and Kubernetes: used only when it is an address.
  local r, _, notes = src_ok("models-trained/kjv-tiny", {}, { HOSTNAME = "my-pod-7f9c" })
  eq(r.server.host, "127.0.0.1")
  assert(table.concat(notes, "\n"):find("HOSTNAME=my-pod-7f9c ignored: not an IP address", 1, true))
  r, _, notes = src_ok("models-trained/kjv-tiny", {}, { MAX_BATCH_TOTAL_TOKENS = "10000" })
  assert(table.concat(notes, "\n"):find("note: MAX_BATCH_TOTAL_TOKENS=10000 ignored", 1, true))
end

function T.every_env_alias_is_an_alias()
  for _, name in ipairs(config.ENV_ALIASES) do
    local found = false
    for _, a in ipairs(config.ALIASES) do if a.name == name then found = true end end
    assert(found, name .. " is in ENV_ALIASES but not an alias")
  end
end

return T
