-- test_runtime.lua — the model runtime as a script sees it (require "v100rt"):
-- load, tokenize/detokenize, generate (greedy, seeded sampling, stop strings,
-- stop ids, limits), logits, and errors raised with the C message. The model
-- is a tiny random one written by `v100rt mkmodel` into a temporary folder.
local v100rt = require "v100rt"

local T = {}

local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "-model"
local function sh(cmd)
  local ok = os.execute(cmd)
  if ok ~= 0 and ok ~= true then error("command failed: " .. cmd, 2) end
end
sh("./v100rt mkmodel --preset tiny --seed 7 " .. DIR .. " >/dev/null 2>&1")

local function write_config(extra)
  local path = tmp .. "-cfg.lua"
  local f = assert(io.open(path, "w"))
  f:write(([[
local v100rt = require "v100rt"
return v100rt.config{
  model = { path = %q },
  device = { kind = "cpu", threads = 2 },
  %s
}
]]):format(DIR, extra or ""))
  f:close()
  return path
end

local model
local function m()
  model = model or v100rt.load(DIR)
  return model
end

local function eq_list(a, b, what)
  if #a ~= #b then error(("%s: %d vs %d elements"):format(what, #a, #b), 2) end
  for i = 1, #a do
    if a[i] ~= b[i] then error(("%s: element %d is %s vs %s"):format(what, i, a[i], b[i]), 2) end
  end
end

local function raises(fn, fragment)
  local ok, e = pcall(fn)
  if ok then error("expected an error containing " .. fragment, 2) end
  if not tostring(e):find(fragment, 1, true) then
    error(("error %q lacks %q"):format(tostring(e), fragment), 2)
  end
end

T.runtime_load_describes_the_model = function()
  local d = m().description
  assert(d:find("LlamaForCausalLM", 1, true), d)
  assert(m().vocab_size == 3000, m().vocab_size)
  assert(m().max_total_tokens == 2048, m().max_total_tokens) -- the model's max_position_embeddings
end

