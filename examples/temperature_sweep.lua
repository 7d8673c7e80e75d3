-- temperature_sweep.lua — how temperature changes what the model writes.
--
--   v100rt run examples/temperature_sweep.lua [CONFIG_OR_MODEL] [PROMPT] [OUT.csv]
--
-- For each temperature, generates from the same prompt with several seeds
-- and writes one CSV row per run: temperature, seed, tokens generated,
-- distinct tokens, mean logprob of the chosen tokens (the model's own
-- distribution, before temperature), decode tokens/s, and the text.
local v100rt = require "v100rt"

local model_path = arg[1] or "configs/tiny.lua"
local prompt = arg[2] or "In the beginning"
local out_path = arg[3] or "temperature_sweep.csv"
local temps = { 0, 0.3, 0.7, 1.0, 1.5 }
local seeds = { 1, 2, 3 }

local m = v100rt.load(model_path)
io.stderr:write("model: ", m.description, "\n")

local function csv(s)
  return '"' .. tostring(s):gsub('"', '""'):gsub("\n", "\\n") .. '"'
end

local f = assert(io.open(out_path, "w"))
f:write("temperature,seed,tokens,distinct,mean_logprob,decode_tok_s,finish,text\n")
for _, t in ipairs(temps) do
  for _, seed in ipairs(seeds) do
    local r = m:generate{ prompt = prompt, max_new_tokens = 48, temperature = t, seed = seed }
    local seen, distinct, lp = {}, 0, 0
    for i, id in ipairs(r.tokens) do
      if not seen[id] then seen[id] = true; distinct = distinct + 1 end
      lp = lp + r.logprobs[i]
    end
    f:write(("%g,%d,%d,%d,%.4f,%.1f,%s,%s\n"):format(t, seed, #r.tokens, distinct,
      lp / math.max(#r.tokens, 1), r.timings.decode_tok_s, r.finish_reason, csv(r.text)))
    io.stderr:write(("T=%.1f seed=%d: %d tokens, %d distinct, mean logprob %.2f\n")
      :format(t, seed, #r.tokens, distinct, lp / math.max(#r.tokens, 1)))
    if t == 0 then break end -- greedy: every seed gives the same text
  end
end
f:close()
m:close()
print("wrote " .. out_path)
