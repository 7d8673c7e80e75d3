/* test_cli.c — the commands' one option parser (cli/cli.c): words, values,
 * bounds, messages, positional counts, the loader's words, and the help
 * printed from the same tables. */
#include "cli/cli.h"
#include "test.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct t_opts {
    int flag, n, pick;
    double x, frac;
    uint64_t seed;
    const char *name;
} t_opts;

static const char *const picks[] = {"red", "green", "blue", NULL};

static const vrt_opt t_table[] = {
    {.name = "flag",
     .short_name = 'f',
     .type = VRT_OPT_FLAG,
     .off = offsetof(t_opts, flag),
     .help = "a flag"},
    {.name = "n",
     .type = VRT_OPT_INT,
     .off = offsetof(t_opts, n),
     .lo = 1,
     .hi = 10,
     .arg = "N",
     .help = "a count"},
    {.name = "x",
     .type = VRT_OPT_DOUBLE,
     .off = offsetof(t_opts, x),
     .lo = -2,
     .hi = 2,
     .arg = "X",
     .help = NULL},
    {.name = "frac",
     .type = VRT_OPT_DOUBLE,
     .off = offsetof(t_opts, frac),
     .lo = 0,
     .hi = 1,
     .flags = VRT_OPT_LO_OPEN | VRT_OPT_HI_OPEN,
     .arg = "F",
     .help = "two numbers\non two lines",
     .msg = "--frac: a fraction in (0, 1), please"},
    {.name = "seed",
     .type = VRT_OPT_U64,
     .off = offsetof(t_opts, seed),
     .arg = "S",
     .help = "a seed",
     .want = "a seed number"},
    {.name = "pick",
     .type = VRT_OPT_CHOICE,
     .off = offsetof(t_opts, pick),
     .choices = picks,
     .arg = "COLOR",
     .help = "a color"},
    {.name = "secret", .type = VRT_OPT_STR, .off = offsetof(t_opts, name), .flags = VRT_OPT_HIDDEN},
    {NULL},
};

static const vrt_cmd t_cmd = {
    .name = "tst",
    .summary = "a test command",
    .usage = "v100rt tst [OPTIONS] A B",
    .help = "Intro text.\n\n",
    .opts = t_table,
    .help_col = 14,
    .help_tail = "Tail text.\n",
    .min_pos = 2,
    .max_pos = 2,
    .missing = (const char *const[]){"needs A and B", "needs B"},
};

/* Runs f with stdout and stderr captured into out and err (NUL-terminated). */
typedef struct capture {
    char out[4096], err[4096];
} capture;

static void read_back(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Redirects fd (1 or 2) into a temporary file until end_capture. */
typedef struct redirect {
    FILE *f;
    int fd, saved;
} redirect;

static redirect begin_capture(int fd)
{
    fflush(stdout);
    fflush(stderr);
    redirect r = {tmpfile(), fd, dup(fd)};
    dup2(fileno(r.f), fd);
    return r;
}

static void end_capture(redirect *r, char *buf, size_t cap)
{
    fflush(stdout);
    fflush(stderr);
    dup2(r->saved, r->fd);
    close(r->saved);
    read_back(r->f, buf, cap);
}

/* vrt_cli_parse on a NULL-terminated word list (argv[0] = "tst"). */
static int parse(capture *c, const vrt_cmd *cmd, t_opts *o, const char **raw, char **pos, int *npos,
                 const char *const *words)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"tst";
    for (int i = 0; words[i]; i++)
        argv[argc++] = (char *)words[i];
    redirect ro = begin_capture(1), re = begin_capture(2);
    int rc = vrt_cli_parse(cmd, o, raw, argc, argv, pos, npos);
    end_capture(&re, c->err, sizeof c->err);
    end_capture(&ro, c->out, sizeof c->out);
    return rc;
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

TEST(cli_parses_every_type_into_the_struct)
{
    capture c;
    t_opts o = {.n = 7, .x = 0.5};
    const char *raw[VRT_CLI_MAX_OPTS];
    char *pos[2];
    int np = 0;
    int rc = parse(&c, &t_cmd, &o, raw, pos, &np,
                   WORDS("a", "--flag", "--n=3", "-x", "-1.5", "--frac", "0.25", "--seed",
                         "18446744073709551615", "--pick", "blue", "--secret", "s3", "b"));
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(np, 2);
    ASSERT_EQ_STR(pos[0], "a");
    ASSERT_EQ_STR(pos[1], "b");
    ASSERT_EQ_INT(o.flag, 1);
    ASSERT_EQ_INT(o.n, 3);
    ASSERT(o.x == -1.5 && o.frac == 0.25);
    ASSERT(o.seed == UINT64_MAX);
    ASSERT_EQ_INT(o.pick, 2);
    ASSERT_EQ_STR(o.name, "s3");
    ASSERT_EQ_STR(raw[1], "3");
    ASSERT_EQ_STR(raw[0], "1");
    ASSERT_EQ_STR(vrt_cli_raw(&t_cmd, raw, "seed"), "18446744073709551615");
    ASSERT_EQ_STR(c.err, "");
    /* Absent options keep their fields; "-f" is flag's short name; after
     * "--" a word that looks like an option is positional. */
    t_opts d = {.n = 7, .x = 0.5};
    rc = parse(&c, &t_cmd, &d, raw, pos, &np, WORDS("-f", "a", "--", "--n"));
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(d.flag, 1);
    ASSERT_EQ_INT(d.n, 7);
    ASSERT(d.x == 0.5);
    ASSERT_EQ_STR(pos[1], "--n");
    ASSERT(raw[1] == NULL && vrt_cli_raw(&t_cmd, raw, "seed") == NULL);
}

TEST(cli_unknown_option_suggests_and_exits_2)
{
    capture c;
    t_opts o = {0};
    char *pos[2];
    int np;
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--falg", "a", "b")), VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "v100rt tst: unknown option \"--falg\"; did you mean --flag?");
    ASSERT_CONTAINS(c.err, "usage: v100rt tst [OPTIONS] A B");
    ASSERT_CONTAINS(c.err, "(see `v100rt help tst`)");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--zzzzzzzz", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "unknown option \"--zzzzzzzz\"\n");
}

