/* policy.c — a scheduling policy's Lua hooks on their own thread, under a
 * deadline (see policy.h).
 *
 * The engine thread and the policy thread share one channel: the engine
 * copies a call's arguments into it, bumps `called` and waits (timed) until
 * the policy thread has set `answered` to the same value. The arguments are
 * copies owned by the channel, so that a call the engine gave up on can
 * still read them safely whenever it returns. The channel is reference
 * counted (engine + policy thread): whichever lets go last frees it.
 */
#include "engine/policy.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "lua/host.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { H_ADMIT, H_PRIORITY, H_ON_STEP, H_PICK_VICTIM, H_N, OP_LOAD, OP_QUIT };
static const char *const hook_names[H_N] = {"admit", "priority", "on_step", "pick_victim"};

typedef struct chan {
    pthread_mutex_t mu;
    pthread_cond_t to_worker, to_engine;
    int refs;          /* engine + policy thread */
    uint64_t called;   /* calls handed over */
    uint64_t answered; /* calls answered */
    int abandoned;     /* the engine gave up: the thread ends after this call */
    int op;            /* H_* or OP_* */
    /* Arguments (copies). */
    vrt_policy_req *reqs;
    int n_reqs;
    size_t cap_reqs;
    char *strs; /* the tenants of reqs */
    size_t cap_strs;
    vrt_policy_stats stats;
    char *config_path; /* OP_LOAD: the config file, or NULL */
    char builtin[32];  /* OP_LOAD: the built-in policy, when no config_path */
    double budget_s;
    /* Results. */
    int rc;
    vrt_err err;
    double num;
    int present[H_N];
    char name[64];
} chan;

struct vrt_policy {
    chan *c; /* NULL once abandoned */
    pthread_t thread;
    int disabled;
    int present[H_N];
    char name[64];
    double budget_s, deadline_s;
};

static void chan_unref(chan *c)
{
    pthread_mutex_lock(&c->mu);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->to_worker);
    pthread_cond_destroy(&c->to_engine);
    free(c->reqs);
    free(c->strs);
    free(c->config_path);
    free(c);
}

/* ---- the policy thread ---------------------------------------------------- */

typedef struct worker {
    lua_State *L;
    int ref[H_N];
} worker;

/* Creates the Lua state and loads the hooks; fills c->present and c->name. */
static int w_load(worker *w, chan *c, vrt_err *err)
{
    w->L = vrt_lua_new(err);
    if (!w->L)
        return err->code;
    lua_State *L = w->L;
    vrt_lua_set_budget(L, 10.0); /* loading the config: like `check` */
    int rc;
    lua_getglobal(L, "require");
    lua_pushstring(L, "v100rt.policy");
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        return rc;
    int mod = lua_gettop(L);
    if (c->config_path) {
        lua_getfield(L, mod, "load");
        lua_pushstring(L, c->config_path);
    } else {
        lua_getfield(L, mod, "builtin");
        lua_pushstring(L, c->builtin);
    }
    if ((rc = vrt_lua_pcall(L, 1, 2, err)) != 0)
        return rc;
    snprintf(c->name, sizeof c->name, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "custom");
    lua_pop(L, 1);
    /* wrap(hooks) */
    lua_getfield(L, mod, "wrap");
    lua_insert(L, -2);
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        return rc;
    for (int i = 0; i < H_N; i++) {
        lua_getfield(L, -1, hook_names[i]);
        if (lua_isfunction(L, -1)) {
            w->ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
            c->present[i] = 1;
        } else {
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 0);
    vrt_lua_set_budget(L, c->budget_s);
    return 0;
}

/* Runs hook h with the channel's arguments; the result goes to c->num. */
static int w_call(worker *w, chan *c, int h, vrt_err *err)
{
    lua_State *L = w->L;
    if (!L || w->ref[h] == LUA_NOREF)
        return vrt_err_set(err, VRT_EINVAL, "policy: no hook %s", hook_names[h]);
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref[h]);
    int nargs = 1;
    if (h == H_ON_STEP) {
        lua_pushlightuserdata(L, &c->stats);
    } else {
        lua_pushlightuserdata(L, c->reqs);
        if (h == H_PICK_VICTIM) {
            lua_pushinteger(L, c->n_reqs);
            nargs = 2;
        }
    }
    int rc = vrt_lua_pcall(L, nargs, 1, err);
    if (!rc) {
        c->num = h == H_ADMIT ? (double)lua_toboolean(L, -1) : lua_tonumber(L, -1);
    }
    lua_settop(L, 0);
    return rc;
}

