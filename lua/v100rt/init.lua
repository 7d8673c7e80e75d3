-- v100rt — the Lua module for configs and scripts (`require "v100rt"`).
--
-- In a config file:   return v100rt.config{ model = { path = "..." }, ... }
-- In a script run by `v100rt run`, the same module gives the runtime's
-- functions (more arrive with the model runtime).
local M = {}

M.VERSION = "0.1.0"

-- Marks a table as a v100rt config and returns it. Validation happens when
-- v100rt loads the file, so that every error is reported at once.
function M.config(t)
  if type(t) ~= "table" then
    error("v100rt.config expects a table: v100rt.config{ model = {...}, ... }", 2)
  end
  return t
end

-- Loads and validates a config file; returns the resolved table, or nil and
-- the list of error messages (one string, one error per line).
function M.check(path)
  local cfg = require "v100rt.config"
  local r, origin, errors = cfg.load_file(path)
  if #errors > 0 then return nil, cfg.error_text(errors) end
  return r, origin
end

return M
