/* policy.h — a scheduling policy's Lua hooks, run on their own thread
 * under a deadline.
 *
 * The policy has its own Lua state on its own thread (Lua states are never
 * shared between threads). It takes batching.policy — a built-in name
 * (lua/v100rt/policies/) or, for "custom", the table of hook functions of
 * the config file, which it loads again — and calls the hooks at coarse
 * points only: admit and priority once per request, on_step once per step,
 * pick_victim once per preemption; never per token.
 *
 * The engine hands each call over to the policy thread and waits for it at
 * most deadline_s. Inside the Lua state each call also runs with the JIT
 * off and a time budget (budget_s), so an endless Lua loop becomes an
 * ordinary error: that fails only what the call concerned (the request for
 * admit/priority; a logged warning for on_step; the default victim for
 * pick_victim) and the policy goes on. A call that does not return by the
 * deadline — stuck inside a C function, where the budget cannot fire
 * (string.find with a pathological pattern, an FFI call that blocks) — is
 * abandoned with its thread and Lua state (detached, at idle CPU priority,
 * never joined; it frees itself if the call ever returns), the call fails
 * with VRT_EPOLICY, and the policy is disabled: from then on every call
 * answers as fcfs does, in C (admit everything, priority -arrival_s, no
 * on_step, the most recently admitted victim).
 */
#ifndef VRT_ENGINE_POLICY_H
#define VRT_ENGINE_POLICY_H

#include "vrt.h"

typedef struct vrt_policy vrt_policy;

/* Loads the policy cfg->batching.policy names: a built-in (fcfs, priority,
 * fair) by name, "custom" from the config file cfg->source. A NULL cfg
 * gives the built-in fcfs. budget_s: each call's time budget inside Lua;
 * deadline_s: how long the engine waits for a call (> budget_s). */
int vrt_policy_load(vrt_policy **out, const vrt_config *cfg, double budget_s, double deadline_s,
                    vrt_err *err);
void vrt_policy_free(vrt_policy *p);
const char *vrt_policy_name(const vrt_policy *p);
/* 1 once a call overran the deadline: the policy answers as fcfs since. */
int vrt_policy_disabled(const vrt_policy *p);

/* *admit = 1 to queue the request, 0 to refuse it (no hook: 1). */
int vrt_policy_admit(vrt_policy *p, const vrt_policy_req *req, int *admit, vrt_err *err);
/* Larger runs first (no hook: -arrival). */
int vrt_policy_priority(vrt_policy *p, const vrt_policy_req *req, double *prio, vrt_err *err);
int vrt_policy_on_step(vrt_policy *p, const vrt_policy_stats *st, vrt_err *err);
/* *victim in [0, n) (no hook: n - 1, the most recently admitted). */
int vrt_policy_pick_victim(vrt_policy *p, const vrt_policy_req *running, int n, int *victim,
                           vrt_err *err);

/* The part of a failed call's message that may go to a client: its first
 * line, without the Lua traceback and without file:line positions (the log
 * keeps the whole message). */
void vrt_policy_client_msg(const char *full, char *out, size_t n);

#endif
