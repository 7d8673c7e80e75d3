-- serve.lua — an HTTP load generator for a running `v100rt serve` (or any
-- OpenAI-compatible server: TGI, vLLM).
--
--   v100rt run examples/bench/serve.lua [--url http://127.0.0.1:8080]
--       [--concurrency 1,4,16,64] [--requests N] [--max-tokens 64]
--       [--out examples/bench/RESULTS.md] [--csv examples/bench/serve.csv]
--       [--timeout 120] [--max-time 900] [--model NAME] [--api-key KEY]
--       [--prompt-words 16,512] [--seed 1] [--no-usage] [--ignore-eos]
--
-- For each concurrency level it sends N streaming requests (default
-- 2 × concurrency, at least 8) to POST /v1/completions with "stream": true,
-- keeping `concurrency` of them in flight, and measures per request the time
-- to the first SSE chunk carrying text (TTFT), the gaps between text chunks
-- (inter-token latency, ITL) and the end-to-end time. It prints a markdown
-- table and appends it to --out, and appends one CSV row per level to --csv.
--
-- LuaJIT has no socket library, so this talks HTTP/1.1 itself over libc
-- sockets through the FFI: non-blocking sockets and poll(), one connection
-- per request, all requests of a level driven by this one Lua loop. Times come
-- from clock_gettime(CLOCK_MONOTONIC) (os.clock is CPU time, not wall time).
--
-- Generated tokens: the server's usage.completion_tokens when it sends one
-- ("stream_options": {"include_usage": true}, turned off by --no-usage),
-- else the number of text chunks. ITL is measured between chunks, so it is
-- per token only when the server sends one token per chunk (v100rt, TGI and
-- vLLM do). Nothing here asserts a time; results are tables, not gates.
local ffi = require "ffi"
local bit = require "bit"

-- ---- libc ------------------------------------------------------------------

local function cdef(s) pcall(ffi.cdef, s) end -- tolerate an earlier identical cdef
cdef [[ struct timespec { long tv_sec; long tv_nsec; }; ]]
cdef [[ int clock_gettime(int clk, struct timespec *ts); ]]
cdef [[ struct pollfd { int fd; short events; short revents; }; ]]
cdef [[ int poll(struct pollfd *fds, unsigned long nfds, int timeout); ]]
cdef [[ int socket(int domain, int type, int protocol); ]]
cdef [[ struct sockaddr { unsigned short sa_family; char sa_data[14]; }; ]]
cdef [[ int connect(int fd, const struct sockaddr *addr, unsigned int len); ]]
cdef [[ long send(int fd, const void *buf, unsigned long n, int flags); ]]
cdef [[ long recv(int fd, void *buf, unsigned long n, int flags); ]]
cdef [[ int close(int fd); ]]
cdef [[ int fcntl(int fd, int cmd, ...); ]]
cdef [[ int getsockopt(int fd, int level, int name, void *val, unsigned int *len); ]]
cdef [[ int setsockopt(int fd, int level, int name, const void *val, unsigned int len); ]]
cdef [[ struct addrinfo { int ai_flags, ai_family, ai_socktype, ai_protocol;
         unsigned int ai_addrlen; struct sockaddr *ai_addr; char *ai_canonname;
         struct addrinfo *ai_next; }; ]]
cdef [[ int getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res); ]]
cdef [[ void freeaddrinfo(struct addrinfo *res); ]]
cdef [[ const char *gai_strerror(int code); ]]
cdef [[ char *strerror(int errnum); ]]

local C = ffi.C
-- Linux values.
local AF_INET, AF_UNSPEC, SOCK_STREAM = 2, 0, 1
local F_GETFL, F_SETFL, O_NONBLOCK = 3, 4, 0x800
local POLLIN, POLLOUT, POLLERR, POLLHUP = 1, 4, 8, 16
local EINTR, EAGAIN, EINPROGRESS = 4, 11, 115
local SOL_SOCKET, SO_ERROR, IPPROTO_TCP, TCP_NODELAY = 1, 4, 6, 1
local MSG_NOSIGNAL = 0x4000
local CLOCK_MONOTONIC = 1

local ts = ffi.new("struct timespec")
local function now()
  C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function errstr(e) return ffi.string(C.strerror(e or ffi.errno())) end

-- Bad usage: a message, no traceback.
local function die(msg)
  io.stderr:write("serve.lua: ", msg, "\n")
  os.exit(2)
