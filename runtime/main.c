/* main.c — `v100rt <command> [args]`: dispatch to the command table
 * (cli/commands.c). Unknown commands get a suggestion and exit code 2.
 * `v100rt COMMAND --help` (or -h) prints the command's help and exits 0:
 * here when it is the first argument (so also for run, help and version,
 * which parse no options), else where vrt_cli_parse meets it. Arguments
 * after `run`'s script belong to the script, --help included. */
#include "cli/cli.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenMP threads that wait by spinning (libgomp's default) slow the CPU
 * kernels down several times as soon as anything else wants the cores —
 * another process, a container CPU limit, the engine's own Lua hooks: on a
 * loaded 2-core machine decode ran at 70 tokens/s spinning and 210-260
 * passive. libgomp reads OMP_WAIT_POLICY when it loads, before main, so
 * when the operator has not chosen one, the process re-executes itself once
 * with OMP_WAIT_POLICY=passive. If that fails it just goes on. */
static void passive_openmp(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("V100RT_NO_REEXEC"))
        return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("V100RT_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    passive_openmp(argv);
    if (argc < 2) {
        const char *help[] = {"help"};
        vrt_cmd_help(1, (char **)help);
        return VRT_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    const vrt_cmd *c = vrt_cmd_find(name);
    if (!c) {
        const char *names[64];
        size_t n = 0;
        for (size_t i = 0; i < vrt_n_commands && n < 64; i++)
            names[n++] = vrt_commands[i].name;
        const char *s = vrt_suggest(name, names, n);
        fprintf(stderr, "v100rt: unknown command \"%s\"", name);
        if (s)
            fprintf(stderr, "; did you mean \"%s\"?", s);
        fprintf(stderr, "\n(`v100rt help` lists the commands)\n");
        return VRT_EXIT_USAGE;
    }
    if (argc > 2 && vrt_cli_is_help(argv[2])) {
        vrt_cli_print_help(c);
        return VRT_EXIT_OK;
    }
    int rc = c->fn(argc - 1, argv + 1);
    return rc == VRT_CLI_HELP_SHOWN ? VRT_EXIT_OK : rc;
}
