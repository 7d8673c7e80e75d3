-- test_keys.lua — every key of the config schema has tests that prove its
-- effect (the table in tests/lua/key_tests.lua), and every test named there
-- exists. A key added to the schema without a proving test fails here.
local config = require "v100rt.config"

local T = {}

local function table_file()
  local chunk = assert(loadfile("tests/lua/key_tests.lua"))
  return chunk()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function files(glob)
  local out = {}
  local p = io.popen("ls " .. glob .. " 2>/dev/null")
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end

-- The text of every test source of a suite, concatenated.
local SUITES = {
  unit = { glob = "tests/unit/*.c", pat = function(n) return "TEST(" .. n .. ")" end },
  lua = { glob = "tests/lua/test_*.lua", pat = function(n) return { "T." .. n .. " = function", "function T." .. n .. "(" } end },
  cli = { glob = "tests/cli/*.sh", pat = function(n) return 'T="' .. n .. '"' end },
  e2e = { glob = "tests/e2e/*.py", pat = function(n) return "def " .. n .. "(" end },
}
local sources = {}
local function source(suite)
  if not sources[suite] then
    local parts = {}
    for _, f in ipairs(files(SUITES[suite].glob)) do parts[#parts + 1] = read(f) end
    sources[suite] = table.concat(parts, "\n")
  end
  return sources[suite]
end

local function test_exists(ref)
  local suite, name = ref:match("^(%w+):(.+)$")
  if not suite or not SUITES[suite] then return false, "not suite:name (unit, lua, cli, e2e)" end
  local pats = SUITES[suite].pat(name)
  if type(pats) == "string" then pats = { pats } end
  for _, p in ipairs(pats) do
    if source(suite):find(p, 1, true) then return true end
  end
  return false, ("no %s in %s"):format(table.concat(pats, " or "), SUITES[suite].glob)
end

function T.every_schema_key_has_a_proving_test()
  local t = table_file()
  local missing, pending = {}, {}
  local paths = {}
  for path in pairs(config.KEY_BY_PATH) do paths[#paths + 1] = path end
  table.sort(paths)
  for _, path in ipairs(paths) do
    local tests = t.keys[path]
    if t.pending[path] then
      pending[#pending + 1] = ("  %s (PENDING: %s)"):format(path, t.pending[path])
    elseif type(tests) ~= "table" or #tests == 0 then
      missing[#missing + 1] = "  " .. path
    end
  end
  for path, who in pairs(t.pending) do
    if not config.KEY_BY_PATH[path] then
      pending[#pending + 1] = ("  %s (PENDING, not in this schema yet: %s)"):format(path, who)
    end
  end
  table.sort(pending)
  local msg = {}
  if #missing > 0 then
    msg[#msg + 1] = "schema keys without a proving test in tests/lua/key_tests.lua:\n" .. table.concat(missing, "\n")
  end
  if #pending > 0 then
    msg[#msg + 1] = "keys still PENDING their proving tests (fill them in tests/lua/key_tests.lua):\n"
      .. table.concat(pending, "\n")
  end
  if #msg > 0 then error(table.concat(msg, "\n"), 0) end
end

function T.key_table_names_only_schema_keys()
  local t = table_file()
  local stale = {}
  for path in pairs(t.keys) do
    if not config.KEY_BY_PATH[path] then stale[#stale + 1] = "  " .. path end
  end
  table.sort(stale)
  if #stale > 0 then
    error("tests/lua/key_tests.lua lists keys the schema does not have:\n" .. table.concat(stale, "\n"), 0)
  end
end

function T.key_table_names_only_existing_tests()
  local t = table_file()
  local bad = {}
  for path, tests in pairs(t.keys) do
    for _, ref in ipairs(tests) do
      local ok, why = test_exists(ref)
      if not ok then bad[#bad + 1] = ("  %s: %s (%s)"):format(path, ref, why) end
    end
  end
  table.sort(bad)
  if #bad > 0 then
    error("tests/lua/key_tests.lua names tests that do not exist:\n" .. table.concat(bad, "\n"), 0)
  end
end

-- The checks themselves catch what they claim to (a key without an entry,
-- a test that is not there).
function T.key_coverage_checks_can_fail()
  assert(not test_exists("unit:no_such_test_here"))
  assert(not test_exists("lua:no_such_test_here"))
  assert(not test_exists("cli:no such block"))
  assert(not test_exists("nonsense"))
  assert(test_exists("unit:config_load_defaults_into_struct"))
  assert(test_exists("lua:every_schema_key_has_a_proving_test"))
  assert(test_exists("cli:check: pasted TGI flags"))
  assert(test_exists("e2e:t_payload_limit"))
end

return T