end

-- ---- arguments ---------------------------------------------------------------

local usage = [[
usage: v100rt run examples/bench/serve.lua [options]
  --url URL            server base URL (default http://127.0.0.1:8080)
  --concurrency LIST   comma-separated levels (default 1,4,16,64)
  --requests N         requests per level (default max(8, 2 x concurrency))
  --max-tokens N       max_tokens per request (default 64)
  --prompt-words A,B   prompt length range in words (default 16,512)
  --model NAME         "model" field (default: not sent)
  --api-key KEY        sends Authorization: Bearer KEY
  --timeout S          per-request timeout in seconds (default 120)
  --max-time S         cap on the whole run in seconds (default 900)
  --out FILE           markdown results, appended (default examples/bench/RESULTS.md)
  --csv FILE           CSV results, appended (default examples/bench/serve.csv)
  --seed N             prompt generator seed (default 1)
  --no-usage           do not ask for usage in the stream; count chunks
  --ignore-eos         send "ignore_eos": true (vLLM/v100rt extension)
  --path PATH          endpoint (default /v1/completions)
]]

local opt = {
  url = "http://127.0.0.1:8080", concurrency = "1,4,16,64", max_tokens = 64,
  prompt_words = "16,512", timeout = 120, max_time = 900,
  out = "examples/bench/RESULTS.md", csv = "examples/bench/serve.csv", seed = 1,
  usage = true, ignore_eos = false, path = "/v1/completions",
}
local flags = { ["no-usage"] = function() opt.usage = false end,
                ["ignore-eos"] = function() opt.ignore_eos = true end }
local valued = { url = 1, concurrency = 1, requests = 1, ["max-tokens"] = 1, ["prompt-words"] = 1,
                 model = 1, ["api-key"] = 1, timeout = 1, ["max-time"] = 1, out = 1, csv = 1,
                 seed = 1, path = 1 }
do
  local args = arg or {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(usage) return end
    local k, v = a:match("^%-%-([%w-]+)=(.*)$")
    if not k then k = a:match("^%-%-([%w-]+)$") end
    if not k then die("unexpected argument '" .. a .. "'\n" .. usage) end
    if flags[k] then
      flags[k]()
    elseif valued[k] then
      if not v then i = i + 1; v = args[i] end
      if not v then die("--" .. k .. " needs a value") end
      opt[k:gsub("-", "_")] = v
    else
      die("unknown option --" .. k .. "\n" .. usage)
    end
    i = i + 1
  end
end

local function num(name, v, min)
  local n = tonumber(v)
  if not n or n < min then die(("--%s: expected a number >= %s, got '%s'"):format(
    name:gsub("_", "-"), min, tostring(v))) end
  return n
end
opt.max_tokens = math.floor(num("max_tokens", opt.max_tokens, 1))
opt.timeout = num("timeout", opt.timeout, 0.001)
opt.max_time = num("max_time", opt.max_time, 0.001)
opt.seed = math.floor(num("seed", opt.seed, 0))
if opt.requests then opt.requests = math.floor(num("requests", opt.requests, 1)) end
local levels = {}
for s in tostring(opt.concurrency):gmatch("[^,]+") do
  levels[#levels + 1] = math.floor(num("concurrency", s, 1))
end
if #levels == 0 then die("--concurrency: empty list") end
local pw_min, pw_max = tostring(opt.prompt_words):match("^(%d+),(%d+)$")
pw_min, pw_max = tonumber(pw_min), tonumber(pw_max)
if not pw_min or pw_min < 1 or pw_max < pw_min then
  die("--prompt-words: expected MIN,MAX words, got '" .. tostring(opt.prompt_words) .. "'")
end

local scheme, host, port, base_path = opt.url:match("^(%a+)://([^/:]+):?(%d*)(.*)$")
if scheme ~= "http" then
  die("--url: only http://HOST[:PORT] is supported, got '" .. opt.url .. "'")
end
port = port ~= "" and port or "80"
base_path = base_path:gsub("/$", "")

-- ---- resolving the server ------------------------------------------------------

local addr, addrlen, addr_keep
do
  local hints = ffi.new("struct addrinfo")
  hints.ai_family, hints.ai_socktype = AF_UNSPEC, SOCK_STREAM
  local res = ffi.new("struct addrinfo *[1]")
  local rc = C.getaddrinfo(host, port, hints, res)
  if rc ~= 0 then die(("cannot resolve %s: %s"):format(host, ffi.string(C.gai_strerror(rc)))) end
  local pick, p = nil, res[0]
  while p ~= nil do -- prefer IPv4: servers often listen on 127.0.0.1 only
    if pick == nil or (p.ai_family == AF_INET and pick.ai_family ~= AF_INET) then pick = p end
    p = p.ai_next
  end
  addrlen = pick.ai_addrlen
  addr_keep = ffi.new("char[?]", addrlen)
  ffi.copy(addr_keep, pick.ai_addr, addrlen)
  addr = ffi.cast("struct sockaddr *", addr_keep)
  C.freeaddrinfo(res[0])
end

-- ---- prompts ------------------------------------------------------------------

local words = {}
for w in ([[
The V100 has eighty streaming multiprocessors, sixteen or thirty two gigabytes of
HBM2 memory and tensor cores for half precision matrix products. Continuous
batching keeps the card busy: each step runs every decoding sequence and admits
waiting prompts while free key value blocks remain. Quantized weights in four
bits let a seven billion parameter model fit with room for the cache, and
tensor parallel sharding splits larger models over the GPUs of one node.
Operators watch the queue, the batch size, the time to the first token and the
time between tokens, and they change one setting at a time.]]):gmatch("%S+") do
  words[#words + 1] = w
end

local rng = opt.seed * 2654435761 % 4294967296 + 1
local function rand(n) -- 1..n, a small LCG: the same prompts on every run
  rng = (1103515245 * rng + 12345) % 2147483648
  return rng % n + 1
end

local function make_prompt()
  -- log-uniform length between pw_min and pw_max words
  local f = (rand(1000) - 1) / 999
  local n = math.floor(pw_min * (pw_max / pw_min) ^ f + 0.5)
  local t, start = {}, rand(#words)
  for i = 1, n do t[i] = words[(start + i - 2) % #words + 1] end
  return table.concat(t, " ")
end

local function json_str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local m = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return m[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function request_bytes(prompt)
  local body = { '{"prompt":', json_str(prompt), ',"max_tokens":', tostring(opt.max_tokens),
                 ',"stream":true,"temperature":0' }
  if opt.model then body[#body + 1] = ',"model":' .. json_str(opt.model) end
  if opt.usage then body[#body + 1] = ',"stream_options":{"include_usage":true}' end
  if opt.ignore_eos then body[#body + 1] = ',"ignore_eos":true' end
  body[#body + 1] = "}"
  body = table.concat(body)
  local hdr = {
    ("POST %s%s HTTP/1.1"):format(base_path, opt.path),
    ("Host: %s:%s"):format(host, port),
    "Content-Type: application/json",
    "Accept: text/event-stream",
    "Connection: close",
    "Content-Length: " .. #body,
  }
  if opt.api_key then hdr[#hdr + 1] = "Authorization: Bearer " .. opt.api_key end
  return table.concat(hdr, "\r\n") .. "\r\n\r\n" .. body
end

-- ---- one streaming request: a small state machine ---------------------------

local RECV_SIZE = 65536
local recv_buf = ffi.new("uint8_t[?]", RECV_SIZE)
local one_int = ffi.new("int[1]")
local int_len = ffi.new("unsigned int[1]")

local Req = {}
Req.__index = Req

local function fail(r, msg)
  if not r.done then
    r.done, r.err = true, msg
    r.t_end = now()
  end
end

function Req.start(prompt, t)
  local r = setmetatable({ out = request_bytes(prompt), sent = 0, raw = "", sse = "",
                           state = "connect", chunks = 0, itl = {}, t0 = t }, Req)
  local fd = C.socket(addr.sa_family, SOCK_STREAM, 0)
  if fd < 0 then fail(r, "socket: " .. errstr()) return r end
  r.fd = fd
  C.fcntl(fd, F_SETFL, ffi.new("int", bit.bor(C.fcntl(fd, F_GETFL, ffi.new("int", 0)), O_NONBLOCK)))
  one_int[0] = 1
  C.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one_int, 4)
  if C.connect(fd, addr, addrlen) ~= 0 then
    local e = ffi.errno()
    if e ~= EINPROGRESS and e ~= EINTR then fail(r, "connect: " .. errstr(e)) end
  else
    r.state = "send"
  end
  return r
end

function Req:events()
  if self.state == "connect" or self.state == "send" then return POLLOUT end
  return POLLIN
end

function Req:close()
  if self.fd then C.close(self.fd) self.fd = nil end
end

-- An SSE event's data payload.
function Req:on_data(data, t)
  if data == "[DONE]" then
    self.got_done = true
    self.done, self.t_end = true, t
    return
  end
  if data:find('"error"', 1, true) and not data:find('"choices"', 1, true) then
    fail(self, "error event: " .. data:sub(1, 200))
    return
  end
  local ct = data:match('"completion_tokens"%s*:%s*(%d+)')
  if ct then self.usage_tokens = tonumber(ct) end
  -- A chunk carries text when "text" (completions) or "content" (chat) is a
  -- non-empty string.
  local has_text = data:find('"text"%s*:%s*"[^"]') or data:find('"content"%s*:%s*"[^"]')
  if has_text then
    self.chunks = self.chunks + 1
    if not self.t_first then
      self.t_first = t
    else
      self.itl[#self.itl + 1] = t - self.t_last
    end
    self.t_last = t
  end
end

function Req:parse_sse(t)
  while not self.done do
    local s = self.sse
    local a, b = s:find("\r?\n\r?\n")
    if not a then return end
    local event = s:sub(1, a - 1)
    self.sse = s:sub(b + 1)
    local data = {}
    for line in (event .. "\n"):gmatch("(.-)\r?\n") do
      local d = line:match("^data: ?(.*)$")
      if d then data[#data + 1] = d end
    end
    if #data > 0 then self:on_data(table.concat(data, "\n"), t) end
  end
end

-- Moves body bytes from raw to the SSE buffer (de-chunking if needed).
function Req:parse_body(t)
  if not self.chunked then
    self.sse = self.sse .. self.raw
    self.body_seen = self.body_seen + #self.raw
    self.raw = ""
    if self.content_length and self.body_seen >= self.content_length then self.body_end = true end
  else
    while true do
      if self.chunk_left == 0 then
        local a, b, size = self.raw:find("^\r?\n?([%x]+)[^\r\n]*\r\n")
        if not a then
          if #self.raw > 64 and not self.raw:find("^\r?\n?[%x]") then
            return fail(self, "bad chunked encoding")
          end
          break
        end
        self.raw = self.raw:sub(b + 1)
        self.chunk_left = tonumber(size, 16)
        if self.chunk_left == 0 then self.body_end = true break end
      end
      local take = math.min(self.chunk_left, #self.raw)
      if take == 0 then break end
      self.sse = self.sse .. self.raw:sub(1, take)
      self.raw = self.raw:sub(take + 1)
      self.chunk_left = self.chunk_left - take
    end
  end
  if self.status == 200 then
    self:parse_sse(t)
  elseif #self.sse > 0 and not self.err_body then
    self.err_body = self.sse:sub(1, 300)
  end
end

function Req:on_bytes(s, t)
  self.raw = self.raw .. s
  if self.state == "headers" then
    local a, b = self.raw:find("\r\n\r\n", 1, true)
    if not a then
      if #self.raw > 65536 then fail(self, "response headers too large") end
      return
    end
    local head = self.raw:sub(1, a - 1)
    self.raw = self.raw:sub(b + 1)
    self.status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
    if not self.status then return fail(self, "not an HTTP response: " .. head:sub(1, 80)) end
    local lower = head:lower()
    self.chunked = lower:find("\ntransfer%-encoding:[^\n]*chunked") ~= nil
    self.chunk_left = 0
    self.body_seen = 0
    self.content_length = tonumber(lower:match("\ncontent%-length:%s*(%d+)"))
    self.state = "body"
  end
  if self.state == "body" then self:parse_body(t) end
end

function Req:on_eof(t)
  if self.done then return end
  if self.status and self.status ~= 200 then
    local body = (self.err_body or self.sse or ""):gsub("%s+", " ")
    return fail(self, ("HTTP %d: %s"):format(self.status, body:sub(1, 200)))
  end
  if self.state == "headers" then return fail(self, "connection closed before a response") end
  fail(self, "stream ended without data: [DONE]")
end

function Req:on_poll(revents, t)
  if self.state == "connect" then
    if bit.band(revents, POLLOUT + POLLERR + POLLHUP) == 0 then return end
    int_len[0] = 4
    one_int[0] = 0
    C.getsockopt(self.fd, SOL_SOCKET, SO_ERROR, one_int, int_len)
    if one_int[0] ~= 0 then return fail(self, "connect: " .. errstr(one_int[0])) end
    self.state = "send"
  end
  if self.state == "send" then
    if bit.band(revents, POLLOUT + POLLERR + POLLHUP) == 0 then return end
    local n = C.send(self.fd, ffi.cast("const char *", self.out) + self.sent, #self.out - self.sent,
                     MSG_NOSIGNAL)
    if n < 0 then
      local e = ffi.errno()
      if e == EAGAIN or e == EINTR then return end
      return fail(self, "send: " .. errstr(e))
    end
    self.sent = self.sent + tonumber(n)
    if self.sent == #self.out then self.state = "headers" end
    return
  end
  if bit.band(revents, POLLIN + POLLERR + POLLHUP) == 0 then return end
  for _ = 1, 16 do -- drain what is there, bounded so that others get a turn
    local n = C.recv(self.fd, recv_buf, RECV_SIZE, 0)
    if n > 0 then
      self:on_bytes(ffi.string(recv_buf, n), t)
      if self.done or self.body_end then break end
    elseif n == 0 then
      return self:on_eof(t)
    else
      local e = ffi.errno()
      if e == EAGAIN or e == EINTR then break end
      return fail(self, "recv: " .. errstr(e))
    end
  end
  if self.body_end and not self.done then self:on_eof(t) end
end

-- ---- one concurrency level ------------------------------------------------------

local t_run0 = now()

local function run_level(conc, n_req)
  local active, finished = {}, {}
  local started = 0
  local pfds = ffi.new("struct pollfd[?]", conc)
  local t0 = now()
  local capped = false
  while #finished < n_req do
    local t = now()
    if t - t_run0 > opt.max_time then capped = true end
    while not capped and #active < conc and started < n_req do
      started = started + 1
      active[#active + 1] = Req.start(make_prompt(), now())
    end
    if capped and #active == 0 then break end
    local nfd = 0
    for i, r in ipairs(active) do
      pfds[i - 1].fd = r.fd or -1
      pfds[i - 1].events = r:events()
      pfds[i - 1].revents = 0
      nfd = i
    end
    local rc = C.poll(pfds, nfd, 50)
    if rc < 0 and ffi.errno() ~= EINTR then die("poll: " .. errstr()) end
    t = now()
    for i, r in ipairs(active) do
      if not r.done and rc > 0 and pfds[i - 1].revents ~= 0 then
        r:on_poll(pfds[i - 1].revents, t)
      end
      if not r.done and t - r.t0 > opt.timeout then
        fail(r, ("timeout after %gs"):format(opt.timeout))
      end
      if not r.done and capped then fail(r, ("--max-time %gs reached"):format(opt.max_time)) end
    end
    local keep = {}
    for _, r in ipairs(active) do
      if r.done then
        r:close()
        finished[#finished + 1] = r
      else
        keep[#keep + 1] = r
      end
    end
    active = keep
  end
  return finished, now() - t0, capped
end

-- ---- statistics and output ---------------------------------------------------------

local function pct(sorted, p) -- nearest rank
  if #sorted == 0 then return nil end
  local k = math.max(1, math.min(#sorted, math.ceil(p / 100 * #sorted)))
  return sorted[k]
end

local function summarize(conc, reqs, wall)
  local ttft, itl, e2e, errs, msgs = {}, {}, {}, 0, {}
  local ok, tokens = 0, 0
  for _, r in ipairs(reqs) do
    if r.err then
      errs = errs + 1
      msgs[r.err] = (msgs[r.err] or 0) + 1
    else
      ok = ok + 1
      tokens = tokens + (r.usage_tokens or r.chunks)
      if r.t_first then ttft[#ttft + 1] = r.t_first - r.t0 end
      for _, g in ipairs(r.itl) do itl[#itl + 1] = g end
      e2e[#e2e + 1] = r.t_end - r.t0
    end
  end
  table.sort(ttft) table.sort(itl) table.sort(e2e)
  local s = { concurrency = conc, requests = #reqs, ok = ok, errors = errs, wall = wall,
              req_s = ok / wall, tok_s = tokens / wall, tokens = tokens, msgs = msgs }
  for _, p in ipairs { 50, 90, 99 } do
    s["ttft" .. p], s["itl" .. p], s["e2e" .. p] = pct(ttft, p), pct(itl, p), pct(e2e, p)
  end
  return s
end

local function ms(v) return v and ("%.1f"):format(v * 1000) or "-" end
local function trio(s, k)
  return ("%s / %s / %s"):format(ms(s[k .. 50]), ms(s[k .. 90]), ms(s[k .. 99]))
end

local md_head = "| concurrency | requests | req/s | gen tok/s | TTFT p50/p90/p99 (ms) | "
  .. "ITL p50/p90/p99 (ms) | e2e p50 (s) | errors |\n"
  .. "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
local function md_row(s)
  return ("| %d | %d | %.2f | %.1f | %s | %s | %s | %d |\n"):format(s.concurrency, s.requests,
    s.req_s, s.tok_s, trio(s, "ttft"), trio(s, "itl"),
    s.e2e50 and ("%.2f"):format(s.e2e50) or "-", s.errors)
end

local function csv_num(v, scale) return v and ("%.6g"):format(v * (scale or 1)) or "" end

local function file_has_content(path)
  local f = io.open(path, "r")
  if not f then return false end
  local size = f:seek("end")
  f:close()
  return size > 0
end

-- ---- main -----------------------------------------------------------------------

io.stderr:write(("serve.lua: %s%s, levels %s, max_tokens %d, prompts %d..%d words\n"):format(
  opt.url, opt.path, table.concat(levels, ","), opt.max_tokens, pw_min, pw_max))
local date = os.date("!%Y-%m-%d %H:%M:%SZ")
local results = {}
for _, conc in ipairs(levels) do
  local n = opt.requests or math.max(8, 2 * conc)
  local reqs, wall, capped = run_level(conc, n)
  local s = summarize(conc, reqs, wall)
  results[#results + 1] = s
  io.stderr:write(("  concurrency %3d: %d requests in %.2fs, %d errors\n"):format(conc, #reqs,
    wall, s.errors))
  for m, c in pairs(s.msgs) do io.stderr:write(("    %dx %s\n"):format(c, m)) end
  if capped then
    io.stderr:write(("  --max-time %gs reached; stopping\n"):format(opt.max_time))
    break
  end
end

local md = { ("\n## serve benchmark %s\n\n"):format(date),
             ("`%s%s`, max_tokens %d, prompts %d..%d words, per-request timeout %gs%s\n\n"):format(
               opt.url, opt.path, opt.max_tokens, pw_min, pw_max, opt.timeout,
               opt.model and (", model " .. opt.model) or ""),
             md_head }
for _, s in ipairs(results) do md[#md + 1] = md_row(s) end
md = table.concat(md)
io.write(md)

if opt.out ~= "" and opt.out ~= "-" then
  local f, e = io.open(opt.out, "a")
  if not f then die("cannot write --out " .. opt.out .. ": " .. tostring(e)) end
  f:write(md)
  f:close()
  io.stderr:write("appended to " .. opt.out .. "\n")
end
if opt.csv ~= "" and opt.csv ~= "-" then
  local header = not file_has_content(opt.csv)
  local f, e = io.open(opt.csv, "a")
  if not f then die("cannot write --csv " .. opt.csv .. ": " .. tostring(e)) end
  if header then
    f:write("date,url,max_tokens,concurrency,requests,ok,errors,wall_s,req_s,gen_tok_s,gen_tokens,"
      .. "ttft_p50_ms,ttft_p90_ms,ttft_p99_ms,itl_p50_ms,itl_p90_ms,itl_p99_ms,"
      .. "e2e_p50_s,e2e_p90_s,e2e_p99_s\n")
  end
  for _, s in ipairs(results) do
    f:write(table.concat({ date, opt.url .. opt.path, opt.max_tokens, s.concurrency, s.requests,
      s.ok, s.errors, csv_num(s.wall), csv_num(s.req_s), csv_num(s.tok_s), s.tokens,
      csv_num(s.ttft50, 1000), csv_num(s.ttft90, 1000), csv_num(s.ttft99, 1000),
      csv_num(s.itl50, 1000), csv_num(s.itl90, 1000), csv_num(s.itl99, 1000),
      csv_num(s.e2e50), csv_num(s.e2e90), csv_num(s.e2e99) }, ",") .. "\n")
  end
  f:close()
  io.stderr:write("appended to " .. opt.csv .. "\n")
end
