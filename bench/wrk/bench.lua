-- wrk script of the benchmark (bench/run.py). Configured from the environment:
--   BENCH_METHOD      GET (default) or POST
--   BENCH_BODY_FILE   request body (e.g. the GraphQL home query)
--   BENCH_HEADERS     extra headers, "name: value" separated by newlines
--   BENCH_TOKENS_FILE bearer tokens, one a line: each request uses the next (many users)
--   BENCH_BAD         a text whose presence in a 2xx body makes the answer bad (e.g.
--                     '"errors"' for GraphQL): counted as "bad_answers"
-- At the end it prints one line "BENCH_JSON {...}" with the counts and latency percentiles
-- (microseconds) that run.py reads.

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  wrk.body = read_file(body_file)
end
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end

local tokens = {}
local tokens_file = os.getenv("BENCH_TOKENS_FILE")
if tokens_file and tokens_file ~= "" then
  for line in read_file(tokens_file):gmatch("[^\n]+") do
    tokens[#tokens + 1] = line
  end
end

if #tokens > 0 then
  local next_token = math.random(#tokens)
  request = function()
    next_token = next_token % #tokens + 1
    wrk.headers["authorization"] = "Bearer " .. tokens[next_token]
    return wrk.format()
  end
end

-- Answers that are 2xx but wrong (GraphQL errors, a degraded merge), per thread.
bad = 0
bad_sample = nil
local bad_text = os.getenv("BENCH_BAD")
if bad_text and bad_text ~= "" then
  response = function(status, headers, body)
    local at = status < 300 and body and body:find(bad_text, 1, true)
    if at then
      bad = bad + 1
      bad_sample = bad_sample or body:sub(at, at + 400)
    end
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local e = summary.errors
  local bad_answers, sample = 0, ""
  for _, thread in ipairs(threads) do
    bad_answers = bad_answers + (thread:get("bad") or 0)
    if sample == "" then sample = thread:get("bad_sample") or "" end
  end
  -- A JSON string: every quote, backslash and control character as \u00XX.
  sample = sample:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"bad_answers": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d, ' ..
    '"bad_sample": "%s"}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, bad_answers, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, sample))
end
