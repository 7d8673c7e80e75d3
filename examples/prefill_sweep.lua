-- prefill_sweep.lua — prompt length vs prefill time and decode speed.
--
--   v100rt run examples/prefill_sweep.lua [CONFIG_OR_MODEL] [OUT.csv]
--
-- Builds prompts of growing length from a fixed text, generates 16 tokens
-- greedily after each, and writes prompt tokens, prefill seconds, prefill
-- tokens/s and decode tokens/s as CSV (and a table on stdout).
local v100rt = require "v100rt"

local model_path = arg[1] or "configs/tiny.lua"
local out_path = arg[2] or "prefill_sweep.csv"
local m = v100rt.load(model_path)
io.stderr:write("model: ", m.description, "\n")

local base = "And God said, Let there be light: and there was light. "
local f = assert(io.open(out_path, "w"))
f:write("prompt_tokens,prefill_s,prefill_tok_s,decode_tok_s\n")
print(("%14s %12s %14s %14s"):format("prompt tokens", "prefill s", "prefill tok/s", "decode tok/s"))
local len = 16
while true do
  local ids = m:tokenize(base:rep(64))
  if len + 16 > m.max_total_tokens or len > #ids then break end
  local prompt = {}
  for i = 1, len do prompt[i] = ids[i] end
  local r = m:generate{ tokens = prompt, max_new_tokens = 16, ignore_eos = true }
  f:write(("%d,%.6f,%.1f,%.1f\n"):format(r.prompt_tokens, r.timings.prefill_s,
    r.timings.prefill_tok_s, r.timings.decode_tok_s))
  print(("%14d %12.4f %14.1f %14.1f"):format(r.prompt_tokens, r.timings.prefill_s,
    r.timings.prefill_tok_s, r.timings.decode_tok_s))
  len = len * 2
end
f:close()
m:close()
print("wrote " .. out_path)