T.runtime_tokenize_detokenize_round_trip = function()
  local text = "In the beginning God created the heaven and the earth. 123 ünïcode"
  local ids = m():tokenize(text)
  assert(ids[1] == 1, "BOS first")
  assert(m():detokenize(ids) == text, m():detokenize(ids))
  local no_bos = m():tokenize(text, false)
  assert(#no_bos == #ids - 1 and no_bos[1] ~= 1)
end

-- Greedy generation with the KV cache must pick, at every step, the argmax
-- of the logits recomputed from scratch over the whole prefix.
T.runtime_greedy_generate_equals_argmax_of_full_logits = function()
  local prompt = m():tokenize("And God said")
  local r = m():generate{ tokens = prompt, max_new_tokens = 24, ignore_eos = true }
  assert(#r.tokens == 24 and r.finish_reason == "length", r.finish_reason)
  local seq = {}
  for i, id in ipairs(prompt) do seq[i] = id end
  for _, id in ipairs(r.tokens) do seq[#seq + 1] = id end
  local lg = m():logits(seq)
  for i = 1, #r.tokens do
    local at = #prompt + i - 1
    local want = lg:argmax(at)
    if want ~= r.tokens[i] then
      error(("step %d: generate chose %d, argmax of full logits is %d"):format(i, r.tokens[i], want))
    end
    local lp = lg:logprob(at, r.tokens[i])
    assert(math.abs(lp - r.logprobs[i]) < 1e-3, ("logprob %g vs %g"):format(lp, r.logprobs[i]))
  end
  local r2 = m():generate{ tokens = prompt, max_new_tokens = 24, ignore_eos = true }
  eq_list(r.tokens, r2.tokens, "greedy is deterministic")
  -- The text continues the prompt: decode(prompt's last token + output)
  -- minus decode(prompt's last token), so a leading space is kept.
  local last = prompt[#prompt]
  local ctx = m():detokenize({ last })
  local both = { last }
  for _, id in ipairs(r.tokens) do both[#both + 1] = id end
  local full = m():detokenize(both)
  assert(full:sub(1, #ctx) == ctx and r.text == full:sub(#ctx + 1),
    ("text %q is not the continuation of %q in %q"):format(r.text, ctx, full))
end

T.runtime_seeded_sampling_is_reproducible = function()
  local a = m():generate{ prompt = "Hello", max_new_tokens = 20, temperature = 1.0, seed = 42, ignore_eos = true }
  local b = m():generate{ prompt = "Hello", max_new_tokens = 20, temperature = 1.0, seed = 42, ignore_eos = true }
  eq_list(a.tokens, b.tokens, "same seed")
  assert(a.seed == 42)
  local differ = false
  for s = 43, 47 do
    local c = m():generate{ prompt = "Hello", max_new_tokens = 20, temperature = 1.0, seed = s, ignore_eos = true }
    for i = 1, #c.tokens do if c.tokens[i] ~= a.tokens[i] then differ = true end end
  end
  assert(differ, "five other seeds all gave the same 20 tokens")
end

T.runtime_stop_string_cuts_the_text = function()
  local r = m():generate{ prompt = "Hello", max_new_tokens = 30, ignore_eos = true }
  -- Stop at a piece of the greedy text that starts after its first 5 bytes.
  local stop = r.text:sub(6, 9)
  local first = r.text:find(stop, 1, true)
  local s = m():generate{ prompt = "Hello", max_new_tokens = 30, ignore_eos = true, stop = { stop } }
  assert(s.finish_reason == "stop_sequence", s.finish_reason)
  assert(s.text == r.text:sub(1, first - 1), ("%q vs %q"):format(s.text, r.text:sub(1, first - 1)))
end

T.runtime_stop_token_ids_and_limits = function()
  local r = m():generate{ prompt = "Hello", max_new_tokens = 10, ignore_eos = true }
  local s = m():generate{ prompt = "Hello", max_new_tokens = 10, ignore_eos = true, stop_token_ids = { r.tokens[3] } }
  local first
  for i, id in ipairs(r.tokens) do if id == r.tokens[3] then first = i; break end end
  assert(#s.tokens == first, ("stopped after %d tokens, want %d"):format(#s.tokens, first))
  local one = m():generate{ prompt = "Hello", max_new_tokens = 1 }
  assert(#one.tokens == 1 and (one.finish_reason == "length" or one.finish_reason == "eos_token"))
end

T.runtime_chunked_prefill_gives_the_same_logits = function()
  local ids = m():tokenize(("Let there be light: and there was light. "):rep(6))
  local full = m():logits(ids)
  local small = v100rt.load(write_config("batching = { max_batch_prefill_tokens = 7, max_input_tokens = 1000, max_total_tokens = 1100 },"))
  local chunked = small:logits(ids)
  for i = 1, #ids do
    for id = 0, 2999, 37 do
      local a, b = full:get(i, id), chunked:get(i, id)
      assert(math.abs(a - b) < 1e-4, ("position %d id %d: %g vs %g"):format(i, id, a, b))
    end
  end
  small:close()
end

T.runtime_errors_carry_the_c_message = function()
  local cfg = write_config("batching = { max_input_tokens = 8, max_total_tokens = 16 },")
  local lim = v100rt.load(cfg)
  raises(function() lim:generate{ prompt = ("word "):rep(20) } end, "batching.max_input_tokens (8)")
  raises(function() lim:generate{ prompt = "Hi", max_new_tokens = 30 } end, "batching.max_total_tokens (16)")
  raises(function() lim:generate{ tokens = { 1, 5000 } } end, "outside the vocabulary")
  raises(function() lim:generate{ prompt = "Hi", temprature = 1 } end, "unknown parameter")
  raises(function() lim:generate{ prompt = "Hi", top_p = 1.5 } end, "top_p")
  raises(function() lim:detokenize{ 1, 99999 } end, "99999")
  raises(function() lim:logits{ 1, -3 } end, "outside the vocabulary")
  lim:close()
  raises(function() lim:tokenize("x") end, "closed")
  raises(function() v100rt.load(DIR .. "-missing") end, "-missing")
end

local function config_file(body)
  local path = tmp .. "-cfg2.lua"
  local f = assert(io.open(path, "w"))
  f:write("return " .. body .. "\n")
  f:close()
  return path
end

-- model.dtype, device.kind, cache.block_size / num_blocks as the runtime
-- reports them (vrt_runtime_describe).
T.runtime_dtype_kind_and_cache_keys_take_effect = function()
  local a = v100rt.load(config_file(("{ model = { path = %q, dtype = 'float32' }, device = { kind = 'cpu' } }"):format(DIR)))
  assert(a.description:find("f32 weights", 1, true), a.description)
  assert(a.description:find("cpu backend", 1, true), a.description)
  a:close()
  local b = v100rt.load(config_file(("{ model = { path = %q }, device = { kind = 'cuda-emu', threads = 2 },"
    .. " cache = { block_size = 32, num_blocks = 100 } }"):format(DIR)))
  assert(b.description:find("f16 weights", 1, true), b.description)
  assert(b.description:find("cuda-emu backend, 100 KV blocks of 32", 1, true), b.description)
  b:close()
end

-- model.tokenizer: a model directory without tokenizer files loads with the
-- tokenizer of another directory, and fails without it.
T.runtime_model_tokenizer_dir_is_used = function()
  local bare = tmp .. "-bare"
  sh(("mkdir -p %s && cp %s/config.json %s/*.safetensors %s/"):format(bare, DIR, DIR, bare))
  raises(function()
    v100rt.load(config_file(("{ model = { path = %q }, device = { kind = 'cpu' } }"):format(bare)))
  end, "loading the tokenizer")
  local m2 = v100rt.load(config_file(("{ model = { path = %q, tokenizer = %q }, device = { kind = 'cpu' } }"):format(bare, DIR)))
  eq_list(m2:tokenize("In the beginning"), m():tokenize("In the beginning"), "tokens with model.tokenizer")
  m2:close()
  sh("rm -rf " .. bare)
end

return T
