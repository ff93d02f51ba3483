-- wrk script for bench/queries.py.
--
-- BENCH_METHOD=GET (default): every request is the URL given to wrk, wrk's fast path.
-- BENCH_METHOD=POST: POST to the URL's path with BENCH_BODY as the body (a login).
-- At the end one line "BENCH_RESULT {json}" carries exact counts and latency percentiles (in
-- microseconds), as bench/lua/kv.lua prints them.

local method = os.getenv("BENCH_METHOD") or "GET"

if method == "POST" then
  wrk.method = "POST"
  wrk.body = os.getenv("BENCH_BODY") or ""
  wrk.headers["Content-Type"] = "application/json"
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
