/* test_policy.c — the scheduling policy's hooks on their own thread: calls
 * answer as the Lua hooks say; a hook that raises or loops in Lua fails
 * only that call; a hook stuck inside a C function (where the Lua budget
 * cannot fire) is abandoned at the deadline and the policy answers as fcfs
 * from then on; the client never sees file paths or tracebacks.
 */
#include "core/err.h"
#include "engine/policy.h"
#include "test.h"
#include "vrt.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A hook stuck in C: LuaJIT's pattern matcher backtracks for ages. */
#define STUCK "string.find(('a'):rep(40), ('a*'):rep(20) .. 'b')"

#define POLICY_ALL                                                                                 \
    "{\n"                                                                                          \
    "  admit = function(req)\n"                                                                    \
    "    local t = req.tenant ~= nil and require('ffi').string(req.tenant) or ''\n"                \
    "    if t == 'stuck-admit' then " STUCK " end\n"                                               \
    "    return t ~= 'refused'\n"                                                                  \
    "  end,\n"                                                                                     \
    "  priority = function(req)\n"                                                                 \
    "    local t = req.tenant ~= nil and require('ffi').string(req.tenant) or ''\n"                \
    "    if t == 'stuck' then " STUCK " end\n"                                                     \
    "    if t == 'raise' then error('no priority for you') end\n"                                  \
    "    if t == 'loop' then while true do end end\n"                                              \
    "    return req.priority * 10\n"                                                               \
    "  end,\n"                                                                                     \
    "  on_step = function(st) if st.steps == 99 then " STUCK " end end,\n"                         \
    "  pick_victim = function(running)\n"                                                          \
    "    if running[1].priority == 99 then " STUCK " end\n"                                        \
    "    return 1\n"                                                                               \
    "  end,\n"                                                                                     \
    "}"

static vrt_policy_req req_of(const char *tenant, int priority, double arrival)
{
    vrt_policy_req r = {.id = 1,
                        .prompt_tokens = 5,
                        .max_new_tokens = 5,
                        .priority = priority,
                        .tenant = tenant,
                        .arrival_s = arrival};
    return r;
}

TEST(policy_hooks_answer_and_lua_errors_fail_only_the_call)
{
    vrt_err err = {0};
    vrt_policy *p;
    ASSERT_OK(vrt_test_load_policy(&p, POLICY_ALL, 0.1, 1.0, &err), &err);
    ASSERT_EQ_STR(vrt_policy_name(p), "custom");
    int admit = -1;
    vrt_policy_req r = req_of("ok", 3, 1.5);
    ASSERT_OK(vrt_policy_admit(p, &r, &admit, &err), &err);
    ASSERT_EQ_INT(admit, 1);
    r = req_of("refused", 3, 1.5);
    ASSERT_OK(vrt_policy_admit(p, &r, &admit, &err), &err);
    ASSERT_EQ_INT(admit, 0);
    double prio = 0;
    r = req_of("ok", 3, 1.5);
    ASSERT_OK(vrt_policy_priority(p, &r, &prio, &err), &err);
    ASSERT_NEAR(prio, 30, 0);
    /* A Lua error and an endless Lua loop fail their call only. */
    r = req_of("raise", 3, 1.5);
    ASSERT_EQ_INT(vrt_policy_priority(p, &r, &prio, &err), VRT_EPOLICY);
    ASSERT_CONTAINS(err.msg, "no priority for you");
    ASSERT_CONTAINS(err.msg, "hook priority");
    r = req_of("loop", 3, 1.5);
    ASSERT_EQ_INT(vrt_policy_priority(p, &r, &prio, &err), VRT_EPOLICY);
    ASSERT_CONTAINS(err.msg, "time budget");
    ASSERT_EQ_INT(vrt_policy_disabled(p), 0);
    r = req_of("ok", 4, 1.5);
    ASSERT_OK(vrt_policy_priority(p, &r, &prio, &err), &err);
    ASSERT_NEAR(prio, 40, 0);
    vrt_policy_req run[3] = {req_of("a", 1, 0), req_of(NULL, 2, 1), req_of("c", 3, 2)};
    int victim = -1;
    ASSERT_OK(vrt_policy_pick_victim(p, run, 3, &victim, &err), &err);
    ASSERT_EQ_INT(victim, 0);
    vrt_policy_stats st = {.steps = 1};
    ASSERT_OK(vrt_policy_on_step(p, &st, &err), &err);
    vrt_policy_free(p);
}

