/* cli.c — option parsing and usage messages for the commands. */
#include "cli/cli.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/runtime_int.h"
#include "vrt.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
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

size_t vrt_cli_n_opts(const vrt_cmd *cmd)
{
    size_t n = 0;
    while (cmd->opts && cmd->opts[n].name)
        n++;
    return n;
}

/* The names column of opts[i] and of the options listed on its line
 * (those before it with help NULL): "--top-k K, --top-p P". */
static void print_names(const vrt_opt *opts, size_t first, size_t last, int *width)
{
    int w = 0;
    for (size_t k = first; k <= last; k++) {
        const vrt_opt *o = &opts[k];
        int n = 0;
        printf("%s%n", k > first ? ", " : "", &n);
        w += n;
        if (o->short_name) {
            printf("-%c, %n", o->short_name, &n);
            w += n;
        }
        printf("--%s%s%s%n", o->name, o->arg ? " " : "", o->arg ? o->arg : "", &n);
        w += n;
    }
    *width = w;
}

void vrt_cli_print_help(const vrt_cmd *cmd)
{
    printf("usage: %s\n\n%s — %s\n\n%s", cmd->usage, cmd->name, cmd->summary, cmd->help);
    const int col = cmd->help_col > 4 ? cmd->help_col : 4;
    size_t first = 0;
    for (size_t i = 0, n = vrt_cli_n_opts(cmd); i < n; i++) {
        const vrt_opt *o = &cmd->opts[i];
        if (o->flags & VRT_OPT_HIDDEN) {
            first = i + 1;
            continue;
        }
        if (!o->help)
            continue; /* listed with the next one */
        int w;
        printf("  ");
        print_names(cmd->opts, first, i, &w);
        first = i + 1;
        if (2 + w + 1 > col)
            printf("\n%*s", col, "");
        else
            printf("%*s", col - 2 - w, "");
        for (const char *h = o->help; *h; h++) {
            putchar(*h);
            if (*h == '\n' && h[1])
                printf("%*s", col, "");
        }
        if (o->help[0] && o->help[strlen(o->help) - 1] != '\n')
            putchar('\n');
    }
    if (cmd->help_tail)
        fputs(cmd->help_tail, stdout);
    fflush(stdout);
}

int vrt_cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* The option a word names: "--name", "-name", "--name=value" (*eq set to
 * the "="), or "-x" for a short name. */
static int find_opt(const vrt_cmd *cmd, const char *a, const char **eq, size_t *name_len)
{
    const char *name = a + (a[1] == '-' ? 2 : 1);
    *eq = strchr(name, '=');
    size_t len = *eq ? (size_t)(*eq - name) : strlen(name);
    *name_len = len;
    int found = -1;
    for (size_t k = 0, n = vrt_cli_n_opts(cmd); k < n; k++) {
        const vrt_opt *o = &cmd->opts[k];
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            found = (int)k;
        else if (a[1] != '-' && o->short_name && len == 1 && name[0] == o->short_name)
            found = (int)k;
    }
    return found;
}

static int unknown_option(const vrt_cmd *cmd, const char *a, size_t len)
{
    const char *name = a + (a[1] == '-' ? 2 : 1);
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)len, name);
    const char *names[VRT_CLI_MAX_OPTS];
    size_t n = vrt_cli_n_opts(cmd) < VRT_CLI_MAX_OPTS ? vrt_cli_n_opts(cmd) : VRT_CLI_MAX_OPTS;
    for (size_t k = 0; k < n; k++)
        names[k] = cmd->opts[k].name;
    const char *s = vrt_suggest(word, names, n);
    char msg[320];
    if (s)
        snprintf(msg, sizeof msg, "unknown option \"%s\"; did you mean --%s?", a, s);
    else
        snprintf(msg, sizeof msg, "unknown option \"%s\"", a);
    return vrt_cli_usage(cmd, msg);
}

/* The words of argv: the command's options into raw[], positional words
 * into pos, and (rest != NULL) every other option with its value into
 * rest; rest == NULL refuses unknown options. */
