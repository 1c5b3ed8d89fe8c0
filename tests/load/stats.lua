-- wrk script for the Anchorgate load harness.
--
-- Environment (read once per wrk thread):
--   LOAD_METHOD     HTTP method (default GET)
--   LOAD_BODY_FILE  request body file (for POST), sent as application/fhir+json
--   LOAD_TOKEN      bearer token sent as Authorization (the gateway requires one)
--
-- On completion prints ONE machine-readable line to stdout:
--   LOADRESULT {"requests":..,"rps":..,"p50_us":..,"p99_us":.., ...}
-- Latencies are in microseconds (wrk's native unit).

wrk.method = os.getenv("LOAD_METHOD") or "GET"
wrk.headers["Accept"] = "application/fhir+json"
-- The gateway requires a bearer token; nginx and the canned upstream ignore it.
local token = os.getenv("LOAD_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local body_file = os.getenv("LOAD_BODY_FILE")
if body_file and body_file ~= "" then
  local fh = assert(io.open(body_file, "rb"))
  wrk.body = fh:read("*a")
  fh:close()
  wrk.headers["Content-Type"] = "application/fhir+json"
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'LOADRESULT {"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, secs, summary.requests / secs, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
