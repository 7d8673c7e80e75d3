-- fair — round robin across tenants (the X-Tenant header, else the OpenAI
-- `user`, else the client address): each tenant's k-th waiting request gets
-- priority -k, so one tenant's burst cannot starve the others. Equal
-- priorities run in arrival order.
local served = {}
local n = 0
return {
  name = "fair",
  priority = function(req)
    local t = req.tenant ~= nil and require("ffi").string(req.tenant) or ""
    local k = (served[t] or 0) + 1
    served[t] = k
    n = n + 1
    if n % 10000 == 0 then -- forget old tenants now and then (bounded memory)
      local min = math.huge
      for _, v in pairs(served) do if v < min then min = v end end
      for key, v in pairs(served) do served[key] = v - min end
    end
    return -k
  end,
}
