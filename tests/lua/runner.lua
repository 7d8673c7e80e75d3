-- runner.lua — runs the Lua tests under v100rt's own Lua host:
--   v100rt run tests/lua/runner.lua [DIR or FILE...] [--filter PATTERN]
-- Each test_*.lua returns a table of name → function; a test fails when it
-- raises. Prints one line per test and "RESULT passed failed" at the end.
local targets, filter = {}, nil
local i = 1
while arg[i] do
  if arg[i] == "--filter" then filter = arg[i + 1]; i = i + 2
  else targets[#targets + 1] = arg[i]; i = i + 1 end
end
if #targets == 0 then targets = { "tests/lua" } end

local files = {}
for _, t in ipairs(targets) do
  if t:match("%.lua$") then files[#files + 1] = t
  else
    local p = io.popen('ls "' .. t .. '"/test_*.lua 2>/dev/null')
    for f in p:lines() do files[#files + 1] = f end
    p:close()
  end
end
table.sort(files)

local passed, failed = 0, 0
-- The tests run inside a function so that nothing they return stays on the
-- stack afterwards (dead locals of a live frame still count for the GC).
local function run_all()
for _, file in ipairs(files) do
  local chunk, err = loadfile(file)
  local tests = chunk and select(2, pcall(chunk))
  if type(tests) ~= "table" then
    print(("FAIL  %s: cannot load: %s"):format(file, tostring(err or tests)))
    failed = failed + 1
  else
    local names = {}
    for name in pairs(tests) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      if not filter or name:find(filter, 1, true) then
        local ok, e = xpcall(tests[name], debug.traceback)
        if ok then
          passed = passed + 1
          print(("ok    %s"):format(name))
        else
          failed = failed + 1
          print(("FAIL  %s (%s)\n  %s"):format(name, file, (tostring(e):gsub("\n", "\n  "))))
        end
      end
    end
  end
end
end
run_all()
print(("RESULT %d %d"):format(passed, failed))
-- os.exit does not close the Lua state: collect the test modules first so
-- that FFI finalizers (models, buffers) run and LeakSanitizer sees no leak.
if jit then jit.flush() end
collectgarbage("collect")
collectgarbage("collect")
os.exit(failed == 0 and 0 or 1)