static void *worker_main(void *arg)
{
    chan *c = arg;
    worker w = {.L = NULL};
    for (int i = 0; i < H_N; i++)
        w.ref[i] = LUA_NOREF;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->answered == c->called)
            pthread_cond_wait(&c->to_worker, &c->mu);
        int op = c->op;
        if (op == OP_QUIT)
            break;
        pthread_mutex_unlock(&c->mu);
        vrt_err err = {0};
        int rc = op == OP_LOAD ? w_load(&w, c, &err) : w_call(&w, c, op, &err);
        pthread_mutex_lock(&c->mu);
        c->rc = rc;
        if (rc)
            c->err = err;
        c->answered = c->called;
        if (c->abandoned)
            break;
        pthread_cond_signal(&c->to_engine);
    }
    pthread_mutex_unlock(&c->mu);
    if (w.L)
        vrt_lua_close(w.L);
    chan_unref(c);
    return NULL;
}

/* ---- the engine side -------------------------------------------------------- */

/* Hands c->op over and waits up to timeout_s. On a timeout the policy
 * thread is abandoned and the policy disabled. */
static int handover(vrt_policy *p, int op, double timeout_s, vrt_err *err)
{
    chan *c = p->c;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    double whole = (double)(long long)timeout_s;
    dl.tv_sec += (time_t)whole;
    dl.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    c->op = op;
    c->called++;
    pthread_cond_signal(&c->to_worker);
    while (c->answered != c->called) {
        int r = pthread_cond_timedwait(&c->to_engine, &c->mu, &dl);
        if (r == ETIMEDOUT && c->answered != c->called) {
            /* The thread is still inside the call (answering takes c->mu,
             * which we hold): it can be detached and deprioritized. */
            c->abandoned = 1;
            struct sched_param sp = {.sched_priority = 0};
            pthread_setschedparam(p->thread, SCHED_IDLE, &sp);
            pthread_detach(p->thread);
            pthread_mutex_unlock(&c->mu);
            chan_unref(c);
            p->c = NULL;
            p->disabled = 1;
            if (op == OP_LOAD)
                return vrt_err_set(err, VRT_EPOLICY,
                                   "loading the policy did not finish within %.1f s (stuck in a "
                                   "C function?)",
                                   timeout_s);
            return vrt_err_set(err, VRT_EPOLICY,
                               "policy \"%s\" hook %s did not return within %.1f s (stuck inside "
                               "a C function, e.g. string.find with a pathological pattern, "
                               "where the %.1f s Lua budget cannot stop it): the policy is "
                               "disabled and requests are scheduled first come, first served "
                               "(fcfs) until the server restarts",
                               p->name, hook_names[op], timeout_s, p->budget_s);
        }
    }
    int rc = c->rc;
    if (rc) {
        *err = c->err;
        if (op != OP_LOAD) {
            vrt_err_prefix(err, "policy \"%s\" hook %s: ", p->name, hook_names[op]);
            err->code = rc = VRT_EPOLICY;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int vrt_policy_load(vrt_policy **out, const vrt_config *cfg, double budget_s, double deadline_s,
                    vrt_err *err)
{
    *out = NULL;
    vrt_policy *p = calloc(1, sizeof *p);
    chan *c = calloc(1, sizeof *c);
    if (!p || !c) {
        free(p);
        free(c);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    }
    const char *name = cfg && cfg->batching.policy ? cfg->batching.policy : "fcfs";
    int custom = strcmp(name, "custom") == 0;
    int rc = 0;
    if (custom && !(cfg && cfg->source))
        rc = vrt_err_set(err, VRT_EINVAL,
                         "batching.policy: a custom policy (a table of hooks) needs the config "
                         "file it is written in");
    else if (custom && !(c->config_path = strdup(cfg->source)))
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
    if (rc) {
        free(p);
        free(c);
        return rc;
    }
    snprintf(c->builtin, sizeof c->builtin, "%s", name);
    snprintf(p->name, sizeof p->name, "%s", name);
    if (budget_s <= 0 || deadline_s <= budget_s) {
        free(c->config_path);
        free(p);
        free(c);
        return vrt_err_set(err, VRT_EINVAL,
                           "vrt_policy_load: the deadline (%.3f s) must be longer than the "
                           "budget (%.3f s)",
                           deadline_s, budget_s);
    }
    c->budget_s = p->budget_s = budget_s;
    p->deadline_s = deadline_s;
    c->refs = 2;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->to_worker, &ca);
    pthread_cond_init(&c->to_engine, &ca);
    pthread_condattr_destroy(&ca);
    p->c = c;
    if (pthread_create(&p->thread, NULL, worker_main, c) != 0) {
        c->refs = 1;
        chan_unref(c);
        free(p);
        return vrt_err_set(err, VRT_ENOMEM, "batching.policy: cannot start the policy thread");
    }
    /* Loading runs the config file: its own (longer) budget, like `check`. */
    rc = handover(p, OP_LOAD, 30.0, err);
    if (rc) {
        vrt_err_prefix(err, "batching.policy: ");
        vrt_policy_free(p);
        return rc;
    }
    memcpy(p->present, c->present, sizeof p->present);
    snprintf(p->name, sizeof p->name, "%s", c->name);
    *out = p;
    return 0;
}

void vrt_policy_free(vrt_policy *p)
{
    if (!p)
        return;
    if (p->c) {
        chan *c = p->c;
        pthread_mutex_lock(&c->mu);
        c->op = OP_QUIT;
        c->called++;
        pthread_cond_signal(&c->to_worker);
        pthread_mutex_unlock(&c->mu);
        pthread_join(p->thread, NULL);
        chan_unref(c);
    }
    free(p);
}

const char *vrt_policy_name(const vrt_policy *p)
{
    return p ? p->name : "fcfs";
}

int vrt_policy_disabled(const vrt_policy *p)
{
    return p ? p->disabled : 0;
}

/* Does the call go to Lua (a live policy with the hook)? */
static int live(const vrt_policy *p, int h)
{
    return p && !p->disabled && p->c && p->present[h];
}

/* Copies n requests (and their tenants) into the channel. */
static int put_reqs(chan *c, const vrt_policy_req *r, int n, vrt_err *err)
{
    if (vrt_grow(&c->reqs, &c->cap_reqs, (size_t)n, sizeof *c->reqs))
        return vrt_err_set(err, VRT_ENOMEM, "policy: out of memory");
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += r[i].tenant ? strlen(r[i].tenant) + 1 : 0;
    if (vrt_grow(&c->strs, &c->cap_strs, total, 1))
        return vrt_err_set(err, VRT_ENOMEM, "policy: out of memory");
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        c->reqs[i] = r[i];
        if (r[i].tenant) {
            size_t len = strlen(r[i].tenant) + 1;
            memcpy(c->strs + at, r[i].tenant, len);
            c->reqs[i].tenant = c->strs + at;
            at += len;
        }
    }
    c->n_reqs = n;
    return 0;
}

int vrt_policy_admit(vrt_policy *p, const vrt_policy_req *req, int *admit, vrt_err *err)
{
    *admit = 1;
    if (!live(p, H_ADMIT))
        return 0;
    int rc = put_reqs(p->c, req, 1, err);
    if (!rc)
        rc = handover(p, H_ADMIT, p->deadline_s, err);
    if (!rc)
        *admit = p->c->num != 0;
    return rc;
}

int vrt_policy_priority(vrt_policy *p, const vrt_policy_req *req, double *prio, vrt_err *err)
{
    *prio = -req->arrival_s;
    if (!live(p, H_PRIORITY))
        return 0;
    int rc = put_reqs(p->c, req, 1, err);
    if (!rc)
        rc = handover(p, H_PRIORITY, p->deadline_s, err);
    if (!rc)
        *prio = p->c->num;
    return rc;
}

int vrt_policy_on_step(vrt_policy *p, const vrt_policy_stats *st, vrt_err *err)
{
    if (!live(p, H_ON_STEP))
        return 0;
    p->c->stats = *st;
    return handover(p, H_ON_STEP, p->deadline_s, err);
}

int vrt_policy_pick_victim(vrt_policy *p, const vrt_policy_req *running, int n, int *victim,
                           vrt_err *err)
{
    *victim = n - 1;
    if (n < 1 || !live(p, H_PICK_VICTIM))
        return 0;
    int rc = put_reqs(p->c, running, n, err);
    if (!rc)
        rc = handover(p, H_PICK_VICTIM, p->deadline_s, err);
    if (!rc)
        *victim = (int)p->c->num - 1;
    return rc;
}

void vrt_policy_client_msg(const char *full, char *out, size_t n)
{
    if (n == 0)
        return;
    size_t o = 0;
    const char *s = full ? full : "";
    while (*s && *s != '\n' && o + 1 < n) {
        /* A word ending in ":<digits>: " is a file:line position: drop it. */
        const char *end = s;
        while (*end && *end != ' ' && *end != '\n')
            end++;
        const char *colon = end > s ? end - 1 : s;
        int is_pos = 0;
        if (end > s && *colon == ':') {
            const char *d = colon;
            while (d > s && isdigit((unsigned char)d[-1]))
                d--;
            is_pos = d < colon && d > s && d[-1] == ':';
        }
        if (is_pos) {
            s = *end == ' ' ? end + 1 : end;
            continue;
        }
        while (s < end && o + 1 < n)
            out[o++] = *s++;
        if (*s == ' ' && o + 1 < n)
            out[o++] = *s++;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = 0;
}
