/* registry.c — the backends by name, the names of dtypes, and the cuda plugin.
 *
 * vrt_backend_create("cpu", ...) is the one way the runtime gets a backend.
 * "cuda-emu" runs the CUDA kernels on the CPU (kernels/emu). "cuda" lives
 * in libv100rt-cuda.so (built when nvcc exists), loaded here with dlopen on
 * first use, so that ./v100rt runs on machines without CUDA libraries; it
 * is looked for in $V100RT_CUDA_LIB, beside the executable, and in
 * ../lib/v100rt/ from it (make install). The boundary is one-way and
 * versioned: the plugin carries its own copy of the shared GPU ops and calls
 * nothing in the binary; the binary calls its two entry points only after
 * checking that it exports the same VRT_BACKEND_ABI_VERSION.
 */
#include "backend/backend.h"
#include "core/err.h"
#include "cpu/cpu.h"
#include "emu/backend_emu.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CUDA_LIB "libv100rt-cuda.so"

const char *vrt_dtype_name(int dtype)
{
    switch (dtype) {
    case VRT_DT_F32: return "f32";
    case VRT_DT_F16: return "f16";
    case VRT_DT_Q4: return "q4";
    }
    return "unknown";
}

typedef int (*cuda_create_fn)(vrt_backend **, int, int, int, vrt_err *);
typedef int (*cuda_count_fn)(void);

static struct {
    pthread_once_t once;
    void *handle;
    char path[PATH_MAX];            /* the file found (or the last one tried) */
    char error[4 * PATH_MAX + 512]; /* why it could not be loaded */
    int found;                      /* a file exists */
    cuda_create_fn create;
    cuda_count_fn count;
} cuda_lib = {.once = PTHREAD_ONCE_INIT};

int vrt__cuda_plugin_open(const char *path, void **handle, void **create, void **count,
                          vrt_err *err)
{
    *handle = *create = *count = NULL;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return vrt_err_set(err, VRT_EDEVICE,
                           "cannot load %s: %s (are the CUDA runtime and cuBLAS libraries "
                           "installed and on LD_LIBRARY_PATH?)",
                           path, dlerror());
    /* The version first: through a table of another layout, nothing else
     * the plugin exports can be called safely. */
    const int *abi = dlsym(h, "vrt_cuda_backend_abi");
    if (!abi || *abi != VRT_BACKEND_ABI_VERSION) {
        char have[48];
        if (abi)
            snprintf(have, sizeof have, "version %d", *abi);
        else
            snprintf(have, sizeof have, "no version (built before versioning)");
        dlclose(h);
        return vrt_err_set(err, VRT_EDEVICE,
                           "%s has backend ABI %s, this v100rt needs version %d: the plugin was "
                           "built from another source tree; rebuild it with `make` next to this "
                           "v100rt (or point V100RT_CUDA_LIB at the plugin of the same build)",
                           path, have, VRT_BACKEND_ABI_VERSION);
    }
    void *c = dlsym(h, "vrt_cuda_backend_create_dev"), *n = dlsym(h, "vrt_cuda_device_count");
    if (!c || !n) {
        dlclose(h);
        return vrt_err_set(err, VRT_EDEVICE,
                           "%s is not a v100rt cuda backend of this version (no "
                           "vrt_cuda_backend_create_dev or vrt_cuda_device_count); rebuild it "
                           "with `make`",
                           path);
    }
    *handle = h;
    *create = c;
    *count = n;
    return 0;
}

/* The candidates, in order; returns how many were written. */
static int cuda_lib_candidates(char out[][PATH_MAX], int max)
{
    int n = 0;
    const char *env = getenv("V100RT_CUDA_LIB");
    if (env && *env && n < max && snprintf(out[n], PATH_MAX, "%s", env) < PATH_MAX)
        n++;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            if (n < max && snprintf(out[n], PATH_MAX, "%s/%s", exe, CUDA_LIB) < PATH_MAX)
                n++;
            if (n < max &&
                snprintf(out[n], PATH_MAX, "%s/../lib/v100rt/%s", exe, CUDA_LIB) < PATH_MAX)
                n++;
        }
    }
    return n;
}

