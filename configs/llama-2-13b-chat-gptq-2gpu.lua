-- llama-2-13b-chat-gptq-2gpu.lua — Llama-2-13B-chat, GPTQ 4-bit, sharded over two V100s.
-- Hugging Face repository: TheBloke/Llama-2-13b-chat-GPTQ
--   huggingface-cli download TheBloke/Llama-2-13b-chat-GPTQ \
--     --local-dir /models/Llama-2-13b-chat-GPTQ
-- Guide row: 1-2 GPUs, max_tokens 4096, GPTQ, multi-GPU optional. This file
-- is the 2-GPU variant: tensor parallel over GPUs 0 and 1 with NCCL, 8
-- concurrent requests per GPU, the guide's NCCL settings.
--
-- NOT RUNNABLE YET: tensor parallelism is not implemented, so `v100rt check`
-- and `v100rt serve` refuse parallel.tensor = 2. The file is kept for when it
-- lands. Today the 4-bit 13B model fits one 16 GB V100 (`v100rt plan` shows
-- the figures); run this file on one GPU with
--   v100rt serve configs/llama-2-13b-chat-gptq-2gpu.lua --parallel.tensor 1 --device.gpus 0
-- and, to use both GPUs, a second server with --device.gpus 1 --port 8081
-- (replicas behind one Service).
-- In Kubernetes give the pod /dev/shm of 8-16Gi for 2 GPUs (the guide's dshm table).
local v100rt = require "v100rt"

return v100rt.config{
  model = {
    path = os.getenv("V100RT_MODEL") or "/models/Llama-2-13b-chat-GPTQ",
    quantize = "gptq",
    chat_template = "llama-2",
  },
  device = { kind = "cuda", gpus = { 0, 1 }, memory_fraction = 0.85 },
  parallel = { tensor = 2 },
  batching = {
    max_input_tokens = 2048,
    max_total_tokens = 4096,
    max_batch_prefill_tokens = 4096,
    max_concurrent_requests = 16,
  },
  cache = { block_size = 16, swap_space = 4 },
  nccl = {
    p2p_disable = false,
    ib_disable = false,
    p2p_level = "NVL",
    socket_ifname = "^lo,docker",
    shm_disable = false,
  },
  server = { host = "0.0.0.0", port = 8080 },
}
