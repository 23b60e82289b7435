-- Refresh chains: each wrk thread has ONE connection and its own refresh token
-- (REFRESH_TOKENS, space-separated, one per thread) and always presents the token
-- it received last, as a real client does.
local tokens = {}
for t in string.gmatch(os.getenv("REFRESH_TOKENS") or "", "%S+") do table.insert(tokens, t) end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("token", tokens[counter])
end
function request()
  return wrk.format("POST", "/v1/token/refresh", {["Content-Type"] = "application/json"},
    '{"refresh_token":"' .. token .. '"}')
end
function response(status, headers, body)
  local next = string.match(body, '"refresh_token":"(lk_rt_[%w_-]+)"')
  if next then token = next end
end
