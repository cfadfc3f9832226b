-- wrk script of `tessera-bench --scenario refresh`: POST /v1/auth/refresh along chains of
-- rotated tokens. Arguments: the number of wrk threads, then the chains' first refresh tokens.
-- Each thread keeps a queue of its share of the chains' current tokens: a request takes one,
-- its answer puts the successor back, so no token is ever sent twice.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  queue = {}
  spent = 0
  local n = tonumber(args[1])
  for i = 2, #args do
    if (i - 2) % n == id then queue[#queue + 1] = args[i] end
  end
end

function request()
  local token = table.remove(queue, 1)
  if token == nil then
    -- Every chain of this thread is in flight or broken: send one that is refused.
    spent = spent + 1
    token = "spent"
  end
  return wrk.format("POST", "/v1/auth/refresh", {["Content-Type"] = "application/json"},
    '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then queue[#queue + 1] = token end
end

function done(summary, latency, requests)
  local spent = 0
  for _, thread in ipairs(threads) do spent = spent + (thread:get("spent") or 0) end
  if spent > 0 then io.write(string.format("Refused for want of a chain: %d\n", spent)) end
end
