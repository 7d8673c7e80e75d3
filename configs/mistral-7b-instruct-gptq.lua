-- mistral-7b-instruct-gptq.lua — Mistral-7B-Instruct v0.2, GPTQ 4-bit, one V100.
-- Hugging Face repository: TheBloke/Mistral-7B-Instruct-v0.2-GPTQ
--   huggingface-cli download TheBloke/Mistral-7B-Instruct-v0.2-GPTQ \
--     --local-dir /models/Mistral-7B-Instruct-v0.2-GPTQ
-- Guide row: 1 GPU, max_tokens 4096, GPTQ.
local v100rt = require "v100rt"

return v100rt.config{
  model = {
    path = os.getenv("V100RT_MODEL") or "/models/Mistral-7B-Instruct-v0.2-GPTQ",
    quantize = "gptq",
    chat_template = "mistral",
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
