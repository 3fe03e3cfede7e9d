-- Load for tamtam: Africa's Talking USSD sessions of two hops (the dial, then "1"),
-- a new session id every two requests, callers spread over the moov-ci demo numbers.
-- 1,000 callers at thousands of hops a second are far over the demo's rate limit (30 hops a
-- minute per subscriber), so the gateway runs with that limit off, from a copy of the
-- configuration next to it (relative paths resolve against its folder; *.local.toml is
-- ignored by git):
--   sed 's/^per_subscriber_per_minute = .*/per_subscriber_per_minute = 0/' config/tamtam.toml > config/bench.local.toml
--   cargo build --release && RUST_LOG=warn TAMTAM_CONFIG=config/bench.local.toml TAMTAM_LISTEN=127.0.0.1:18080 target/release/tamtam &
--   wrk -t1 -c32 -d15s --latency -s bench/at-two-hops.lua http://127.0.0.1:18080
-- (add TAMTAM_REDIS_URL=redis://127.0.0.1:6379 to the gateway for sessions in Redis)
local counter = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("id", tid) end
function init(args) counter = 0 end
function request()
  local n = counter
  counter = counter + 1
  local session = "bench-" .. id .. "-" .. math.floor(n / 2)
  local text = (n % 2 == 0) and "" or "1"
  local body = "sessionId=" .. session .. "&serviceCode=%2A144%23&phoneNumber=%2B2250700000" .. string.format("%03d", n % 1000) .. "&text=" .. text
  return wrk.format("POST", "/ussd/at", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