static void cuda_lib_load(void)
{
    char cand[3][PATH_MAX];
    int n = cuda_lib_candidates(cand, 3);
    snprintf(cuda_lib.error, sizeof cuda_lib.error, "%s not found (looked in:", CUDA_LIB);
    for (int i = 0; i < n; i++) {
        size_t used = strlen(cuda_lib.error);
        snprintf(cuda_lib.error + used, sizeof cuda_lib.error - used, " %s", cand[i]);
    }
    size_t used = strlen(cuda_lib.error);
    snprintf(cuda_lib.error + used, sizeof cuda_lib.error - used,
             "); it is built by `make` when nvcc is installed (README, GPU build)");
    for (int i = 0; i < n; i++) {
        if (access(cand[i], F_OK) != 0)
            continue;
        cuda_lib.found = 1;
        memcpy(cuda_lib.path, cand[i], sizeof cuda_lib.path);
        void *h = NULL, *create = NULL, *count = NULL;
        vrt_err e = {0};
        if (vrt__cuda_plugin_open(cand[i], &h, &create, &count, &e)) {
            snprintf(cuda_lib.error, sizeof cuda_lib.error, "%s", e.msg);
            return;
        }
        cuda_lib.create = (cuda_create_fn)(uintptr_t)create;
        cuda_lib.count = (cuda_count_fn)(uintptr_t)count;
        cuda_lib.handle = h;
        cuda_lib.error[0] = 0;
        return;
    }
}

/* Whether libv100rt-cuda.so exists (not whether it loads). */
static int cuda_lib_present(void)
{
    char cand[3][PATH_MAX];
    int n = cuda_lib_candidates(cand, 3);
    for (int i = 0; i < n; i++)
        if (access(cand[i], F_OK) == 0)
            return 1;
    return 0;
}

int vrt_cuda_gpu_count(char *why, size_t why_len)
{
    pthread_once(&cuda_lib.once, cuda_lib_load);
    if (!cuda_lib.handle) {
        if (why && why_len)
            snprintf(why, why_len, "%s", cuda_lib.error);
        return 0;
    }
    int n = cuda_lib.count();
    if (n < 1 && why && why_len)
        snprintf(why, why_len,
                 "no CUDA GPU visible (no driver, no device, or "
                 "CUDA_VISIBLE_DEVICES hides them)");
    return n;
}

const char *vrt_backend_list(void)
{
    return cuda_lib_present() ? "cpu,cuda-emu,cuda" : "cpu,cuda-emu";
}

int vrt_backend_create(vrt_backend **out, const char *kind, int threads, vrt_err *err)
{
    vrt_backend_opts o = {.threads = threads, .custom_kernels = 1};
    return vrt_backend_create_opts(out, kind, &o, err);
}

/* How to run without a GPU, appended to every error of the cuda backend. */
#define CPU_HINT                                                                                   \
    "without a GPU, set device.kind = \"cpu\" (or \"auto\") in the config, or pass --device cpu "  \
    "to serve, generate, bench or perplexity (\"cuda-emu\" runs the CUDA kernels on the CPU)"

int vrt_backend_create_opts(vrt_backend **out, const char *kind, const vrt_backend_opts *o,
                            vrt_err *err)
{
    int threads = o ? o->threads : 0;
    if (!out)
        return vrt_err_set(err, VRT_EINVAL, "vrt_backend_create: out is NULL");
    *out = NULL;
    if (!kind)
        return vrt_err_set(err, VRT_EINVAL,
                           "vrt_backend_create: no backend kind given (built in: %s)",
                           vrt_backend_list());
    if (threads < 0)
        return vrt_err_set(err, VRT_ERANGE,
                           "backend \"%s\": threads is %d; use 0 (all cores) or a positive "
                           "count (device.threads)",
                           kind, threads);
    if (strcmp(kind, "cpu") == 0)
        return vrt__cpu_backend_create(out, threads, err);
    if (strcmp(kind, "cuda-emu") == 0)
        return vrt__cuda_emu_backend_create(out, threads, o ? o->custom_kernels : 1, err);
    if (strcmp(kind, "cuda") == 0) {
        pthread_once(&cuda_lib.once, cuda_lib_load);
        if (!cuda_lib.handle)
            return vrt_err_set(err, cuda_lib.found ? VRT_EDEVICE : VRT_EUNSUPPORTED,
                               "backend \"cuda\": %s; %s", cuda_lib.error, CPU_HINT);
        int rc = cuda_lib.create(out, threads, o ? o->custom_kernels : 1, o ? o->device : 0, err);
        if (rc) {
            vrt_err_prefix(err, "backend \"cuda\" (%s): ", cuda_lib.path);
            /* The backend may already name device.kind; the flag is added. */
            size_t used = err ? strlen(err->msg) : 0;
            if (err && used < sizeof err->msg && !strstr(err->msg, "--device cpu"))
                snprintf(err->msg + used, sizeof err->msg - used, "; %s",
                         strstr(err->msg, "device.kind = \"cpu\"")
                             ? "or pass --device cpu to serve, generate, bench or perplexity"
                             : CPU_HINT);
        }
        return rc;
    }
    return vrt_err_set(err, VRT_EINVAL, "unknown backend kind \"%s\" (device.kind); built in: %s",
                       kind, vrt_backend_list());
}

void vrt_backend_destroy(vrt_backend *b)
{
    if (b && b->destroy)
        b->destroy(b);
}
