-- tiny-bench.lua — the demo model with room for the benchmark's load:
-- 64 requests in flight and prompts up to ~1500 tokens. It stays on the
-- random-weight models/tiny (`make demo-model`, 2048 positions): the trained
-- models-trained/kjv-tiny has 512 positions, too few for this load, and
-- examples/bench/RESULTS.md was measured with models/tiny.
local v100rt = require "v100rt"
return v100rt.config{
  model = { path = os.getenv("V100RT_MODEL") or "models/tiny", name = "tiny" },
  device = { kind = "auto" },
  batching = {
    max_input_tokens = 1536,
    max_total_tokens = 2048,
    max_batch_prefill_tokens = 2048,
    max_concurrent_requests = 64,
  },
  server = { port = tonumber(os.getenv("PORT")) or 8080 },
}
