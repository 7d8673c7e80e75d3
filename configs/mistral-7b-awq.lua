-- mistral-7b-awq.lua — Mistral-7B, AWQ 4-bit, one V100.
-- The guide names mistralai/Mistral-7B with AWQ; an AutoAWQ GEMM checkpoint
-- of it, e.g. TheBloke/Mistral-7B-v0.1-AWQ (or quantize it yourself with
-- `v100rt quantize --method awq` once that command exists):
--   huggingface-cli download TheBloke/Mistral-7B-v0.1-AWQ --local-dir /models/Mistral-7B-v0.1-AWQ
-- Guide row: 1 GPU, max_tokens 4096, AWQ. (vLLM refuses AWQ on compute
-- capability 7.0; v100rt runs it.)
local v100rt = require "v100rt"

return v100rt.config{
  model = {
    path = os.getenv("V100RT_MODEL") or "/models/Mistral-7B-v0.1-AWQ",
    quantize = "awq",
  },
  device = { kind = "cuda", gpus = { 0 }, memory_fraction = 0.85 },
  batching = {
    max_input_tokens = 2048,
    max_total_tokens = 4096,
    max_batch_prefill_tokens = 4096,
    max_concurrent_requests = 8,
  },
  cache = { block_size = 16, swap_space = 4 },
  server = { host = "0.0.0.0", port = 8080 },
}
