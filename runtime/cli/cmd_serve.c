/* cmd_serve.c — `v100rt serve CONFIG.lua`: the TGI- and OpenAI-compatible
 * HTTP server (runtime/server/server.c). */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "server/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vrt_cmd_serve(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("serve");
    vrt_opt opts[] = {{"port", 1, NULL}, {"host", 1, NULL}, {"port-file", 1, NULL}};
    char *pos[1];
    int npos = 0;
    int rc = vrt_cli_parse(self, opts, 3, argc, argv, pos, 1, &npos);
    if (rc)
        return rc;
    if (npos != 1)
        return vrt_cli_usage(self, "needs one config file");
    long port = -1;
    if (opts[0].value) {
        char *end;
        errno = 0;
        port = strtol(opts[0].value, &end, 10);
        if (end == opts[0].value || *end || errno || port < 0 || port > 65535)
            return vrt_cli_usage(self, "--port must be a number in [0, 65535] (0 = any free port)");
    }
    vrt_err err = {0};
    vrt_config cfg;
    if (vrt_config_load(&cfg, pos[0], &err) != 0) {
        fprintf(stderr, "v100rt serve: %s\n", err.msg);
        vrt_config_free(&cfg);
        return VRT_EXIT_FAIL;
    }
    int level = cfg.logging.level ? vrt_log_level_parse(cfg.logging.level) : -1;
    if (level >= 0)
        vrt_log_set_level(level);
    if (cfg.logging.format && strcmp(cfg.logging.format, "json") == 0)
        vrt_log_set_format(VRT_LOG_JSON);
    if (port >= 0)
        cfg.server.port = (int)port;
    if (opts[1].value)
        cfg.server.host = vrt_config_strdup(&cfg, opts[1].value);
    if (vrt_config_apply_nccl_env(&cfg, &err) != 0)
        VRT_WARN("%s", err.msg);
    rc = vrt_serve(&cfg, opts[2].value, &err);
    if (err.code) {
        fprintf(stderr, "v100rt serve: %s\n", err.msg);
        if (rc == 0)
            rc = VRT_EXIT_FAIL;
    }
    vrt_config_free(&cfg);
    return rc;
}
