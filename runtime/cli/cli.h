/* cli.h — the command table and option parsing shared by all commands.
 *
 * Every command is one entry of vrt_commands[] (cli/commands.c) with a
 * one-line summary, a usage line and a help text. Commands return an exit
 * code: 0 success, 1 failure, 2 bad usage (VRT_EXIT_USAGE).
 */
#ifndef VRT_CLI_H
#define VRT_CLI_H

#include "vrt.h"

#include <stddef.h>

#define VRT_EXIT_OK 0
#define VRT_EXIT_FAIL 1
#define VRT_EXIT_USAGE 2
/* Returned by vrt_cli_parse (and so by a command) when --help/-h printed
 * the command's help: main() exits 0. Not a process exit code. */
#define VRT_CLI_HELP_SHOWN (-1000)

/* One option of a command: its spelling, what it takes, where its value
 * goes and its line in the help. The parser (vrt_cli_parse) reads the
 * words, checks each value against the type and bounds and stores it at
 * offset off of the command's options struct; the help (vrt_cli_print_help)
 * is printed from the same table. */
typedef enum vrt_opt_type {
    VRT_OPT_FLAG,   /* no value: int 1 at off */
    VRT_OPT_STR,    /* const char * at off */
    VRT_OPT_INT,    /* int at off, an integer in [lo, hi] */
    VRT_OPT_DOUBLE, /* double at off, a finite number in [lo, hi] (see the flags) */
    VRT_OPT_U64,    /* uint64_t at off, a non-negative integer */
    VRT_OPT_CHOICE, /* int at off: the index of the value in choices */
} vrt_opt_type;

enum {
    VRT_OPT_HIDDEN = 1,  /* not listed in the help (the help text names it) */
    VRT_OPT_LO_OPEN = 2, /* DOUBLE: lo itself is out of bounds */
    VRT_OPT_HI_OPEN = 4, /* DOUBLE: hi itself is out of bounds */
};

typedef struct vrt_opt {
    const char *name; /* long name, without the leading "--" (one "-" also works) */
    char short_name;  /* "-x", or 0 */
    vrt_opt_type type;
    size_t off;                 /* offset of the destination in the options struct */
    double lo, hi;              /* INT and DOUBLE bounds */
    const char *const *choices; /* CHOICE: the words, NULL-terminated */
    unsigned flags;             /* VRT_OPT_HIDDEN, VRT_OPT_LO_OPEN, VRT_OPT_HI_OPEN */
    const char *arg;            /* the value's name in the help ("N", "KIND"); NULL for a flag */
    /* The help text (lines after the first are indented to the command's
     * help column). NULL: the option is listed on the line of the next
     * one ("--top-k K, --top-p P"). */
    const char *help;
    /* A bad value: want replaces "an integer in LO..HI" (and the like) in
     * "--NAME: expected WANT, got \"VALUE\""; msg, when set, is the whole
     * message instead. */
    const char *want, *msg;
} vrt_opt;

typedef struct vrt_cmd {
    const char *name;
    const char *summary; /* one line, for `v100rt help` */
    const char *usage;   /* "v100rt check [--json] CONFIG" */
    const char *help;    /* paragraphs for `v100rt help <command>`, before the options */
    int (*fn)(int argc, char **argv); /* argv[0] is the command name */
    const vrt_opt *opts;              /* the command's own options, ended by {NULL}; or NULL */
    int help_col;                     /* column of the options' help texts */
    const char *help_tail;            /* paragraphs after the options, or NULL */
    /* Positional arguments: at most max_pos; fewer than min_pos is a usage
     * error with the message missing[n] (n = how many were given). */
    int min_pos, max_pos;
    const char *const *missing;
    /* vrt_cli_config_words: an unknown "--word" (without "=" or ".") close
     * to one of the command's own options is a usage error with a
     * suggestion, not a flag for the loader. */
    int suggest_own;
} vrt_cmd;