static int parse_words(const vrt_cmd *cmd, const char **raw, int argc, char **argv, char **pos,
                       int max_pos, int *n_pos, char **rest, int max_rest, int *n_rest,
                       int *val_taken)
{
    int np = 0, nr = 0, only_pos = 0;
    for (size_t k = 0; k < VRT_CLI_MAX_OPTS; k++)
        raw[k] = NULL;
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
        const char *eq;
        size_t len;
        int k = find_opt(cmd, a, &eq, &len);
        if (k < 0 && vrt_cli_is_help(a)) {
            vrt_cli_print_help(cmd);
            return VRT_CLI_HELP_SHOWN;
        }
        if (k < 0 && rest) {
            if (cmd->suggest_own && a[1] == '-' && !eq && !strchr(a, '.')) {
                /* A misspelt own option is a usage error, not a flag. */
                const char *names[VRT_CLI_MAX_OPTS];
                size_t n =
                    vrt_cli_n_opts(cmd) < VRT_CLI_MAX_OPTS ? vrt_cli_n_opts(cmd) : VRT_CLI_MAX_OPTS;
                for (size_t j = 0; j < n; j++)
                    names[j] = cmd->opts[j].name;
                if (vrt_suggest(a + 2, names, n))
                    return unknown_option(cmd, a, len);
            }
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
        if (k < 0)
            return unknown_option(cmd, a, len);
        const vrt_opt *o = &cmd->opts[k];
        if (o->type != VRT_OPT_FLAG) {
            if (eq)
                raw[k] = eq + 1;
            else if (i + 1 < argc)
                raw[k] = argv[++i];
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
            raw[k] = "1";
        }
    }
    *n_pos = np;
    if (n_rest)
        *n_rest = nr;
    return 0;
}

/* A usage error for a bad value v of o: o->msg, or "--NAME: expected WANT,
 * got "v"" with o->want or the type's own wording. */
static int bad_value(const vrt_cmd *cmd, const vrt_opt *o, const char *v, const char *want)
{
    char msg[512];
    if (o->msg)
        snprintf(msg, sizeof msg, "%s", o->msg);
    else
        snprintf(msg, sizeof msg, "--%s: expected %s, got \"%s\"", o->name,
                 o->want ? o->want : want, v);
    return vrt_cli_usage(cmd, msg);
}

static int bad_choice(const vrt_cmd *cmd, const vrt_opt *o, const char *v)
{
    size_t n = 0;
    while (o->choices[n])
        n++;
    const char *s = vrt_suggest(v, o->choices, n);
    char list[256] = "", msg[512];
    for (size_t i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, o->choices[i], sizeof list - strlen(list) - 1);
    }
    if (s)
        snprintf(msg, sizeof msg, "--%s: unknown value \"%s\"; did you mean \"%s\"? (one of: %s)",
                 o->name, v, s, list);
    else
        snprintf(msg, sizeof msg, "--%s: unknown value \"%s\" (one of: %s)", o->name, v, list);
    return vrt_cli_usage(cmd, msg);
}

