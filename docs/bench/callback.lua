-- wrk script: POST signed, encrypted (safe-mode) subscribe events, as
-- WeChat pushes them. The requests are made beforehand by
-- docs/bench/callbacksign (one "nonce signature msg_signature encrypt" line
-- each, every line its own signed query and its own new follower) and built
-- here in init(), before the clock starts, so the generator's own work does
-- not eat into the CPU the server is measured on.
--
-- CALLBACK_MODE picks what is sent:
--   new      fresh lines only (thread t: lines (t-1)*P+1 .. t*P);
--            writes how many each thread sent to CALLBACK_SENT_OUT
--   retries  the lines the "new" round sent again, as WeChat retries a push
--            (the same signed query and body), from CALLBACK_SENT_IN
--   half     alternately a fresh line (thread t: T*P+(t-1)*P/2+1 onwards)
--            and a retry of a line the "new" round sent
-- where P is CALLBACK_PER_THREAD and T is CALLBACK_THREADS (wrk -t). A
-- thread that runs out of fresh lines starts again from its first (those are
-- retries then); done() reports it.
local base = os.getenv("CALLBACK_BASE")
local file = os.getenv("CALLBACK_REQS")
local ts = os.getenv("CALLBACK_TS")
local to = os.getenv("CALLBACK_TO")
local mode = os.getenv("CALLBACK_MODE") or "new"
local per_thread = tonumber(os.getenv("CALLBACK_PER_THREAD"))
local nthreads = tonumber(os.getenv("CALLBACK_THREADS") or "2")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function build(line)
  local nonce, sig, msig, enc = line:match("^(%d+) (%x+) (%x+) (%S+)$")
  local path = base .. "?signature=" .. sig .. "&timestamp=" .. ts .. "&nonce=" .. nonce ..
    "&encrypt_type=aes&msg_signature=" .. msig
  local body = "<xml><ToUserName><![CDATA[" .. to .. "]]></ToUserName><Encrypt><![CDATA[" ..
    enc .. "]]></Encrypt></xml>"
  return wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
end

-- lines returns the requests of lines first .. first+count-1.
local function lines(first, count)
  local out, no = {}, 0
  if count <= 0 then return out end
  for line in io.lines(file) do
    no = no + 1
    if no >= first then
      out[#out + 1] = build(line)
      if #out == count then break end
    end
  end
  return out
end

function init(args)
  local replay_n = 0
  if mode ~= "new" then
    local i = 0
    for l in io.lines(os.getenv("CALLBACK_SENT_IN")) do
      i = i + 1
      if i == tid then replay_n = math.min(tonumber(l), per_thread) end
    end
  end
  if mode == "new" then
    fresh = lines((tid - 1) * per_thread + 1, per_thread)
  elseif mode == "half" then
    local half = math.floor(per_thread / 2)
    fresh = lines(nthreads * per_thread + (tid - 1) * half + 1, half)
  else
    fresh = {}
  end
  replay = (mode ~= "new") and lines((tid - 1) * per_thread + 1, replay_n) or {}
  n, nfresh, nreplay, wrapped = 0, 0, 0, 0
end

function request()
  n = n + 1
  if #fresh > 0 and (mode ~= "half" or n % 2 == 1 or #replay == 0) then
    nfresh = nfresh + 1
    if nfresh > #fresh then wrapped = wrapped + 1 end
    return fresh[(nfresh - 1) % #fresh + 1]
  end
  nreplay = nreplay + 1
  return replay[(nreplay - 1) % #replay + 1]
end

function done(summary, latency, requests)
  local out = os.getenv("CALLBACK_SENT_OUT")
  local f = out and out ~= "" and io.open(out, "w")
  local fresh_sent, replays, wraps = 0, 0, 0
  for _, t in ipairs(threads) do
    local sent = math.min(t:get("nfresh"), per_thread)
    fresh_sent = fresh_sent + sent
    replays = replays + t:get("nreplay")
    wraps = wraps + t:get("wrapped")
    if f then f:write(sent, "\n") end
  end
  if f then f:close() end
  io.write(string.format("callback.lua: mode %s, %d fresh requests, %d retries", mode, fresh_sent, replays))
  if wraps > 0 then
    io.write(string.format(", %d fresh lines sent again (raise CALLBACK_PER_THREAD)", wraps))
  end
  io.write("\n")
end
