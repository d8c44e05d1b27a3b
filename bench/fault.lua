-- wrk script for bench/fault.sh: every thread increments the counter of its own session
-- (cookie values passed as script arguments, one per thread) through /bench/counter, and
-- tallies answers by class and the highest counter value any 200 acknowledged per session.
-- A Set-Cookie naming another id means the session was lost and replaced: counted as a
-- reset, and the thread carries on with the new id.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("index", next_id)
  table.insert(threads, thread)
end

function init(args)
  cookie = args[index]
  acked = {}
  counts = { ok = 0, unavailable = 0, client = 0, server = 0, other = 0 }
  resets = 0
end

function request()
  return wrk.format("GET", "/bench/counter", { ["Cookie"] = "dmsession=" .. cookie })
end

function response(status, headers, body)
  if status == 200 then
    counts.ok = counts.ok + 1
    local set = headers["set-cookie"] or headers["Set-Cookie"]
    if set then
      local value = set:match("^dmsession=([^;]*)")
      if value and #value > 0 and value ~= cookie then
        resets = resets + 1
        cookie = value
      end
    end
    local n = tonumber(body)
    if n and n > (acked[cookie] or 0) then
      acked[cookie] = n
    end
  elseif status == 503 then
    counts.unavailable = counts.unavailable + 1
  elseif status >= 400 and status < 500 then
    counts.client = counts.client + 1
  elseif status >= 500 then
    counts.server = counts.server + 1
  else
    counts.other = counts.other + 1
  end
end

function done(summary, latency, requests)
  local total = { ok = 0, unavailable = 0, client = 0, server = 0, other = 0 }
  local resets_total = 0
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for k, v in pairs(c) do
      total[k] = total[k] + v
    end
    resets_total = resets_total + thread:get("resets")
    for id, n in pairs(thread:get("acked")) do
      io.write(string.format("ACK %s %d\n", id, n))
    end
  end
  local e = summary.errors
  io.write(string.format("STATUS 200 %d\n", total.ok))
  io.write(string.format("STATUS 503 %d\n", total.unavailable))
  io.write(string.format("STATUS 4xx %d\n", total.client))
  io.write(string.format("STATUS other5xx %d\n", total.server))
  io.write(string.format("STATUS other %d\n", total.other))
  io.write(string.format("RESETS %d\n", resets_total))
  io.write(string.format("SOCKET connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("LATENCY p99_ms=%.1f max_ms=%.1f\n",
    latency:percentile(99) / 1000, latency.max / 1000))
end
