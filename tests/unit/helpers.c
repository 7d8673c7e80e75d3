/* helpers.c — fixtures several C unit test files share (declared in
 * test.h): a tiny random model written once per process, and removing the
 * directories tests make.
 */
#include "test.h"

#include "core/err.h"
#include "model/mkmodel.h"
#include "model/safetensors.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

const char *vrt_test_tiny_model(char *dir, size_t cap, const char *tag, uint64_t seed)
{
    if (dir[0])
        return dir;
    snprintf(dir, cap, "/tmp/vrt-test-%s-%d", tag, (int)getpid());
    vrt_mkmodel_opts o;
    vrt_err err = {0};
    if (vrt_mkmodel_preset(&o, "tiny", 1, &err) != 0) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        dir[0] = '\0';
        return NULL;
    }
    o.seed = seed;
    o.force = true;
    o.dtype = VRT_ST_F32;
    if (vrt_mkmodel_write(&o, dir, &err) != 0) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        dir[0] = '\0';
        return NULL;
    }
    return dir;
}

void vrt_test_tiny_model_rm(char *dir)
{
    if (!dir[0])
        return;
    char lua[600];
    snprintf(lua, sizeof lua, "%s.lua", dir);
    vrt_test_rm_tree(dir);
    unlink(lua);
    dir[0] = '\0';
}

void vrt_test_rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            vrt_test_rm_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}