/* Converts raw value v of option o into dst + o->off. */
static int convert(const vrt_cmd *cmd, const vrt_opt *o, const char *v, void *dst)
{
    char *at = (char *)dst + o->off, *end;
    switch (o->type) {
    case VRT_OPT_FLAG: {
        int one = 1;
        memcpy(at, &one, sizeof one);
        return 0;
    }
    case VRT_OPT_STR: memcpy(at, &v, sizeof v); return 0;
    case VRT_OPT_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < (long long)o->lo || x > (long long)o->hi) {
            char want[96];
            snprintf(want, sizeof want, "an integer in %lld..%lld", (long long)o->lo,
                     (long long)o->hi);
            return bad_value(cmd, o, v, want);
        }
        int i = (int)x;
        memcpy(at, &i, sizeof i);
        return 0;
    }
    case VRT_OPT_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        int lo_ok = o->flags & VRT_OPT_LO_OPEN ? x > o->lo : x >= o->lo;
        int hi_ok = o->flags & VRT_OPT_HI_OPEN ? x < o->hi : x <= o->hi;
        if (end == v || *end || errno || !isfinite(x) || !lo_ok || !hi_ok) {
            if (o->msg || o->want)
                return bad_value(cmd, o, v, NULL);
            char msg[256];
            snprintf(msg, sizeof msg, "--%s \"%s\" must be a number in [%g, %g]", o->name, v, o->lo,
                     o->hi);
            return vrt_cli_usage(cmd, msg);
        }
        memcpy(at, &x, sizeof x);
        return 0;
    }
    case VRT_OPT_U64: {
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || *v == '-')
            return bad_value(cmd, o, v, "a non-negative integer");
        uint64_t u = x;
        memcpy(at, &u, sizeof u);
        return 0;
    }
    case VRT_OPT_CHOICE:
        for (int i = 0; o->choices[i]; i++)
            if (strcmp(o->choices[i], v) == 0) {
                memcpy(at, &i, sizeof i);
                return 0;
            }
        return bad_choice(cmd, o, v);
    }
    return vrt_cli_usage(cmd, "internal error: unknown option type");
}

static int convert_all(const vrt_cmd *cmd, const char **raw, void *dst, const char **raw_out)
{
    for (size_t k = 0, n = vrt_cli_n_opts(cmd); k < n; k++) {
        if (raw_out)
            raw_out[k] = raw[k];
        int rc = raw[k] ? convert(cmd, &cmd->opts[k], raw[k], dst) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

int vrt_cli_parse(const vrt_cmd *cmd, void *dst, const char **raw_out, int argc, char **argv,
                  char **pos, int *n_pos)
{
    const char *raw[VRT_CLI_MAX_OPTS];
    if (vrt_cli_n_opts(cmd) > VRT_CLI_MAX_OPTS)
        return vrt_cli_usage(cmd, "internal error: too many options in the table");
    int rc = parse_words(cmd, raw, argc, argv, pos, cmd->max_pos, n_pos, NULL, 0, NULL, NULL);
    if (rc)
        return rc;
    if (*n_pos < cmd->min_pos)
        return vrt_cli_usage(cmd, cmd->missing ? cmd->missing[*n_pos] : "missing arguments");
    return convert_all(cmd, raw, dst, raw_out);
}

int vrt_cli_config_words(const vrt_cmd *cmd, void *dst, const char **raw_out, int argc, char **argv,
                         char **words, int *taken, int max_words, int *n_pos, int *n_words)
{
    enum { MAX_POS = 8 }; /* one is right; the loader names the others */
    const char *raw[VRT_CLI_MAX_OPTS];
    if (vrt_cli_n_opts(cmd) > VRT_CLI_MAX_OPTS)
        return vrt_cli_usage(cmd, "internal error: too many options in the table");
    if (max_words <= MAX_POS)
        return vrt_cli_usage(cmd, "too many arguments");
    int np = 0, nr = 0;
    int rc = parse_words(cmd, raw, argc, argv, words, MAX_POS, &np, words + MAX_POS,
                         max_words - MAX_POS, &nr, taken + MAX_POS);
    if (rc)
        return rc;
    memmove(words + np, words + MAX_POS, sizeof *words * (size_t)nr);
    memmove(taken + np, taken + MAX_POS, sizeof *taken * (size_t)nr);
    memset(taken, 0, sizeof *taken * (size_t)np);
    *n_pos = np;
    *n_words = np + nr;
    if (*n_words < cmd->min_pos)
        return vrt_cli_usage(cmd, cmd->missing ? cmd->missing[0] : "missing arguments");
    return convert_all(cmd, raw, dst, raw_out);
}

const char *vrt_cli_raw(const vrt_cmd *cmd, const char *const *raw, const char *name)
{
    for (size_t k = 0, n = vrt_cli_n_opts(cmd); k < n; k++)
        if (strcmp(cmd->opts[k].name, name) == 0)
            return raw[k];
    return NULL;
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
