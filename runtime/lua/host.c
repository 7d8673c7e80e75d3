/* host.c — see host.h. */
#include "lua/host.h"

#include <lauxlib.h>
#include <limits.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef VRT_LUA_DIR
#define VRT_LUA_DIR "/usr/local/share/v100rt/lua"
#endif

static int is_dir_with_module(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/v100rt/init.lua", dir) >= (int)sizeof p)
        return 0;
    return access(p, R_OK) == 0;
}

const char *vrt_lua_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("V100RT_LUA_DIR");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            /* Source tree: ./v100rt next to ./lua; build/<variant>/ binaries
             * two levels below. */
            static const char *const rel[] = {"/lua", "/../../lua", "/../share/v100rt/lua"};
            for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
                char cand[PATH_MAX];
                if (snprintf(cand, sizeof cand, "%s%s", exe, rel[i]) >= (int)sizeof cand)
                    continue;
                if (is_dir_with_module(cand)) {
                    char *real = realpath(cand, NULL);
                    int w = snprintf(dir, sizeof dir, "%s", real ? real : cand);
                    free(real);
                    if (w < (int)sizeof dir)
                        return dir;
                }
            }
        }
    }
    snprintf(dir, sizeof dir, "%s", VRT_LUA_DIR);
    return dir;
}

lua_State *vrt_lua_new(vrt_err *err)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        vrt_err_set(err, VRT_ENOMEM, "cannot create a Lua state: out of memory");
        return NULL;
    }
    luaL_openlibs(L);
    const char *dir = vrt_lua_dir();
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}

void vrt_lua_close(lua_State *L)
{
    if (L)
        lua_close(L);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Budget: the deadline lives in the registry under this key's address. */
static const char budget_key = 0;
typedef struct {
    double seconds;
    double deadline;
} budget;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static budget *get_budget(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&budget_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    budget *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    budget *b = get_budget(L);
    if (b && b->seconds > 0 && now_s() > b->deadline)
        luaL_error(L, "time budget of %.1f s exceeded (endless loop?)", b->seconds);
}

void vrt_lua_set_budget(lua_State *L, double seconds)
{
    budget *b = get_budget(L);
    if (!b) {
        lua_pushlightuserdata(L, (void *)&budget_key);
        b = lua_newuserdata(L, sizeof *b);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    b->seconds = seconds;
    b->deadline = 0;
    if (seconds > 0) {
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 10000);
    } else {
        lua_sethook(L, NULL, 0, 0);
    }
}

int vrt_lua_pcall(lua_State *L, int nargs, int nresults, vrt_err *err)
{
    budget *b = get_budget(L);
    if (b && b->seconds > 0)
        b->deadline = now_s() + b->seconds;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        vrt_err_set(err, VRT_ELUA, "%s", msg ? msg : "(no message)");
        lua_pop(L, 1);
        return VRT_ELUA;
    }
    return 0;
}

int vrt_lua_dofile(lua_State *L, const char *path, int nargs, int nresults, vrt_err *err)
{
    int rc = luaL_loadfile(L, path);
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        vrt_err_set(err, rc == LUA_ERRFILE ? VRT_ENOENT : VRT_ELUA, "%s", msg ? msg : path);
        lua_pop(L, 1 + nargs);
        return err ? err->code : VRT_ELUA;
    }
    lua_insert(L, -(nargs + 1));
    return vrt_lua_pcall(L, nargs, nresults, err);
}

void vrt_lua_set_args(lua_State *L, const char *script, int argc, char **argv)
{
    lua_createtable(L, argc, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
}
