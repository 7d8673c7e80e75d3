/* cmd_serve.c — `v100rt serve CONFIG.lua|MODEL_DIR [FLAGS]`: the TGI- and
 * OpenAI-compatible HTTP server (runtime/server/server.c).
 *
 * Like `vllm serve MODEL` and `text-generation-launcher --model-id MODEL`:
 * the positional argument is a config file or a model directory (or TGI's
 * --model-id DIR), and every other word except serve's own --port-file is
 * handed to the config loader (vrt_config_load_src) as command-line flags,
 * with TGI's environment variables: TGI/vLLM flags through the schema's
 * aliases, --device/--port/--host/--threads and --SECTION.KEY VALUE
 * overrides; the loader refuses container runtime flags (--ipc=host,
 * --shm-size, ...) and unknown ones. Flags may stand before or after the
 * positional.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/runtime_int.h"
#include "server/server.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_WORDS 264

/* A word that names a config or a model: an existing *.lua file or a
 * directory with a config.json. */
static int names_model(const char *w)
{
    struct stat st;
    size_t n = strlen(w);
    if (n > 4 && strcmp(w + n - 4, ".lua") == 0)
        return stat(w, &st) == 0 && S_ISREG(st.st_mode);
    char p[4096];
    if (snprintf(p, sizeof p, "%s/config.json", w) >= (int)sizeof p)
        return 0;
    return stat(w, &st) == 0 && S_ISDIR(st.st_mode) && stat(p, &st) == 0;
}

/* The value of --model-id among the flags, or NULL. */
static const char *model_id_flag(char **flags, int n)
{
    for (int i = 0; i < n; i++) {
        const char *f = flags[i];
        if (strncmp(f, "--model-id=", 11) == 0 || strncmp(f, "--model_id=", 11) == 0)
            return f + 11;
        if ((strcmp(f, "--model-id") == 0 || strcmp(f, "--model_id") == 0) && i + 1 < n &&
            flags[i + 1][0] != '-')
            return flags[i + 1];
    }
    return NULL;
}

typedef struct serve_opts {
    const char *port_file;
} serve_opts;

/* serve's one option of its own; the other flags of its help are the
 * loader's. */
const vrt_opt vrt_cli_serve_opts[] = {
    {.name = "port-file",
     .type = VRT_OPT_STR,
     .off = offsetof(serve_opts, port_file),
     .arg = "FILE",
     .help = "write the bound port to FILE once listening"},
    {NULL},
};

int vrt_cmd_serve(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("serve");
    serve_opts o = {0};
    char *words[MAX_WORDS];
    int taken[MAX_WORDS];
    int npos = 0, nwords = 0;
    /* Positional words first, then the flags in their order: the loader
     * (which knows which flags take a value) takes the first positional word
     * as the config or model, and refuses any other. */
    int rc =
        vrt_cli_config_words(self, &o, NULL, argc, argv, words, taken, MAX_WORDS, &npos, &nwords);
    if (rc)
        return rc;
    int has_model = npos > 0 || model_id_flag(words + npos, nwords - npos) != NULL;
    /* `serve --enforce-eager MODEL`: the word after a flag may be the
     * model rather than the flag's value. */
    for (int i = npos; i < nwords && !has_model; i++)
        has_model = taken[i] && names_model(words[i]);
    const char *env = getenv("MODEL_ID"); /* TGI's model, read by the loader */
    if (!has_model && !(env && *env))
        return vrt_cli_usage(self, "needs a config file or a model directory: `v100rt serve "
                                   "CONFIG.lua|MODEL_DIR [FLAGS]`, or TGI's `v100rt serve "
                                   "--model-id MODEL_DIR [FLAGS]`");
    vrt_err err = {0};
    vrt_config cfg;
    vrt_config_source src = {
        .path = NULL, .argv = (const char *const *)words, .argc = nwords, .use_env = 1};
    if (vrt_config_load_src(&cfg, &src, &err) != 0) {
        fprintf(stderr, "v100rt serve: %s\n", err.msg);
        vrt_config_free(&cfg);
        return VRT_EXIT_FAIL;
    }
    vrt__config_apply_logging(&cfg, 0);
    if (vrt_config_apply_nccl_env(&cfg, &err) != 0)
        VRT_WARN("%s", err.msg);
    rc = vrt_serve(&cfg, o.port_file, &err);
    if (err.code) {
        fprintf(stderr, "v100rt serve: %s\n", err.msg);
        if (rc == 0)
            rc = VRT_EXIT_FAIL;
    }
    vrt_config_free(&cfg);
    return rc;
}
