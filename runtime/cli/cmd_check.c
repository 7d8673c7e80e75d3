/* cmd_check.c — `v100rt check CONFIG.lua|MODEL_DIR [flags]`: validate and
 * print a config.
 *
 * Loads the config the way `serve` will (vrt_config_load_src: the file or
 * model directory, the command-line flags, TGI's environment variables), so
 * that what check accepts is what the server accepts; when model.path
 * exists, reads its config.json and quantization config with the loader's
 * own code (the architecture and model.quantize must be ones the loader
 * takes); then prints the resolved configuration with the origin of each
 * value.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/runtime_int.h"
#include "lua/host.h"
#include "model/hf_config.h"
#include "model/quant.h"

#include <lauxlib.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Prints the resolved config through the Lua schema module, from the same
 * source as vrt_config_load_src (the environment is read the same way). */
static int print_resolved(const vrt_config_source *src, int as_json, vrt_err *err)
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
    lua_getfield(L, mod, "load_src");
    vrt_lua_push_config_src(L, src);
    if ((rc = vrt_lua_pcall(L, 3, 4, err)) != 0)
        goto out;
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

/* Prints "NAME: N error(s):" and one "  - line" per line of msg. */
static void print_errors(const char *name, char *msg)
{
    int n = 1;
    for (const char *p = msg; *p; p++)
        n += *p == '\n';
    fprintf(stderr, "%s: %d error%s:\n", name, n, n == 1 ? "" : "s");
    char *line = msg;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        fprintf(stderr, "  - %s\n", line);
        line = nl ? nl + 1 : NULL;
    }
}

/* What the loader will say about model.path, when it exists: its
 * config.json (architecture, rope, activation: vrt_model_config_load) and
 * whether model.quantize agrees with the checkpoint. */
static int check_model_dir(const vrt_config *cfg, vrt_err *err)
{
    vrt_err e = {0};
    vrt_model_config mc;
    int rc = vrt_model_config_load(&mc, cfg->model.path, &e);
    if (rc)
        return vrt_err_set(err, rc, "model.path \"%s\": %s; the loader cannot serve this model",
                           cfg->model.path, e.msg);
    vrt_quant_config qc;
    rc = vrt_quant_config_load(&qc, cfg->model.path, &e);
    const char *want = vrt__config_quantize(cfg); /* NULL: as the checkpoint is */
    if (!rc && want)
        rc = vrt_quant_config_agrees(&qc, want, &e);
    vrt_quant_config_free(&qc);
    if (rc)
        return vrt_err_set(err, rc, "model.path \"%s\": %s", cfg->model.path, e.msg);
    return 0;
}

typedef struct check_opts {
    int json, quiet;
} check_opts;

const vrt_opt vrt_cli_check_opts[] = {
    {.name = "json",
     .type = VRT_OPT_FLAG,
     .off = offsetof(check_opts, json),
     .help = "print the resolved configuration as JSON"},
    {.name = "quiet",
     .type = VRT_OPT_FLAG,
     .off = offsetof(check_opts, quiet),
     .help = "print nothing on success (errors still go to stderr)"},
    {NULL},
};

int vrt_cmd_check(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("check");
    check_opts o = {0};
    /* check's own options; every other word goes to the config loader (the
     * path, then flags as `serve` takes them); a misspelt --json or --quiet
     * is a usage error (vrt_cmd.suggest_own), not a flag. */
    const int max_words = argc + 16;
    char **words = calloc((size_t)max_words, sizeof *words);
    int *taken = calloc((size_t)max_words, sizeof *taken);
    if (!words || !taken) {
        free(words);
        free(taken);
        return VRT_EXIT_FAIL;
    }
    int npos = 0, n = 0;
    int rc = vrt_cli_config_words(self, &o, NULL, argc, argv, words, taken, max_words, &npos, &n);
    free(taken);
    if (rc) {
        free(words);
        return rc == VRT_CLI_HELP_SHOWN ? VRT_EXIT_OK : rc;
    }
    const int as_json = o.json, quiet = o.quiet;

    vrt_config_source src = {
        .path = NULL, .argv = (const char *const *)words, .argc = n, .use_env = 1};
    vrt_config cfg;
    vrt_err err = {0};
    rc = vrt_config_load_src(&cfg, &src, &err);
    const char *name = cfg.source ? cfg.source : "(command line)";
    char *label = strdup(name);
    for (int i = 0; i < cfg.n_notes; i++)
        fprintf(stderr, "%s: %s\n", name, cfg.notes[i]);
    if (rc != 0) {
        print_errors(label ? label : "check", err.msg);
        goto fail;
    }
    struct stat st;
    if (stat(cfg.model.path, &st) != 0)
        fprintf(stderr, "%s: warning: model.path \"%s\" does not exist (yet)\n", name,
                cfg.model.path);
    else if (!S_ISDIR(st.st_mode))
        fprintf(stderr, "%s: warning: model.path \"%s\" is not a directory\n", name,
                cfg.model.path);
    else {
        if (check_model_dir(&cfg, &err) != 0) {
            print_errors(name, err.msg);
            goto fail;
        }
    }
    vrt_config_free(&cfg);
    if (!quiet) {
        /* The same source again: Lua finds the same path among the words. */
        if (print_resolved(&src, as_json, &err) != 0) {
            fprintf(stderr, "%s: %s\n", label ? label : "check", err.msg);
            free(label);
            free(words);
            return VRT_EXIT_FAIL;
        }
        if (!as_json)
            fprintf(stderr, "%s: ok\n", label ? label : "check");
    }
    free(label);
    free(words);
    return VRT_EXIT_OK;
fail:
    vrt_config_free(&cfg);
    free(label);
    free(words);
    return VRT_EXIT_FAIL;
}
