-- wrk script: POST signed subscribe events, each from a new follower and
-- with its own signed query (the service binds a query to the first message
-- it carries, so one query cannot serve many bodies). The queries are signed
-- beforehand (CALLBACK_SIGS, "nonce signature" lines from
-- docs/bench/callbacksign, via callback-load.sh); thread t takes lines
-- (t-1)*CALLBACK_PER_THREAD+1 onwards.
-- Requests are built in init(), before the clock starts, so the generator's
-- own work does not eat into the CPU the server is measured on (the
-- /healthz run builds nothing either). CALLBACK_PER_THREAD must exceed the
-- requests a thread sends, or later ones repeat earlier ones (retries, which
-- the service answers from its dedupe).
local base = os.getenv("CALLBACK_BASE")
local sigs = os.getenv("CALLBACK_SIGS")
local ts = os.getenv("CALLBACK_TS")
local per_thread = tonumber(os.getenv("CALLBACK_PER_THREAD") or "400000")
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
end

function init(args)
  local prefix = string.format("o_load_%d_%d_", tid, math.random(1, 1000000000))
  local headers = {["Content-Type"] = "text/xml"}
  local first, i, line_no = (tid - 1) * per_thread + 1, 0, 0
  reqs = {}
  for line in io.lines(sigs) do
    line_no = line_no + 1
    if line_no >= first then
      i = i + 1
      if i > per_thread then break end
      local nonce, sig = line:match("^(%d+) (%x+)$")
      local path = base .. "?nonce=" .. nonce .. "&signature=" .. sig .. "&timestamp=" .. ts
      local body = "<xml><ToUserName><![CDATA[gh_load]]></ToUserName><FromUserName><![CDATA[" ..
        prefix .. i .. "]]></FromUserName><CreateTime>" .. ts ..
        "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>" ..
        "<EventKey><![CDATA[qrscene_load]]></EventKey><Ticket><![CDATA[gQload]]></Ticket></xml>"
      reqs[i] = wrk.format("POST", path, headers, body)
    end
  end
  per_thread = #reqs
  n = 0
end

function request()
  n = n + 1
  return reqs[(n - 1) % per_thread + 1]
end
