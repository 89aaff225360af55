-- wrk script for the bench: POST one JSON body, optionally at a fixed rate, and print
-- the figures as one JSON line.
--
--   BENCH_BODY=body.json [BENCH_RATE=500] wrk -t1 -c8 -d10s -s wrk_post.lua URL
--
-- Debian's wrk (4.1) has no wrk2-style `-R`, so a fixed rate is paced here: `delay()`
-- is asked before each request on a connection and returns the time until the next
-- slot of an absolute schedule (start + k / rate), so the rate holds over the run even
-- though wrk's timers have millisecond granularity. wrk starts a request's clock when
-- it writes it (after the delay), so latency is per request, not since its slot: when
-- every connection is busy a late request is not charged the wait (no coordinated-
-- omission correction, unlike wrk2). The bench keeps the offered rate well below what
-- every path sustains, so connections are mostly idle and the difference does not arise.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval = nil
local next_slot = nil

-- Read at load time (wrk decides from the main script state whether delay() exists,
-- before init() runs), so these come from the environment, not from script arguments.
local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY not set"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- LiteLLM refuses to start without a master key; every path gets the same header.
wrk.headers["Authorization"] = "Bearer sk-bench-0123456789abcdef0123456789abcdef"
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
-- The rate is per wrk thread; the bench runs fixed-rate loads with one thread.
if rate > 0 then
  interval = 1000 / rate
  -- Only defined when pacing: without delay() wrk sends back to back.
  delay = function()
    local now = now_ms()
    if next_slot == nil then
      next_slot = now
    end
    next_slot = next_slot + interval
    local wait = next_slot - now
    if wait < 0 then
      return 0
    end
    return wait
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
