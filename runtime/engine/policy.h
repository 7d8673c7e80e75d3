/* policy.h — a scheduling policy's Lua hooks, run on the engine thread.
 *
 * The engine thread owns one Lua state for the policy (Lua states are never
 * shared between threads). It loads the config file, takes
 * batching.policy — a built-in name (lua/v100rt/policies/) or a table of
 * hook functions — and calls the hooks at coarse points only: admit and
 * priority once per request, on_step once per step, pick_victim once per
 * preemption; never per token. Each call runs with the JIT off and a time
 * budget, so an endless loop becomes an error; an error fails only what
 * the call concerned (the request for admit/priority; a logged warning for
 * on_step; the default victim for pick_victim).
 */
#ifndef VRT_ENGINE_POLICY_H
#define VRT_ENGINE_POLICY_H

#include "vrt.h"

typedef struct vrt_policy vrt_policy;

/* Loads the policy of a config file (*.lua); a NULL path gives fcfs. */
int vrt_policy_load(vrt_policy **out, const char *config_path, double budget_s, vrt_err *err);
void vrt_policy_free(vrt_policy *p);
const char *vrt_policy_name(const vrt_policy *p);

/* *admit = 1 to queue the request, 0 to refuse it (no hook: 1). */
int vrt_policy_admit(vrt_policy *p, const vrt_policy_req *req, int *admit, vrt_err *err);
/* Larger runs first (no hook: -arrival). */
int vrt_policy_priority(vrt_policy *p, const vrt_policy_req *req, double *prio, vrt_err *err);
int vrt_policy_on_step(vrt_policy *p, const vrt_policy_stats *st, vrt_err *err);
/* *victim in [0, n) (no hook: n - 1, the most recently admitted). */
int vrt_policy_pick_victim(vrt_policy *p, const vrt_policy_req *running, int n, int *victim,
                           vrt_err *err);

#endif
