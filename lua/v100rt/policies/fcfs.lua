-- fcfs — first come, first served (the default): requests run in arrival
-- order. Preempted requests always go back to the front of the queue.
return {
  name = "fcfs",
  priority = function(req) return -req.arrival_s end,
}
