/* helpers.c — fixtures several C unit test files share (declared in
 * test.h): a tiny random model written once per process, and removing the
 * directories tests make.
 */
#include "test.h"

#include "core/err.h"
#include "engine/policy.h"
#include "model/mkmodel.h"
#include "model/safetensors.h"
#include "vrt.h"

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

int vrt_test_load_policy(vrt_policy **p, const char *policy, double budget_s, double deadline_s,
                         vrt_err *err)
{
    char path[64];
    strcpy(path, "/tmp/vrt_pol_XXXXXX.lua");
    int fd = mkstemps(path, 4);
    if (fd < 0)
        return vrt_err_set(err, VRT_EIO, "cannot make a temporary config file");
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        remove(path);
        return vrt_err_set(err, VRT_EIO, "cannot write a temporary config file");
    }
    fprintf(f,
            "local v = require 'v100rt'\n"
            "return v.config{ model = { path = 'models/tiny' },\n"
            "  batching = { policy = %s } }\n",
            policy);
    fclose(f);
    vrt_config cfg;
    int rc = vrt_config_load(&cfg, path, err);
    if (!rc)
        rc = vrt_policy_load(p, &cfg, budget_s, deadline_s, err);
    vrt_config_free(&cfg);
    remove(path);
    return rc;
}