TEST(cli_missing_value_and_flag_with_value)
{
    capture c;
    t_opts o = {0};
    char *pos[2];
    int np;
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("a", "b", "--n")), VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "option --n needs a value");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--flag=1", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "option --flag takes no value");
}

TEST(cli_bad_int_and_bounds)
{
    capture c;
    t_opts o = {0};
    char *pos[2];
    int np;
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--n", "x", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "--n: expected an integer in 1..10, got \"x\"");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--n", "11", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "got \"11\"");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--n", "3x", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--n", "10", "a", "b")), 0);
    ASSERT_EQ_INT(o.n, 10);
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--n", "1", "a", "b")), 0);
    ASSERT_EQ_INT(o.n, 1);
    /* Doubles: closed bounds take the bound, open ones do not; msg and
     * want replace the wording. */
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("-x", "2", "a", "b")), 0);
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("-x", "2.01", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "--x \"2.01\" must be a number in [-2, 2]");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("-x", "nan", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--frac", "1", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "v100rt tst: --frac: a fraction in (0, 1), please\n");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--frac", "0", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--frac", "0.99", "a", "b")), 0);
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--seed", "-1", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "--seed: expected a seed number, got \"-1\"");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--pick", "gren", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "--pick: unknown value \"gren\"; did you mean \"green\"? (one of: red, "
                           "green, blue)");
    /* The first bad value in table order is the one reported. */
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--pick", "x", "--n", "0", "a", "b")),
                  VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "--n: expected");
}

TEST(cli_positional_counts)
{
    capture c;
    t_opts o = {.n = 5};
    char *pos[2];
    int np;
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--n", "3")), VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "v100rt tst: needs A and B\n");
    ASSERT_EQ_INT(o.n, 5); /* nothing converted before the count is right */
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("a")), VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "needs B");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("a", "b", "c")), VRT_EXIT_USAGE);
    ASSERT_CONTAINS(c.err, "unexpected argument \"c\"");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("a", "-", "--flag")), 0);
    ASSERT_EQ_STR(pos[1], "-"); /* "-" (stdin) is a word, not an option */
}

TEST(cli_help_is_printed_from_the_table)
{
    capture c;
    t_opts o = {0};
    char *pos[2];
    int np;
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("a", "--n", "2", "-h")),
                  VRT_CLI_HELP_SHOWN);
    ASSERT_EQ_STR(c.err, "");
    ASSERT_EQ_STR(c.out, "usage: v100rt tst [OPTIONS] A B\n"
                         "\n"
                         "tst — a test command\n"
                         "\n"
                         "Intro text.\n"
                         "\n"
                         "  -f, --flag  a flag\n"
                         "  --n N       a count\n"
                         "  --x X, --frac F\n"
                         "              two numbers\n"
                         "              on two lines\n"
                         "  --seed S    a seed\n"
                         "  --pick COLOR\n"
                         "              a color\n"
                         "Tail text.\n");
    ASSERT_EQ_INT(parse(&c, &t_cmd, &o, NULL, pos, &np, WORDS("--help")), VRT_CLI_HELP_SHOWN);
    ASSERT_CONTAINS(c.out, "--pick COLOR");
}

