-- v100rt.policy — runs a scheduling policy's hooks for the engine.
--
-- The policy has its own Lua state on its own thread (with the JIT off and
-- a time budget per call; the engine waits for each call up to a deadline
-- and abandons a call stuck in C, see runtime/engine/policy.h). It loads a
-- built-in policy by name (lua/v100rt/policies/<name>.lua) or, for a table
-- of hooks, the config file again, and calls the functions returned here.
-- Requests and stats reach Lua as FFI views of C structs (vrt_policy_req,
-- vrt_policy_stats in runtime/vrt.h), read-only copies:
--
--   admit(req)            -> false/nil to refuse the request (429), true to queue it
--   priority(req)         -> number; larger runs first (once per request)
--   on_step(stats)        -> once per engine step (observe, log, adapt)
--   pick_victim(running)  -> index (1-based) into the array of running
--                            requests to preempt when KV blocks run out
--
-- req fields: id, prompt_tokens, max_new_tokens, generated_tokens, priority,
-- tenant (const char *, may be NULL), arrival_s, preempted.
-- stats fields: running, waiting, free_blocks, num_blocks, steps,
-- preemptions, last_step_s.
local ffi = require("v100rt.ffi").ffi

local M = {}

-- Returns the hook table of the config file's batching.policy, plus the
-- policy's name (the engine calls M.builtin directly for a built-in name).
function M.load(config_path)
  local cfg = require "v100rt.config"
  -- The config file holding the hook table; only its batching.policy
  -- matters here (the rest was validated with the command line's flags).
  local r, _, errors = cfg.load_file(config_path)
  for _, e in ipairs(errors or {}) do
    if e.path == "(file)" or e.path == "(config)" or e.path:match("^batching%.policy") then
      error(cfg.error_text(errors), 0)
    end
  end
  local p = r.batching.policy or "fcfs"
  if type(p) == "string" then return M.builtin(p) end
  return p, p.name or "custom"
end

-- Returns the hook table of a built-in policy, plus its name.
function M.builtin(name)
  local ok, mod = pcall(require, "v100rt.policies." .. name)
  if not ok then error(("cannot load the built-in policy %q: %s"):format(name, mod), 0) end
  return mod, name
end

local req_t = ffi.typeof("const vrt_policy_req *")
local stats_t = ffi.typeof("const vrt_policy_stats *")

-- Wraps the hooks into functions of light userdata pointers.
function M.wrap(hooks)
  local w = {}
  if hooks.admit then
    w.admit = function(p)
      local v = hooks.admit(ffi.cast(req_t, p))
      return v ~= nil and v ~= false
    end
  end
  if hooks.priority then
    w.priority = function(p)
      local v = hooks.priority(ffi.cast(req_t, p))
      if type(v) ~= "number" or v ~= v then
        error(("priority hook returned %s, expected a number"):format(tostring(v)), 0)
      end
      return v
    end
  end
  if hooks.on_step then
    w.on_step = function(p) hooks.on_step(ffi.cast(stats_t, p)) end
  end
  if hooks.pick_victim then
    w.pick_victim = function(p, n)
      local base = ffi.cast(req_t, p)
      local running = {}
      for i = 1, n do running[i] = base + (i - 1) end
      local v = hooks.pick_victim(running)
      if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > n then
        error(("pick_victim returned %s, expected an index 1..%d"):format(tostring(v), n), 0)
      end
      return v
    end
  end
  return w
end

return M
