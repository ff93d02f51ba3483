-- wrk script for bench/agent_kv.py.
--
-- BENCH_METHOD=GET: every request is the URL given to wrk (one key), wrk's fast path.
-- BENCH_METHOD=PUT: PUT /v1/kv/<BENCH_PREFIX><n> with a BENCH_BODY_BYTES body, n cycling over
--   BENCH_KEYS keys; each thread starts at its own offset so threads rarely hit the same key.
-- At the end one line "BENCH_RESULT {json}" carries exact counts and latency percentiles (in
-- microseconds), so the bench does not have to parse wrk's rounded human output.

local method = os.getenv("BENCH_METHOD") or "GET"
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local prefix = os.getenv("BENCH_PREFIX") or "bench/put/"
local body = string.rep("v", tonumber(os.getenv("BENCH_BODY_BYTES") or "100"))
local threads_seen = 0
local counter = 0

function setup(thread)
  thread:set("offset", threads_seen * math.floor(keys / 2 + 1))
  threads_seen = threads_seen + 1
end

if method == "PUT" then
  function request()
    counter = counter + 1
    local n = ((offset or 0) + counter) % keys
    return wrk.format("PUT", "/v1/kv/" .. prefix .. n, nil, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
