/* policy.c — calls a scheduling policy's Lua hooks (see policy.h). */
#include "engine/policy.h"

#include "core/err.h"
#include "lua/host.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

enum { H_ADMIT, H_PRIORITY, H_ON_STEP, H_PICK_VICTIM, H_N };
static const char *const hook_names[H_N] = {"admit", "priority", "on_step", "pick_victim"};

struct vrt_policy {
    lua_State *L;
    int ref[H_N]; /* registry refs of the wrapped hooks, LUA_NOREF when absent */
    char name[64];
};

int vrt_policy_load(vrt_policy **out, const char *config_path, double budget_s, vrt_err *err)
{
    *out = NULL;
    vrt_policy *p = calloc(1, sizeof *p);
    if (!p)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    for (int i = 0; i < H_N; i++)
        p->ref[i] = LUA_NOREF;
    p->L = vrt_lua_new(err);
    if (!p->L) {
        free(p);
        return err->code;
    }
    lua_State *L = p->L;
    vrt_lua_set_budget(L, 10.0); /* loading the config: like `check` */
    int rc;
    lua_getglobal(L, "require");
    lua_pushstring(L, "v100rt.policy");
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        goto fail;
    int mod = lua_gettop(L);
    if (config_path) {
        lua_getfield(L, mod, "load");
        lua_pushstring(L, config_path);
        if ((rc = vrt_lua_pcall(L, 1, 2, err)) != 0)
            goto fail;
    } else {
        lua_getglobal(L, "require");
        lua_pushstring(L, "v100rt.policies.fcfs");
        if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
            goto fail;
        lua_pushstring(L, "fcfs");
    }
    snprintf(p->name, sizeof p->name, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "custom");
    lua_pop(L, 1);
    /* wrap(hooks) */
    lua_getfield(L, mod, "wrap");
    lua_insert(L, -2);
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        goto fail;
    for (int i = 0; i < H_N; i++) {
        lua_getfield(L, -1, hook_names[i]);
        if (lua_isfunction(L, -1))
            p->ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        else
            lua_pop(L, 1);
    }
    lua_settop(L, 0);
    vrt_lua_set_budget(L, budget_s > 0 ? budget_s : 0.1);
    *out = p;
    return 0;
fail:
    vrt_err_prefix(err, "batching.policy: ");
    vrt_policy_free(p);
    return rc;
}

void vrt_policy_free(vrt_policy *p)
{
    if (!p)
        return;
    vrt_lua_close(p->L);
    free(p);
}

const char *vrt_policy_name(const vrt_policy *p)
{
    return p ? p->name : "fcfs";
}

/* Calls hook h with a pointer argument (and n when n >= 0); leaves the
 * result on the stack. */
static int call(vrt_policy *p, int h, const void *arg, int n, vrt_err *err)
{
    lua_State *L = p->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref[h]);
    lua_pushlightuserdata(L, (void *)arg);
    int nargs = 1;
    if (n >= 0) {
        lua_pushinteger(L, n);
        nargs = 2;
    }
    int rc = vrt_lua_pcall(L, nargs, 1, err);
    if (rc) {
        vrt_err_prefix(err, "policy \"%s\" hook %s: ", p->name, hook_names[h]);
        err->code = VRT_EPOLICY;
        lua_settop(L, 0);
        return VRT_EPOLICY;
    }
    return 0;
}

int vrt_policy_admit(vrt_policy *p, const vrt_policy_req *req, int *admit, vrt_err *err)
{
    *admit = 1;
    if (!p || p->ref[H_ADMIT] == LUA_NOREF)
        return 0;
    int rc = call(p, H_ADMIT, req, -1, err);
    if (rc)
        return rc;
    *admit = lua_toboolean(p->L, -1);
    lua_settop(p->L, 0);
    return 0;
}

int vrt_policy_priority(vrt_policy *p, const vrt_policy_req *req, double *prio, vrt_err *err)
{
    *prio = -req->arrival_s;
    if (!p || p->ref[H_PRIORITY] == LUA_NOREF)
        return 0;
    int rc = call(p, H_PRIORITY, req, -1, err);
    if (rc)
        return rc;
    *prio = lua_tonumber(p->L, -1);
    lua_settop(p->L, 0);
    return 0;
}

int vrt_policy_on_step(vrt_policy *p, const vrt_policy_stats *st, vrt_err *err)
{
    if (!p || p->ref[H_ON_STEP] == LUA_NOREF)
        return 0;
    int rc = call(p, H_ON_STEP, st, -1, err);
    lua_settop(p->L, 0);
    return rc;
}

int vrt_policy_pick_victim(vrt_policy *p, const vrt_policy_req *running, int n, int *victim,
                           vrt_err *err)
{
    *victim = n - 1;
    if (!p || p->ref[H_PICK_VICTIM] == LUA_NOREF || n < 1)
        return 0;
    int rc = call(p, H_PICK_VICTIM, running, n, err);
    if (rc)
        return rc;
    *victim = (int)lua_tointeger(p->L, -1) - 1;
    lua_settop(p->L, 0);
    return 0;
}
