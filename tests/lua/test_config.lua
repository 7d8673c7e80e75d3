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

function T.concurrency_scales_with_gpus()
  local r = ok(base { device = { gpus = { 0, 1, 2, 3 } } })
  eq(r.parallel.tensor, 4, "tensor follows the GPU list")
  eq(r.batching.max_concurrent_requests, 32, "8 x 4 GPUs")
  eq(r.parallel.loading_workers, 4, "loading workers = GPU count")
  r = ok(base { parallel = { tensor = 2 } })
  eq(#r.device.gpus, 2, "GPU list follows tensor")
  eq(r.device.gpus[2], 1, "gpus[2]")
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

function T.tensor_must_match_gpus()
  fails(base { device = { gpus = { 0 } }, parallel = { tensor = 2 } },
    "parallel.tensor (2)", "device.gpus (1", "device.gpus = {0, 1}")
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
    ["parallel.tensor"] = 1, ["parallel.loading_workers"] = 2, ["cache.block_size"] = 32,
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

function T.sharded_uses_all_gpus()
  local r = ok(base { sharded = true, device = { gpus = { 0, 1 } } })
  eq(r.parallel.tensor, 2)
  r = ok(base { sharded = true, num_shard = 2 })
  eq(r.parallel.tensor, 2)
  eq(#r.device.gpus, 2)
  fails(base { sharded = true }, "sharded = true needs device.gpus")
end

function T.pasted_flags()
  local r, origin, errors, notes = config.resolve(base {
    flags = "--num-shard 2 --max-total-tokens=8192 --max-input-length 4000 --enforce-eager --cuda-memory-fraction 0.9 --disable-flash-attention",
  })
  assert(#errors == 0, config.error_text(errors))
  eq(r.parallel.tensor, 2)
  eq(r.batching.max_total_tokens, 8192)
  eq(r.batching.max_input_tokens, 4000)
  eq(r.kernels.cuda_graphs, false)
  eq(r.device.memory_fraction, 0.9)
  eq(origin["parallel.tensor"], "flag --num-shard")
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
  eq(cfg.parallel.tensor, 2)
  eq(cfg.batching.max_concurrent_requests, 16)
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

return T
