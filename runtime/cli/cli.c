/* cli.c — option parsing and usage messages for the commands. */
#include "cli/cli.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/runtime_int.h"
#include "vrt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vrt_cli_usage(const vrt_cmd *cmd, const char *problem)
{
    if (problem)
        fprintf(stderr, "v100rt %s: %s\n", cmd->name, problem);
    fprintf(stderr, "usage: %s\n(see `v100rt help %s`)\n", cmd->usage, cmd->name);
    return VRT_EXIT_USAGE;
}

void vrt_cli_print_help(const vrt_cmd *cmd)
{
    printf("usage: %s\n\n%s — %s\n\n%s", cmd->usage, cmd->name, cmd->summary, cmd->help);
    fflush(stdout);
}

int vrt_cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* vrt_cli_parse and vrt_cli_config_words: rest == NULL refuses unknown
 * options. */
static int parse(const vrt_cmd *cmd, vrt_opt *opts, size_t n_opts, int argc, char **argv,
                 char **pos, int max_pos, int *n_pos, char **rest, int max_rest, int *n_rest,
                 int *val_taken)
{
    int np = 0, nr = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (np >= max_pos) {
                char msg[256];
                snprintf(msg, sizeof msg, "unexpected argument \"%s\"", a);
                return vrt_cli_usage(cmd, msg);
            }
            pos[np++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        vrt_opt *o = NULL;
        for (size_t k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                o = &opts[k];
        if (!o && vrt_cli_is_help(a)) {
            vrt_cli_print_help(cmd);
            return VRT_CLI_HELP_SHOWN;
        }
        if (!o && rest) {
            /* Another parser's option: keep it, with its value. */
            int with_value = !eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 &&
                             !vrt_cli_is_help(argv[i + 1]);
            if (nr + 1 + with_value > max_rest)
                return vrt_cli_usage(cmd, "too many options");
            if (val_taken)
                val_taken[nr] = 0;
            rest[nr++] = argv[i];
            if (with_value) {
                if (val_taken)
                    val_taken[nr] = 1;
                rest[nr++] = argv[++i];
            }
            continue;
        }
        if (!o) {
            char word[128];
            snprintf(word, sizeof word, "%.*s", (int)len, name);
            const char *names[32];
            size_t n = n_opts < 32 ? n_opts : 32;
            for (size_t k = 0; k < n; k++)
                names[k] = opts[k].name;
            const char *s = vrt_suggest(word, names, n);
            char msg[320];
            if (s)
                snprintf(msg, sizeof msg, "unknown option \"%s\"; did you mean --%s?", a, s);
            else
                snprintf(msg, sizeof msg, "unknown option \"%s\"", a);
            return vrt_cli_usage(cmd, msg);
        }
        if (o->has_arg) {
            if (eq)
                o->value = eq + 1;
            else if (i + 1 < argc)
                o->value = argv[++i];
            else {
                char msg[160];
                snprintf(msg, sizeof msg, "option --%s needs a value", o->name);
                return vrt_cli_usage(cmd, msg);
            }
        } else {
            if (eq) {
                char msg[160];
                snprintf(msg, sizeof msg, "option --%s takes no value", o->name);
                return vrt_cli_usage(cmd, msg);
            }
            o->value = "1";
        }
    }
    *n_pos = np;
    if (n_rest)
        *n_rest = nr;
    return 0;
}

int vrt_cli_parse(const vrt_cmd *cmd, vrt_opt *opts, size_t n_opts, int argc, char **argv,
                  char **pos, int max_pos, int *n_pos)
{
    return parse(cmd, opts, n_opts, argc, argv, pos, max_pos, n_pos, NULL, 0, NULL, NULL);
}

int vrt_cli_config_words(const vrt_cmd *cmd, vrt_opt *opts, size_t n_opts, int argc, char **argv,
                         char **words, int *taken, int max_words, int *n_pos, int *n_words)
{
    enum { MAX_POS = 8 }; /* one is right; the loader names the others */
    if (max_words <= MAX_POS)
        return vrt_cli_usage(cmd, "too many arguments");
    int np = 0, nr = 0;
    int rc = parse(cmd, opts, n_opts, argc, argv, words, MAX_POS, &np, words + MAX_POS,
                   max_words - MAX_POS, &nr, taken + MAX_POS);
    if (rc)
        return rc;
    memmove(words + np, words + MAX_POS, sizeof *words * (size_t)nr);
    memmove(taken + np, taken + MAX_POS, sizeof *taken * (size_t)nr);
    memset(taken, 0, sizeof *taken * (size_t)np);
    *n_pos = np;
    *n_words = np + nr;
    return 0;
}

int vrt_cli_int(const vrt_cmd *cmd, const vrt_opt *o, long long lo, long long hi, int *out)
{
    if (!o->value)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(o->value, &end, 10);
    if (errno || end == o->value || *end || v < lo || v > hi) {
        char msg[256];
        snprintf(msg, sizeof msg, "--%s: expected an integer in %lld..%lld, got \"%s\"", o->name,
                 lo, hi, o->value);
        return vrt_cli_usage(cmd, msg);
    }
    *out = (int)v;
    return 0;
}

int vrt_cli_open_runtime(const char *path, const char *device, int quiet, vrt_runtime **rt,
                         vrt_err *err)
{
    *rt = NULL;
    const char *flags[2] = {"--device", device};
    vrt_config_source src = {.path = path, .argv = flags, .argc = device ? 2 : 0, .use_env = 1};
    vrt_config cfg;
    int rc = vrt_config_load_src(&cfg, &src, err);
    if (!rc) {
        vrt__config_apply_logging(&cfg, quiet);
        rc = vrt__runtime_open_cfg(rt, &cfg, err);
    }
    vrt_config_free(&cfg);
    return rc;
}