TEST(cli_config_words_keep_the_loaders_flags)
{
    const vrt_cmd own = {
        .name = "own",
        .summary = "s",
        .usage = "v100rt own",
        .help = "",
        .opts = t_table,
        .min_pos = 1,
        .missing = (const char *const[]){"needs a config"},
        .suggest_own = 1,
    };
    char *argv[] = {"own",
                    "--max-total-tokens",
                    "4096",
                    "--flag",
                    "--enforce-eager",
                    "cfg.lua",
                    "--n=4",
                    "--a.b",
                    "--",
                    "x"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    char *words[32];
    int taken[32], np = 0, nw = 0;
    t_opts o = {0};
    const char *raw[VRT_CLI_MAX_OPTS];
    int rc = vrt_cli_config_words(&own, &o, raw, argc, argv, words, taken, 32, &np, &nw);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(o.flag, 1);
    ASSERT_EQ_INT(o.n, 4);
    ASSERT_EQ_INT(np, 1); /* "x" after "--"; cfg.lua was taken as --enforce-eager's value */
    ASSERT_EQ_INT(nw, 6);
    const char *want[] = {"x", "--max-total-tokens", "4096", "--enforce-eager", "cfg.lua", "--a.b"};
    const int want_taken[] = {0, 0, 1, 0, 1, 0};
    for (int i = 0; i < 6; i++) {
        ASSERT_EQ_STR(words[i], want[i]);
        ASSERT_EQ_INT(taken[i], want_taken[i]);
    }
    /* A misspelt own option is a usage error; no words is the missing
     * message. */
    char *bad[] = {"own", "--flg", "cfg.lua"}, *none[] = {"own", "--flag"}, msg[4096];
    redirect r = begin_capture(2);
    rc = vrt_cli_config_words(&own, &o, NULL, 3, bad, words, taken, 32, &np, &nw);
    end_capture(&r, msg, sizeof msg);
    ASSERT_EQ_INT(rc, VRT_EXIT_USAGE);
    ASSERT_CONTAINS(msg, "unknown option \"--flg\"; did you mean --flag?");
    r = begin_capture(2);
    rc = vrt_cli_config_words(&own, &o, NULL, 2, none, words, taken, 32, &np, &nw);
    end_capture(&r, msg, sizeof msg);
    ASSERT_EQ_INT(rc, VRT_EXIT_USAGE);
    ASSERT_CONTAINS(msg, "v100rt own: needs a config\n");
}

/* Every command's table: unique names, sane bounds, choices where needed,
 * and every listed option in its help. */
TEST(cli_command_tables_are_consistent)
{
    int with_opts = 0;
    for (size_t i = 0; i < vrt_n_commands; i++) {
        const vrt_cmd *cmd = &vrt_commands[i];
        size_t n = vrt_cli_n_opts(cmd);
        ASSERT(n <= VRT_CLI_MAX_OPTS);
        ASSERT(cmd->min_pos <= cmd->max_pos || cmd->fn == vrt_cmd_run || cmd->fn == vrt_cmd_help ||
               cmd->fn == vrt_cmd_version);
        ASSERT(cmd->min_pos == 0 || cmd->missing);
        with_opts += n > 0;
        for (size_t k = 0; k < n; k++) {
            const vrt_opt *o = &cmd->opts[k];
            for (size_t j = 0; j < k; j++)
                ASSERT(strcmp(o->name, cmd->opts[j].name) != 0);
            if (o->type == VRT_OPT_INT || o->type == VRT_OPT_DOUBLE)
                ASSERT(o->lo <= o->hi);
            if (o->type == VRT_OPT_CHOICE)
                ASSERT(o->choices && o->choices[0]);
            ASSERT((o->type == VRT_OPT_FLAG) == (o->arg == NULL) || (o->flags & VRT_OPT_HIDDEN));
        }
        /* The help names each option. */
        static char help[16384];
        redirect r = begin_capture(1);
        vrt_cli_print_help(cmd);
        end_capture(&r, help, sizeof help);
        for (size_t k = 0; k < n; k++) {
            char want[96];
            snprintf(want, sizeof want, "--%s", cmd->opts[k].name);
            ASSERT_CONTAINS(help, want); /* hidden ones: in the text above the list */
        }
    }
    ASSERT_EQ_INT(with_opts, 8);
}
