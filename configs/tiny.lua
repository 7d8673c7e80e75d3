-- tiny.lua — the demo: a tiny Llama-architecture model on the CPU.
--
-- The model is kjv-tiny, committed in models-trained/kjv-tiny: 5.4M
-- parameters trained on the King James Bible by examples/train-tiny/train.py
-- (see README, "The trained demo model"); it writes Bible-like English. Its
-- 512 positions (max_position_embeddings) bound the batching limits below.
-- V100RT_MODEL overrides the path, e.g. V100RT_MODEL=models/tiny for the
-- random-weight model `make demo-model` writes. Runs on any machine:
-- device.kind = "auto" picks the GPU when there is one and the CPU otherwise.
local v100rt = require "v100rt"

return v100rt.config{
  model = {
    path = os.getenv("V100RT_MODEL") or "models-trained/kjv-tiny",
    name = "tiny",
  },
  device = { kind = "auto" },
  batching = {
    max_input_tokens = 384,
    max_total_tokens = 512,
    max_batch_prefill_tokens = 2048,
  },
  server = { port = tonumber(os.getenv("PORT")) or 8080 },
}
