-- wrk script: POST signed subscribe events, each from a new follower.
-- Plaintext mode signs token+timestamp+nonce, not the body, so the signed
-- query (CALLBACK_PATH, from callback-load.sh) serves every request; the
-- body varies the openid so every request is a distinct event, not a retry.
-- Requests are built in init(), before the clock starts, so the generator's
-- own work does not eat into the CPU the server is measured on (the
-- /healthz run builds nothing either). CALLBACK_PER_THREAD must exceed the
-- requests a thread sends, or later ones repeat earlier openids.
local path = os.getenv("CALLBACK_PATH")
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
  reqs = {}
  for i = 1, per_thread do
    local body = "<xml><ToUserName><![CDATA[gh_load]]></ToUserName><FromUserName><![CDATA[" ..
      prefix .. i .. "]]></FromUserName><CreateTime>" .. ts ..
      "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>" ..
      "<EventKey><![CDATA[qrscene_load]]></EventKey><Ticket><![CDATA[gQload]]></Ticket></xml>"
    reqs[i] = wrk.format("POST", path, headers, body)
  end
  n = 0
end

function request()
  n = n + 1
  return reqs[(n - 1) % per_thread + 1]
end
