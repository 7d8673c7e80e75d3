-- priority — larger `priority` first (the OpenAI/vLLM request field
-- `priority`, or the X-Priority header); equal priorities in arrival order.
return {
  name = "priority",
  priority = function(req) return req.priority end,
}
