/* main.c — `v100rt <command> [args]`: dispatch to the command table
 * (cli/commands.c). Unknown commands get a suggestion and exit code 2. */
#include "cli/cli.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
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
    return c->fn(argc - 1, argv + 1);
}
