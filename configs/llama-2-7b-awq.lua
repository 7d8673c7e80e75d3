-- llama-2-7b-awq.lua — Llama-2-7B, AWQ 4-bit, one V100.
-- The guide names meta-llama/Llama-2-7b with AWQ; an AutoAWQ GEMM checkpoint
-- of it, e.g. TheBloke/Llama-2-7B-AWQ:
--   huggingface-cli download TheBloke/Llama-2-7B-AWQ --local-dir /models/Llama-2-7B-AWQ
-- Guide row: 1 GPU, max_tokens 4096, AWQ.
local v100rt = require "v100rt"

return v100rt.config{
  model = {
    path = os.getenv("V100RT_MODEL") or "/models/Llama-2-7B-AWQ",
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
