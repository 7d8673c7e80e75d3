-- short_first.lua — a custom scheduling policy: short prompts first.
--
-- Interactive users send short prompts and notice latency; batch jobs send
-- long ones and care about throughput. This policy serves waiting requests
-- shortest-prompt-first (the priority hook), refuses prompts over 192
-- tokens during busy periods (admit), and when KV blocks run out preempts
-- the running request with the most tokens left to generate (pick_victim).
--
--   ./v100rt serve examples/policies/short_first.lua
--
-- Hooks run on their own thread once per request / step / preemption,
-- never per token; an error or an endless loop in a hook fails only the
-- request concerned (HTTP 500, error_type "policy"); a hook stuck in a C
-- function for 1 s also disables the policy (fcfs until restart).
local v100rt = require "v100rt"

local busy = false

return v100rt.config{
  model = { path = os.getenv("V100RT_MODEL") or "models-trained/kjv-tiny", name = "tiny" },
  device = { kind = "auto" },
  batching = {
    max_input_tokens = 384, -- kjv-tiny has 512 positions
    max_total_tokens = 512,
    policy = {
      name = "short_first",
      admit = function(req)
        return not (busy and req.prompt_tokens > 192)
      end,
      priority = function(req)
        return -req.prompt_tokens -- fewer prompt tokens = larger priority
      end,
      on_step = function(stats)
        busy = stats.waiting > 2 * stats.running
      end,
      pick_victim = function(running)
        local best, most = 1, -1
        for i, r in ipairs(running) do
          local left = r.max_new_tokens - r.generated_tokens
          if left > most then best, most = i, left end
        end
        return best
      end,
    },
  },
  server = { port = tonumber(os.getenv("PORT")) or 8080 },
}
