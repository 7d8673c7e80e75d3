-- v100rt — the Lua module for configs and scripts (`require "v100rt"`).
--
-- In a config file:   return v100rt.config{ model = { path = "..." }, ... }
-- In a script run by `v100rt run`, the same module gives the model runtime:
--
--   local m = v100rt.load("configs/tiny.lua")      -- or a model directory
--   local ids = m:tokenize("Hello")                -- { 1, 15043 }
--   local r = m:generate{ prompt = "Hello", max_new_tokens = 32, temperature = 0.8, seed = 1 }
--   print(r.text, #r.tokens, r.timings.decode_tok_s, r.finish_reason)
--   local lg = m:logits(ids)                       -- lg:get(i, id), lg:argmax(i), lg:row(i)
--
-- Everything goes through LuaJIT FFI over runtime/vrt.h; a C error raises a
-- Lua error with the C message.
local M = {}

M.VERSION = "0.1.0"

-- Marks a table as a v100rt config and returns it. Validation happens when
-- v100rt loads the file, so that every error is reported at once.
function M.config(t)
  if type(t) ~= "table" then
    error("v100rt.config expects a table: v100rt.config{ model = {...}, ... }", 2)
  end
  return t
end

-- Loads and validates a config file; returns the resolved table, or nil and
-- the list of error messages (one string, one error per line).
function M.check(path)
  local cfg = require "v100rt.config"
  local r, origin, errors = cfg.load_file(path)
  if #errors > 0 then return nil, cfg.error_text(errors) end
  return r, origin
end

-- ---- the model runtime (v100rt run) -------------------------------------

local Model = {}
Model.__index = Model

local function api()
  local f = require "v100rt.ffi"
  return f.ffi, f.C
end

local function cerr(ffi, e, level)
  error(ffi.string(e.msg), (level or 1) + 1)
end

-- Loads a config file (*.lua) or a model directory; returns a model handle.
function M.load(path)
  if type(path) ~= "string" then error("v100rt.load expects a config path or model directory", 2) end
  local ffi, C = api()
  local e = ffi.new("vrt_err")
  local out = ffi.new("vrt_runtime *[1]")
  if C.vrt_runtime_open(out, path, e) ~= 0 then cerr(ffi, e, 2) end
  local self = setmetatable({}, Model)
  self.rt = ffi.gc(out[0], C.vrt_runtime_close)
  self.vocab_size = C.vrt_runtime_vocab_size(self.rt)
  self.max_total_tokens = C.vrt_runtime_max_total_tokens(self.rt)
  self.description = ffi.string(C.vrt_runtime_describe(self.rt))
  return self
end

-- Frees the model now (otherwise the garbage collector does).
function Model:close()
  local ffi, C = api()
  if self.rt ~= nil then
    C.vrt_runtime_close(ffi.gc(self.rt, nil))
    self.rt = nil
  end
end

local function check_open(self)
  if self.rt == nil then error("the model was closed", 3) end
end

-- Token ids of text (a Lua array); add_special (default true) adds BOS.
function Model:tokenize(text, add_special)
  check_open(self)
  if type(text) ~= "string" then error("tokenize expects a string", 2) end
  local ffi, C = api()
  local e = ffi.new("vrt_err")
  local ids, n = ffi.new("int32_t *[1]"), ffi.new("int[1]")
  if C.vrt_runtime_tokenize(self.rt, text, #text, add_special == false and 0 or 1, ids, n, e) ~= 0 then
    cerr(ffi, e, 2)
  end
  local t = {}
  for i = 0, n[0] - 1 do t[i + 1] = ids[0][i] end
  C.vrt_free(ids[0])
  return t
end

local function id_array(ffi, ids, what)
  if type(ids) ~= "table" then error(what .. " expects an array of token ids", 3) end
  local a = ffi.new("int32_t[?]", math.max(#ids, 1))
  for i, v in ipairs(ids) do
    if type(v) ~= "number" or v ~= math.floor(v) then
      error(("%s: element %d is not an integer token id"):format(what, i), 3)
    end
    a[i - 1] = v
  end
  return a, #ids
end

-- Text of token ids; skip_special (default true) drops BOS/EOS etc.
function Model:detokenize(ids, skip_special)
  check_open(self)
  local ffi, C = api()
  local a, n = id_array(ffi, ids, "detokenize")
  local e = ffi.new("vrt_err")
  local text, len = ffi.new("char *[1]"), ffi.new("size_t[1]")
  if C.vrt_runtime_detokenize(self.rt, a, n, skip_special == false and 0 or 1, text, len, e) ~= 0 then
    cerr(ffi, e, 2)
  end
  local s = ffi.string(text[0], len[0])
  C.vrt_free(text[0])
  return s
end

local GEN_KEYS = {
  prompt = true, tokens = true, max_new_tokens = true, temperature = true, do_sample = true,
  top_k = true, top_p = true, typical_p = true, min_p = true, repetition_penalty = true,
  frequency_penalty = true, presence_penalty = true, seed = true, stop = true,
  stop_token_ids = true, ignore_eos = true, add_special_tokens = true, logprobs = true,
}

-- Generates from t.prompt (text) or t.tokens (ids). Returns
-- { text, tokens, logprobs, prompt_tokens, finish_reason, seed,
--   timings = { prefill_s, decode_s, prefill_tok_s, decode_tok_s } }.
function Model:generate(t)
  check_open(self)
  if type(t) ~= "table" then error("generate expects a table: m:generate{ prompt = ... }", 2) end
  for k in pairs(t) do
    if not GEN_KEYS[k] then error(("generate: unknown parameter %q"):format(tostring(k)), 2) end
  end
  local ffi, C = api()
  local p = ffi.new("vrt_gen_params")
  C.vrt_gen_params_init(p)
  p.max_new_tokens = t.max_new_tokens or p.max_new_tokens
  if t.temperature and t.temperature > 0 then p.do_sample = 1; p.temperature = t.temperature end
  if t.do_sample ~= nil then p.do_sample = t.do_sample and 1 or 0 end
  if t.top_k then p.top_k = t.top_k end
  if t.top_p then p.top_p = t.top_p end
  if t.typical_p then p.typical_p = t.typical_p end
  if t.min_p then p.min_p = t.min_p end
  if (t.top_k or t.top_p or t.typical_p or t.min_p) and t.do_sample == nil then p.do_sample = 1 end
  if t.repetition_penalty then p.repetition_penalty = t.repetition_penalty end
  if t.frequency_penalty then p.frequency_penalty = t.frequency_penalty end
  if t.presence_penalty then p.presence_penalty = t.presence_penalty end
  if t.seed then p.seed = t.seed; p.has_seed = 1 end
  if t.ignore_eos then p.ignore_eos = 1 end
  if t.add_special_tokens == false then p.add_special_tokens = 0 end
  if t.logprobs then p.n_logprobs = t.logprobs end
  local keep = {}
  if t.stop then
    local stops = type(t.stop) == "table" and t.stop or { t.stop }
    local arr = ffi.new("const char *[?]", #stops)
    for i, s in ipairs(stops) do arr[i - 1] = s; keep[#keep + 1] = s end
    p.stop, p.n_stop, keep.arr = arr, #stops, arr
  end
  if t.stop_token_ids then
    local a, n = id_array(ffi, t.stop_token_ids, "generate: stop_token_ids")
    p.stop_ids, p.n_stop_ids, keep.ids = a, n, a
  end
  local e = ffi.new("vrt_err")
  local r = ffi.new("vrt_gen_result")
  local rc
  if t.tokens then
    local a, n = id_array(ffi, t.tokens, "generate: tokens")
    rc = C.vrt_runtime_generate_ids(self.rt, a, n, p, nil, nil, r, e)
  elseif type(t.prompt) == "string" then
    rc = C.vrt_runtime_generate(self.rt, t.prompt, #t.prompt, p, nil, nil, r, e)
  else
    error("generate needs prompt (a string) or tokens (an array of ids)", 2)
  end
  if rc ~= 0 then cerr(ffi, e, 2) end
  local out = {
    text = ffi.string(r.text, r.text_len),
    tokens = {}, logprobs = {},
    prompt_tokens = r.n_prompt_tokens,
    finish_reason = ffi.string(r.finish_reason),
    seed = tonumber(r.seed),
    timings = { prefill_s = r.prefill_s, decode_s = r.decode_s,
                prefill_tok_s = r.prefill_tok_s, decode_tok_s = r.decode_tok_s },
  }
  for i = 0, r.n_tokens - 1 do
    out.tokens[i + 1] = r.tokens[i]
    out.logprobs[i + 1] = r.logprobs[i]
  end
  C.vrt_gen_result_free(r)
  return out
end

local Logits = {}
Logits.__index = Logits
-- Logit of token id at position i (both 1-based positions, 0-based ids).
function Logits:get(i, id) return self.data[(i - 1) * self.vocab + id] end
function Logits:row(i)
  local t = {}
  for j = 0, self.vocab - 1 do t[j + 1] = self.data[(i - 1) * self.vocab + j] end
  return t
end
function Logits:argmax(i)
  local base, best = (i - 1) * self.vocab, 0
  for j = 1, self.vocab - 1 do
    if self.data[base + j] > self.data[base + best] then best = j end
  end
  return best
end
-- log-softmax of position i at token id.
function Logits:logprob(i, id)
  local base, m = (i - 1) * self.vocab, -math.huge
  for j = 0, self.vocab - 1 do if self.data[base + j] > m then m = self.data[base + j] end end
  local z = 0
  for j = 0, self.vocab - 1 do z = z + math.exp(self.data[base + j] - m) end
  return self.data[base + id] - m - math.log(z)
end

-- Logits of every position of ids run as one sequence.
function Model:logits(ids)
  check_open(self)
  local ffi, C = api()
  local a, n = id_array(ffi, ids, "logits")
  local data = ffi.new("float[?]", math.max(n, 1) * self.vocab_size)
  local e = ffi.new("vrt_err")
  if C.vrt_runtime_logits(self.rt, a, n, data, e) ~= 0 then cerr(ffi, e, 2) end
  return setmetatable({ data = data, n = n, vocab = self.vocab_size }, Logits)
end

return M
