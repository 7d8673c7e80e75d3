-- test_trained.lua — the committed trained model, models-trained/kjv-tiny,
-- against transformers: on a held-out excerpt (tests/fixtures/kjv/heldout.txt,
-- Revelation 21, never seen in training) v100rt must produce the same token
-- ids as transformers' tokenizer and the same perplexity as transformers'
-- forward pass (tests/fixtures/kjv/expected.json, from make_expected.py: one
-- window, <s> + text, fp16 weights computed in fp32).
--
-- Tolerances. transformers computed the fp16 weights in fp32. v100rt's CPU
-- backend computes activations in fp32 with either model.dtype but keeps the
-- paged KV cache in fp16 (as on the GPU), which moves single logprobs by up
-- to ~3e-3 nats on this text (measured: 2.5e-3; perplexity 0.002% apart).
-- So: float32, perplexity within 0.1% and each logprob within 0.01 nats;
-- float16 (the default; on a GPU it also rounds activations to fp16, 11-bit
-- mantissa, ~5e-4 relative per rounding over 6 layers), perplexity within
-- 1% and each logprob within 0.1 nats.
local v100rt = require "v100rt"

local T = {}

local MODEL = "models-trained/kjv-tiny"
local FIX = "tests/fixtures/kjv/"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- expected.json is flat; its fields are read with patterns.
local expected = read(FIX .. "expected.json")
local function num_field(name)
  return tonumber(expected:match('"' .. name .. '":%s*([-%d%.eE+]+)'))
end
local function list_field(name)
  local body = expected:match('"' .. name .. '":%s*(%b[])')
  local t = {}
  for x in body:gmatch("[-%d%.eE+]+") do t[#t + 1] = tonumber(x) end
  return t
end
local WANT_IDS, WANT_LP, WANT_PPL = list_field("ids"), list_field("logprobs"), num_field("perplexity")
local TEXT = read(FIX .. "heldout.txt")

local function open(dtype)
  local tmp = os.tmpname()
  os.remove(tmp)
  local path = tmp .. "-cfg.lua"
  local f = assert(io.open(path, "w"))
  f:write(([[
local v100rt = require "v100rt"
return v100rt.config{
  model = { path = %q, dtype = %q },
  device = { kind = "cpu", threads = 2 },
  batching = { max_input_tokens = 511, max_total_tokens = 512, max_batch_prefill_tokens = 512 },
}
]]):format(MODEL, dtype))
  f:close()
  local m = v100rt.load(path)
  os.remove(path)
  return m
end

local function check_ids(got)
  if #got ~= #WANT_IDS then error(("%d ids, transformers has %d"):format(#got, #WANT_IDS), 2) end
  for i = 1, #got do
    if got[i] ~= WANT_IDS[i] then
      error(("id %d is %d, transformers has %d"):format(i, got[i], WANT_IDS[i]), 2)
    end
  end
end

-- perplexity = exp(-mean over t = 2..n of log p(ids[t] | ids[1..t-1])).
local function perplexity(m, ids, lp_tol)
  local lg = m:logits(ids)
  local sum, worst, at = 0, 0, 0
  for t = 2, #ids do
    local lp = lg:logprob(t - 1, ids[t])
    sum = sum + lp
    local d = math.abs(lp - WANT_LP[t - 1])
    if d > worst then worst, at = d, t end
  end
  assert(worst < lp_tol, ("token %d: logprob differs from transformers by %g (tolerance %g)")
    :format(at, worst, lp_tol))
  return math.exp(-sum / (#ids - 1)), worst
end

local function check(dtype, rel_tol, lp_tol)
  local m = open(dtype)
  assert(m.vocab_size == 4096, m.vocab_size)
  local ids = m:tokenize(TEXT)
  check_ids(ids)
  local ppl, worst = perplexity(m, ids, lp_tol)
  local rel = math.abs(ppl - WANT_PPL) / WANT_PPL
  assert(rel < rel_tol, ("%s: perplexity %.4f, transformers %.4f (%.3f%% apart, tolerance %.2f%%)")
    :format(dtype, ppl, WANT_PPL, 100 * rel, 100 * rel_tol))
  io.stderr:write(("  kjv-tiny %s: perplexity %.4f vs transformers %.4f (%.4f%%), worst logprob diff %.2e\n")
    :format(dtype, ppl, WANT_PPL, 100 * rel, worst))
  m:close()
end

T.trained_heldout_token_ids_match_transformers = function()
  assert(#WANT_IDS > 100 and WANT_IDS[1] == 1, "expected.json: ids")
  assert(#WANT_LP == #WANT_IDS - 1, "expected.json: one logprob per predicted token")
  local m = v100rt.load(MODEL)
  check_ids(m:tokenize(TEXT))
  assert(m:detokenize(m:tokenize(TEXT), true) == TEXT, "detokenize(tokenize(text)) ~= text")
  m:close()
end

T.trained_heldout_perplexity_float32_matches_transformers = function()
  check("float32", 1e-3, 1e-2)
end

T.trained_heldout_perplexity_float16_matches_transformers = function()
  check("float16", 1e-2, 1e-1)
end

return T
