/* host.h — the LuaJIT host: states with v100rt's package.path, protected
 * calls that turn Lua errors into vrt errors (with file:line and traceback),
 * and a time budget for untrusted-by-accident code (an endless loop in a
 * config file or a policy hook).
 *
 * Lua states are never shared between threads: each thread makes its own.
 */
#ifndef VRT_LUA_HOST_H
#define VRT_LUA_HOST_H

#include "core/err.h"

#include <lua.h>

/* The folder holding v100rt's Lua modules (lua/v100rt/...): $V100RT_LUA_DIR,
 * else <exe dir>/lua (source tree), else <exe dir>/../share/v100rt/lua
 * (installed), else the compiled-in PREFIX path. */
const char *vrt_lua_dir(void);

/* A new state with the standard libraries and package.path set so that
 * require "v100rt" finds lua/v100rt/init.lua. Returns NULL on failure. */
lua_State *vrt_lua_new(vrt_err *err);
void vrt_lua_close(lua_State *L);

/* lua_pcall with a traceback handler: on error, fills err (VRT_ELUA) with
 * the message (which carries file:line) and traceback, pops it, and
 * returns VRT_ELUA. */
int vrt_lua_pcall(lua_State *L, int nargs, int nresults, vrt_err *err);

/* Loads and runs a file with nargs arguments already pushed; leaves nresults. */
int vrt_lua_dofile(lua_State *L, const char *path, int nargs, int nresults, vrt_err *err);

/* Limits the wall time of each following vrt_lua_pcall to seconds (0 = no
 * limit). Turns the JIT off for this state so the limit is always checked. */
void vrt_lua_set_budget(lua_State *L, double seconds);

/* Sets the global `arg` table (script args, arg[0] = script) like lua(1). */
/* Pushes the arguments of the schema's M.load_src(path, argv, use_env)
 * for src: the path (or nil), the argv words as a table, use_env. */
void vrt_lua_push_config_src(lua_State *L, const vrt_config_source *src);
void vrt_lua_set_args(lua_State *L, const char *script, int argc, char **argv);

#endif
