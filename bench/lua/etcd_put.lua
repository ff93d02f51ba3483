-- wrk script for bench/cluster.py: PUTs through etcd's v3 JSON gateway.
--
-- Every request is POST /v3/kv/put with {"key": base64, "value": base64}; the key is
-- <BENCH_PREFIX><n>, n cycling over BENCH_KEYS keys from a per-thread offset (as kv.lua does),
-- and the value is BENCH_BODY_BYTES bytes. The done() line matches kv.lua's BENCH_RESULT.

local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local prefix = os.getenv("BENCH_PREFIX") or "bench/put/"
local value = string.rep("v", tonumber(os.getenv("BENCH_BODY_BYTES") or "100"))
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local threads_seen = 0
local counter = 0

-- Plain arithmetic base64 (no bit library needed): 3 bytes in, 4 characters out.
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1) .. alphabet:sub(c2 + 1, c2 + 1)
      .. (b and alphabet:sub(c3 + 1, c3 + 1) or "=")
      .. (c and alphabet:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local value_b64 = b64(value)
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  thread:set("offset", threads_seen * math.floor(keys / 2 + 1))
  threads_seen = threads_seen + 1
end

function request()
  counter = counter + 1
  local n = ((offset or 0) + counter) % keys
  local body = '{"key":"' .. b64(prefix .. n) .. '","value":"' .. value_b64 .. '"}'
  return wrk.format("POST", "/v3/kv/put", headers, body)
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
