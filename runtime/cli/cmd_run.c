/* cmd_run.c — `v100rt run SCRIPT.lua [ARGS...]`: scripted experiments. */
#include "cli/cli.h"
#include "core/err.h"
#include "lua/host.h"

#include <stdio.h>

int vrt_cmd_run(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("run");
    if (argc < 2)
        return vrt_cli_usage(self, "needs a script");
    if (argv[1][0] == '-' && argv[1][1] == '-')
        return vrt_cli_usage(self, "options go after the script; they are passed to it");
    vrt_err err = {0};
    lua_State *L = vrt_lua_new(&err);
    if (!L) {
        fprintf(stderr, "v100rt run: %s\n", err.msg);
        return VRT_EXIT_FAIL;
    }
    vrt_lua_set_args(L, argv[1], argc - 2, argv + 2);
    int rc = vrt_lua_dofile(L, argv[1], 0, 0, &err);
    vrt_lua_close(L);
    if (rc != 0) {
        fprintf(stderr, "v100rt run: %s\n", err.msg);
        return VRT_EXIT_FAIL;
    }
    return VRT_EXIT_OK;
}