#define VRT_CLI_MAX_OPTS 32
/* The number of options in cmd->opts. */
size_t vrt_cli_n_opts(const vrt_cmd *cmd);

extern const vrt_cmd vrt_commands[];
extern const size_t vrt_n_commands;
const vrt_cmd *vrt_cmd_find(const char *name);

/* Parses argv[1..] with cmd's option table: "--name value", "--name=value",
 * "-name value" and "-x value" (short_name) are accepted; "--" ends options;
 * "--help" or "-h" where an option may stand prints the command's help to
 * stdout and returns VRT_CLI_HELP_SHOWN. Positional arguments go to
 * pos[0..*n_pos) (pos holds cmd->max_pos). Then checks their count
 * (cmd->min_pos, cmd->missing) and converts every given option, in table
 * order, into dst (the command's options struct; absent options leave their
 * field as it was). raw, when not NULL, gets for each option of the table
 * its text as given ("1" for a flag), or NULL when absent. On a bad word or
 * value prints a usage message (with a suggestion for a misspelt option)
 * and returns VRT_EXIT_USAGE; else 0. */
int vrt_cli_parse(const vrt_cmd *cmd, void *dst, const char **raw, int argc, char **argv,
                  char **pos, int *n_pos);
/* For commands that load a config as `serve` does: parses the command's
 * own options like vrt_cli_parse, and gathers every other word for the
 * config loader (vrt_config_source.argv) into words[0..*n_words): the
 * positional words first (*n_pos of them), then the other options in their
 * order, each with its value (the next word when the option has no "=value"
 * and that word does not start with "--"). taken[k] is 1 when words[k] is
 * such a value taken from the next word. Fewer than cmd->min_pos words in
 * all is the usage error cmd->missing[0]. */
int vrt_cli_config_words(const vrt_cmd *cmd, void *dst, const char **raw, int argc, char **argv,
                         char **words, int *taken, int max_words, int *n_pos, int *n_words);
/* The text option name was given with (raw as filled by vrt_cli_parse), or
 * NULL when it was absent. */
const char *vrt_cli_raw(const vrt_cmd *cmd, const char *const *raw, const char *name);
/* Prints "usage: ..." and a hint to stderr; returns VRT_EXIT_USAGE. */
int vrt_cli_usage(const vrt_cmd *cmd, const char *problem);
/* Prints cmd's usage, its help text and its options (from the table) to
 * stdout (`v100rt help CMD`). */
void vrt_cli_print_help(const vrt_cmd *cmd);
/* True for "--help" and "-h". */
int vrt_cli_is_help(const char *arg);

/* Loads the config of path (a *.lua file or a model directory with the
 * defaults) as `serve` would (vrt_config_load_src: TGI's environment
 * variables below the file), with "--device KIND" as its one flag when
 * device is not NULL, applies its logging settings (not logging.level when
 * quiet: the command's --quiet wins) and opens its runtime. */
int vrt_cli_open_runtime(const char *path, const char *device, int quiet, vrt_runtime **rt,
                         vrt_err *err);

/* The option tables of the commands (cli/cmd_*.c). */
extern const vrt_opt vrt_cli_check_opts[], vrt_cli_mkmodel_opts[], vrt_cli_generate_opts[],
    vrt_cli_serve_opts[], vrt_cli_plan_opts[], vrt_cli_bench_opts[], vrt_cli_perplexity_opts[],
    vrt_cli_quantize_opts[];

int vrt_cmd_help(int argc, char **argv);
int vrt_cmd_version(int argc, char **argv);
int vrt_cmd_check(int argc, char **argv);
int vrt_cmd_mkmodel(int argc, char **argv);
int vrt_cmd_run(int argc, char **argv);
int vrt_cmd_generate(int argc, char **argv);
int vrt_cmd_serve(int argc, char **argv);
int vrt_cmd_plan(int argc, char **argv);
int vrt_cmd_bench(int argc, char **argv);
int vrt_cmd_perplexity(int argc, char **argv);
int vrt_cmd_quantize(int argc, char **argv);

#endif
