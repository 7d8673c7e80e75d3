/* chat_lua.c — a config's Lua chat template function (see chat_lua.h). */
#include "server/chat_lua.h"

#include "core/err.h"
#include "core/log.h"
#include "lua/host.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

struct vrt_chat_lua {
    lua_State *L;
    int ref; /* the function */
};

int vrt_chat_lua_load(vrt_chat_lua **out, const char *config_path, vrt_err *err)
{
    *out = NULL;
    vrt_chat_lua *c = calloc(1, sizeof *c);
    if (!c)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    c->L = vrt_lua_new(err);
    if (!c->L) {
        free(c);
        return err->code;
    }
    lua_State *L = c->L;
    vrt_lua_set_budget(L, 10.0);
    int rc;
    lua_getglobal(L, "require");
    lua_pushstring(L, "v100rt.config");
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        goto fail;
    lua_getfield(L, -1, "load_file");
    lua_pushstring(L, config_path);
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        goto fail;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "model");
        if (lua_istable(L, -1))
            lua_getfield(L, -1, "chat_template");
    }
    if (!lua_isfunction(L, -1)) {
        rc = vrt_err_set(err, VRT_ECONFIG, "%s: model.chat_template is not a Lua function",
                         config_path);
        goto fail;
    }
    c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    vrt_lua_set_budget(L, 0.5);
    *out = c;
    return 0;
fail:
    vrt_chat_lua_free(c);
    return rc;
}

void vrt_chat_lua_free(vrt_chat_lua *c)
{
    if (!c)
        return;
    vrt_lua_close(c->L);
    free(c);
}

/* Removes the "CHUNK:LINE: " that Lua puts before an error message
 * ("/etc/v100rt/config.lua:12: ", "[string \"...\"]:3: "), repeatedly. */
static void strip_location(char *msg)
{
    for (;;) {
        char *p = msg;
        if (strncmp(p, "[string \"", 9) == 0) {
            char *q = strstr(p, "\"]:");
            if (!q)
                return;
            p = q + 2;
        } else {
            while (*p && *p != ':' && *p != ' ' && *p != '\n')
                p++;
            if (p == msg)
                return;
        }
        if (*p != ':' || !isdigit((unsigned char)p[1]))
            return;
        p++;
        while (isdigit((unsigned char)*p))
            p++;
        if (p[0] != ':' || p[1] != ' ')
            return;
        memmove(msg, p + 2, strlen(p + 2) + 1);
    }
}

int vrt_chat_lua_render(vrt_chat_lua *c, const vrt_chat_msg *msgs, int n, const char *bos,
                        const char *eos, int add_generation_prompt, char **out, vrt_err *err)
{
    lua_State *L = c->L;
    *out = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, msgs[i].role ? msgs[i].role : "");
        lua_setfield(L, -2, "role");
        lua_pushstring(L, msgs[i].content ? msgs[i].content : "");
        lua_setfield(L, -2, "content");
        lua_rawseti(L, -2, i + 1);
    }
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, add_generation_prompt);
    lua_setfield(L, -2, "add_generation_prompt");
    lua_pushstring(L, bos ? bos : "");
    lua_setfield(L, -2, "bos_token");
    lua_pushstring(L, eos ? eos : "");
    lua_setfield(L, -2, "eos_token");
    if (vrt_lua_pcall(L, 2, 1, err) != 0) {
        lua_settop(L, 0);
        /* The client gets the message (the template's error() text, e.g.
         * "roles must alternate"); the traceback and the location in the
         * config file go to the log. */
        vrt_log(VRT_LOG_WARN, "model.chat_template failed: %s", err->msg);
        char *tb = strstr(err->msg, "\nstack traceback");
        if (tb)
            *tb = 0;
        strip_location(err->msg);
        vrt_err_prefix(err, "model.chat_template: ");
        err->code = VRT_EINVAL;
        return VRT_EINVAL;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        const char *t = luaL_typename(L, -1);
        lua_settop(L, 0);
        return vrt_err_set(err, VRT_EINVAL,
                           "model.chat_template returned a %s; it must return the prompt string",
                           t);
    }
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    *out = malloc(len + 1);
    if (*out) {
        memcpy(*out, s, len);
        (*out)[len] = 0;
    }
    lua_settop(L, 0);
    return *out ? 0 : vrt_err_set(err, VRT_ENOMEM, "out of memory");
}
