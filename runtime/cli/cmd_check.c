/* cmd_check.c — `v100rt check CONFIG.lua`: validate and print a config.
 *
 * Loads the file the way `serve` will (vrt_config_load), so that what check
 * accepts is exactly what the server accepts; then prints the resolved
 * configuration with the origin of each value.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "lua/host.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Prints the resolved config (and notes) through the Lua schema module. */
static int print_resolved(const char *path, int as_json, vrt_err *err)
{
    lua_State *L = vrt_lua_new(err);
    if (!L)
        return err->code;
    vrt_lua_set_budget(L, 10.0);
    int rc;
    lua_getglobal(L, "require");
    lua_pushstring(L, "v100rt.config");
    if ((rc = vrt_lua_pcall(L, 1, 1, err)) != 0)
        goto out;
    int mod = lua_gettop(L);
    lua_getfield(L, mod, "load_file");
    lua_pushstring(L, path);
    if ((rc = vrt_lua_pcall(L, 1, 4, err)) != 0)
        goto out;
    int notes = mod + 4;
    for (size_t i = 1; i <= lua_objlen(L, notes); i++) {
        lua_rawgeti(L, notes, (int)i);
        fprintf(stderr, "%s: note: %s\n", path, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_getfield(L, mod, "format");
    lua_pushvalue(L, mod + 1);
    lua_pushvalue(L, mod + 2);
    lua_pushboolean(L, as_json);
    if ((rc = vrt_lua_pcall(L, 3, 1, err)) != 0)
        goto out;
    fputs(lua_tostring(L, -1), stdout);
out:
    vrt_lua_close(L);
    return rc;
}

int vrt_cmd_check(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("check");
    vrt_opt opts[] = {{"json", 0, NULL}, {"quiet", 0, NULL}};
    char *pos[1];
    int npos = 0;
    int rc = vrt_cli_parse(self, opts, 2, argc, argv, pos, 1, &npos);
    if (rc)
        return rc;
    if (npos != 1)
        return vrt_cli_usage(self, "needs one config file");
    const char *path = pos[0];

    vrt_config cfg;
    vrt_err err = {0};
    if (vrt_config_load(&cfg, path, &err) != 0) {
        int n = 1;
        for (const char *p = err.msg; *p; p++)
            n += *p == '\n';
        fprintf(stderr, "%s: %d error%s:\n", path, n, n == 1 ? "" : "s");
        char *line = err.msg;
        while (line && *line) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            fprintf(stderr, "  - %s\n", line);
            line = nl ? nl + 1 : NULL;
        }
        vrt_config_free(&cfg);
        return VRT_EXIT_FAIL;
    }

    struct stat st;
    if (stat(cfg.model.path, &st) != 0)
        fprintf(stderr, "%s: warning: model.path \"%s\" does not exist (yet)\n", path,
                cfg.model.path);
    else if (!S_ISDIR(st.st_mode))
        fprintf(stderr, "%s: warning: model.path \"%s\" is not a directory\n", path,
                cfg.model.path);
    vrt_config_free(&cfg);

    if (opts[1].value) /* --quiet */
        return VRT_EXIT_OK;
    if (print_resolved(path, opts[0].value != NULL, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return VRT_EXIT_FAIL;
    }
    if (!opts[0].value)
        fprintf(stderr, "%s: ok\n", path);
    return VRT_EXIT_OK;
}
