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

typedef struct vrt_cmd {
    const char *name;
    const char *summary; /* one line, for `v100rt help` */
    const char *usage;   /* "v100rt check [--json] CONFIG" */
    const char *help;    /* paragraphs for `v100rt help <command>` */
    int (*fn)(int argc, char **argv); /* argv[0] is the command name */
} vrt_cmd;

extern const vrt_cmd vrt_commands[];
extern const size_t vrt_n_commands;
const vrt_cmd *vrt_cmd_find(const char *name);

/* Options: a spec lists the long options a command takes. */
typedef struct vrt_opt {
    const char *name; /* without the leading "--" */
    int has_arg;
    const char *value; /* out: the argument, or "1" for a flag; NULL if absent */
} vrt_opt;

/* Parses argv[1..] into opts (in place) and positional arguments (collected
 * in pos, at most max_pos). "--name=value" and "--name value" are accepted;
 * "--" ends options. "--help" or "-h" where an option may stand prints the
 * command's help to stdout and returns VRT_CLI_HELP_SHOWN. On a bad option
 * prints a message with a suggestion and returns VRT_EXIT_USAGE; else 0 and
 * sets *n_pos. */
int vrt_cli_parse(const vrt_cmd *cmd, vrt_opt *opts, size_t n_opts, int argc, char **argv,
                  char **pos, int max_pos, int *n_pos);
/* For commands that load a config as `serve` does: parses the command's
 * own opts like vrt_cli_parse, and gathers every other word for the config
 * loader (vrt_config_source.argv) into words[0..*n_words): the positional
 * words first (*n_pos of them), then the other options in their order,
 * each with its value (the next word when the option has no "=value" and
 * that word does not start with "--"). taken[k] is 1 when words[k] is such
 * a value taken from the next word. */
int vrt_cli_config_words(const vrt_cmd *cmd, vrt_opt *opts, size_t n_opts, int argc, char **argv,
                         char **words, int *taken, int max_words, int *n_pos, int *n_words);
/* Prints "usage: ..." and a hint to stderr; returns VRT_EXIT_USAGE. */
int vrt_cli_usage(const vrt_cmd *cmd, const char *problem);
/* Prints cmd's usage and help text to stdout (`v100rt help CMD`). */
void vrt_cli_print_help(const vrt_cmd *cmd);
/* True for "--help" and "-h". */
int vrt_cli_is_help(const char *arg);

/* The integer value of option o, when given, into *out (left as is when
 * absent); a value that is not an integer in lo..hi prints a usage error
 * naming the option and returns VRT_EXIT_USAGE. */
int vrt_cli_int(const vrt_cmd *cmd, const vrt_opt *o, long long lo, long long hi, int *out);

/* Loads the config of path (a *.lua file or a model directory with the
 * defaults) as `serve` would (vrt_config_load_src: TGI's environment
 * variables below the file), with "--device KIND" as its one flag when
 * device is not NULL, applies its logging settings (not logging.level when
 * quiet: the command's --quiet wins) and opens its runtime. */
int vrt_cli_open_runtime(const char *path, const char *device, int quiet, vrt_runtime **rt,
                         vrt_err *err);

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