/* The stuck hook (one of the four), then what the policy answers after. */
static void check_stuck(const char *hook)
{
    vrt_err err = {0};
    vrt_policy *p;
    ASSERT_OK(vrt_test_load_policy(&p, POLICY_ALL, 0.1, 0.5, &err), &err);
    double t0 = now_s();
    int rc = -1, admit = -1, victim = -1;
    double prio = 0;
    vrt_policy_req r = req_of("stuck", 3, 2.5);
    if (strcmp(hook, "admit") == 0) {
        r = req_of("stuck-admit", 3, 2.5);
        rc = vrt_policy_admit(p, &r, &admit, &err);
    } else if (strcmp(hook, "priority") == 0) {
        rc = vrt_policy_priority(p, &r, &prio, &err);
    } else if (strcmp(hook, "on_step") == 0) {
        vrt_policy_stats st = {.steps = 99};
        rc = vrt_policy_on_step(p, &st, &err);
    } else {
        vrt_policy_req run[2] = {req_of("a", 99, 0), req_of("b", 1, 1)};
        rc = vrt_policy_pick_victim(p, run, 2, &victim, &err);
        ASSERT_EQ_INT(victim, 1); /* the default victim: the most recent */
    }
    double dt = now_s() - t0;
    ASSERT_EQ_INT(rc, VRT_EPOLICY);
    ASSERT_CONTAINS(err.msg, hook);
    ASSERT_CONTAINS(err.msg, "did not return within 0.5 s");
    ASSERT_CONTAINS(err.msg, "fcfs");
    ASSERT(dt < 30); /* it came back (the runner's timeout would say otherwise) */
    ASSERT_EQ_INT(vrt_policy_disabled(p), 1);
    /* From now on: fcfs, answered in C (the stuck thread is not asked). */
    r = req_of("refused", 3, 2.5);
    ASSERT_OK(vrt_policy_admit(p, &r, &admit, &err), &err);
    ASSERT_EQ_INT(admit, 1);
    r = req_of("stuck", 3, 2.5);
    ASSERT_OK(vrt_policy_priority(p, &r, &prio, &err), &err);
    ASSERT_NEAR(prio, -2.5, 0);
    vrt_policy_req run[2] = {req_of("a", 99, 0), req_of("b", 1, 1)};
    ASSERT_OK(vrt_policy_pick_victim(p, run, 2, &victim, &err), &err);
    ASSERT_EQ_INT(victim, 1);
    vrt_policy_stats st = {.steps = 99};
    ASSERT_OK(vrt_policy_on_step(p, &st, &err), &err);
    vrt_policy_free(p); /* does not wait for the stuck thread */
}

TEST(policy_stuck_admit_is_abandoned_and_fcfs_answers)
{
    check_stuck("admit");
}

TEST(policy_stuck_priority_is_abandoned_and_fcfs_answers)
{
    check_stuck("priority");
}

TEST(policy_stuck_on_step_is_abandoned_and_fcfs_answers)
{
    check_stuck("on_step");
}

TEST(policy_stuck_pick_victim_is_abandoned_and_fcfs_answers)
{
    check_stuck("pick_victim");
}

TEST(policy_builtins_load_by_name_and_bad_deadlines_are_refused)
{
    vrt_err err = {0};
    vrt_policy *p;
    ASSERT_OK(vrt_test_load_policy(&p, "'priority'", 0.1, 1.0, &err), &err);
    ASSERT_EQ_STR(vrt_policy_name(p), "priority");
    double prio = 0;
    vrt_policy_req r = req_of("x", 7, 1);
    ASSERT_OK(vrt_policy_priority(p, &r, &prio, &err), &err);
    ASSERT_NEAR(prio, 7, 0);
    vrt_policy_free(p);
    /* NULL config: fcfs. */
    ASSERT_OK(vrt_policy_load(&p, NULL, 0.1, 1.0, &err), &err);
    ASSERT_EQ_STR(vrt_policy_name(p), "fcfs");
    ASSERT_OK(vrt_policy_priority(p, &r, &prio, &err), &err);
    ASSERT_NEAR(prio, -1, 0);
    vrt_policy_free(p);
    ASSERT_EQ_INT(vrt_policy_load(&p, NULL, 0.1, 0.1, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "deadline");
}

TEST(policy_client_message_has_no_paths_or_traceback)
{
    char out[256];
    vrt_policy_client_msg("policy \"custom\" hook priority: /srv/conf/x.lua:12: no priority for "
                          "you\nstack traceback:\n\t[C]: in function 'error'\n\t/srv/x.lua:12: in "
                          "function </srv/x.lua:3>",
                          out, sizeof out);
    ASSERT_EQ_STR(out, "policy \"custom\" hook priority: no priority for you");
    vrt_policy_client_msg("policy \"custom\" hook admit: [string \"...\"]:3: time budget of 0.1 s "
                          "exceeded (endless loop?)",
                          out, sizeof out);
    ASSERT_CONTAINS(out, "time budget of 0.1 s exceeded");
    ASSERT(strstr(out, ":3:") == NULL);
    vrt_policy_client_msg("short", out, 4);
    ASSERT_EQ_STR(out, "sho");
}

/* Not a check: how many hook calls a second the thread handover allows
 * (printed for the record; the test only checks that they answer). */
TEST(policy_hook_call_rate)
{
    vrt_err err = {0};
    vrt_policy *p;
    ASSERT_OK(vrt_test_load_policy(&p, "{ priority = function(req) return req.priority end }", 0.1,
                                   1.0, &err),
              &err);
    vrt_policy_req r = req_of("t", 5, 1);
    double t0 = now_s(), prio = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        r.priority = i;
        ASSERT_OK(vrt_policy_priority(p, &r, &prio, &err), &err);
        ASSERT_NEAR(prio, i, 0);
    }
    double dt = now_s() - t0;
    fprintf(stderr, "  %d priority calls in %.3f s: %.0f calls/s, %.1f us per call\n", n, dt,
            n / dt, dt / n * 1e6);
    vrt_policy_free(p);
}
