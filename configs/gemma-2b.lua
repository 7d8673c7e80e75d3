-- gemma-2b.lua — google/gemma-2b on one V100, fp16 (bf16 checkpoint converted at load).
-- Hugging Face repository: google/gemma-2b (gated: accept the licence first)
--   huggingface-cli download google/gemma-2b --local-dir /models/gemma-2b
-- Guide row: 1 GPU, max_tokens 4096, no quantization needed.
--
-- NOT RUNNABLE YET: the loader supports LlamaForCausalLM and MistralForCausalLM;
-- this model is GemmaForCausalLM. `v100rt check` passes this file while model.path
-- does not exist, and refuses it, naming the supported architectures, once
-- the model directory is there (it reads config.json as the loader does).
local v100rt = require "v100rt"

return v100rt.config{
  model = { path = os.getenv("V100RT_MODEL") or "/models/gemma-2b", dtype = "float16" },
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
