/* config.c — loading a Lua config file into the plain C struct vrt_config.
 *
 * The schema, defaults, aliases and validation live in lua/v100rt/config.lua;
 * this file runs it in a fresh Lua state (with a time budget), and lets it
 * copy the resolved values into the struct through the FFI (M.fill). After
 * vrt_config_load returns, the state is gone: C never walks Lua tables.
 */
#include "core/log.h"
#include "lua/host.h"
#include "vrt.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* Strings and string arrays handed to the struct live in one list. */
typedef struct mem_node {
    struct mem_node *next;
    max_align_t data[];
} mem_node;

static void *cfg_alloc(vrt_config *cfg, size_t n)
{
    mem_node *m = malloc(sizeof *m + n);
    if (!m)
        return NULL;
    m->next = cfg->mem_;
    cfg->mem_ = m;
    memset(m->data, 0, n);
    return m->data;
}

const char *vrt_config_strdup(vrt_config *cfg, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = cfg_alloc(cfg, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

const char **vrt_config_strv(vrt_config *cfg, int n)
{
    return cfg_alloc(cfg, (size_t)(n > 0 ? n : 1) * sizeof(char *));
}

size_t vrt_config_sizeof(void)
{
    return sizeof(vrt_config);
}

void vrt_config_free(vrt_config *cfg)
{
    if (!cfg)
        return;
    mem_node *m = cfg->mem_;
    while (m) {
        mem_node *next = m->next;
        free(m);
        m = next;
    }
    memset(cfg, 0, sizeof *cfg);
}

void vrt_lua_push_config_src(lua_State *L, const vrt_config_source *src)
{
    if (src->path)
        lua_pushstring(L, src->path);
    else
        lua_pushnil(L);
    lua_createtable(L, src->argc > 0 ? src->argc : 0, 0);
    for (int i = 0; i < src->argc; i++) {
        lua_pushstring(L, src->argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushboolean(L, src->use_env);
}

/* Copies a Lua array of strings (at index idx) into the struct. */
static const char **strv_from_lua(lua_State *L, int idx, vrt_config *cfg, int *n)
{
    int len = (int)lua_objlen(L, idx);
    const char **v = vrt_config_strv(cfg, len);
    *n = 0;
    if (!v)
        return NULL;
    for (int i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, i);
        v[(*n)++] = vrt_config_strdup(cfg, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return v;
}

int vrt_config_load_src(vrt_config *cfg, const vrt_config_source *src, vrt_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    lua_State *L = vrt_lua_new(err);
    if (!L)
        return err ? err->code : VRT_ENOMEM;
    /* A config file that loops forever must not hang startup. */
    vrt_lua_set_budget(L, 10.0);

    int rc;
    lua_getglobal(L, "require");
    lua_pushstring(L, "v100rt.config");
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0) {
        vrt_err_prefix(err, "cannot load the config schema from %s: ", vrt_lua_dir());
        goto out;
    }
    int mod = lua_gettop(L);

    /* resolved, origin, errors, notes, path = M.load_src(path, argv, use_env) */
    lua_getfield(L, mod, "load_src");
    vrt_lua_push_config_src(L, src);
    if ((rc = vrt_lua_pcall(L, 3, 5, err)) != 0)
        goto out;
    int resolved = mod + 1, errors = mod + 3, notes = mod + 4, path = mod + 5;
    if (lua_isstring(L, path))
        cfg->source = vrt_config_strdup(cfg, lua_tostring(L, path));
    cfg->notes = strv_from_lua(L, notes, cfg, &cfg->n_notes);
    if (lua_objlen(L, errors) > 0) {
        lua_getfield(L, mod, "error_text");
        lua_pushvalue(L, errors);
        if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
            goto out;
        rc = vrt_err_set(err, VRT_ECONFIG, "%s", lua_tostring(L, -1));
        goto out;
    }

    /* M.fill(ffi.cast("vrt_config *", cfg), resolved) */
    lua_getfield(L, mod, "fill_ptr");
    lua_pushlightuserdata(L, cfg);
    lua_pushvalue(L, resolved);
    if ((rc = vrt_lua_pcall(L, 2, 0, err)) != 0) {
        vrt_err_prefix(
            err, "%s: cannot copy the config to C: ", cfg->source ? cfg->source : "(command line)");
        goto out;
    }
    rc = 0;
out:
    vrt_lua_close(L);
    return rc;
}

int vrt_config_load(vrt_config *cfg, const char *path, vrt_err *err)
{
    vrt_config_source src = {.path = path};
    if (!path) {
        memset(cfg, 0, sizeof *cfg);
        return vrt_err_set(err, VRT_EINVAL, "vrt_config_load: no path");
    }
    return vrt_config_load_src(cfg, &src, err);
}

int vrt_config_apply_nccl_env(const vrt_config *cfg, vrt_err *err)
{
    char set[2048] = "", kept[2048] = "";
    for (int i = 0; i < cfg->nccl.n_env; i++) {
        const char *kv = cfg->nccl.env[i];
        const char *eq = strchr(kv, '=');
        if (!eq)
            return vrt_err_set(err, VRT_EINVAL, "nccl: malformed variable \"%s\"", kv);
        char name[128];
        size_t n = (size_t)(eq - kv);
        if (n >= sizeof name)
            return vrt_err_set(err, VRT_EINVAL, "nccl: variable name too long in \"%s\"", kv);
        memcpy(name, kv, n);
        name[n] = '\0';
        const char *had = getenv(name);
        if (had) {
            size_t k = strlen(kept);
            snprintf(kept + k, sizeof kept - k, "%s%s=%s", k ? " " : "", name, had);
            continue;
        }
        if (setenv(name, eq + 1, 0) != 0)
            return vrt_err_set(err, VRT_EINVAL, "nccl: cannot set %s", name);
        size_t k = strlen(set);
        snprintf(set + k, sizeof set - k, "%s%s", k ? " " : "", kv);
    }
    if (cfg->nccl.n_env > 0)
        VRT_INFO("nccl: set %s%s%s%s", set[0] ? set : "nothing",
                 kept[0] ? "; left as the environment has them: " : "", kept,
                 kept[0] ? " (the environment wins over the nccl section)" : "");
    return 0;
}
