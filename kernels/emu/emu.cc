/* emu.cc — the CUDA emulator's runtime: blocks of fibers, barriers, warp exchange.
 *
 * A launch runs its blocks one after another (or on vrt_emu_set_threads OS
 * threads, one block per thread at a time). A block's threads are fibers
 * (a register switch on x86-64, ucontext elsewhere) with small mmapped stacks (a guard page below
 * each). The block's scheduler runs in passes: each pass resumes every runnable fiber once, in an
 * order shuffled from the seed, and each fiber runs until its next sync point (__syncthreads, a
 * warp shuffle/vote, __syncwarp) or its end. After the pass, warps whose participating lanes all
 * arrived at the same warp op get their results (computed here, per lane, so that a lane running
 * ahead cannot overwrite a value another lane still has to read) and the block barrier opens when
 * every live fiber waits at it (fibers that returned count as arrived, as on the hardware). A block
 * where nothing can move is a deadlock and fails the launch with a message (cudaGetLastError).
 *
 * Shared memory (static sites and the dynamic buffer) is allocated per block
 * and filled with 0xff bytes: a float read before it was written is NaN.
 * Under AddressSanitizer the fiber switches are annotated
 * (__sanitizer_start/finish_switch_fiber) so that ASan follows the stacks.
 */
#include "emu/emu.h"
#include "emu/cuda_emu.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#include <omp.h>

#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

/* ---- execution contexts ----
 * On x86-64 a fiber switch is six callee-saved registers and the stack
 * pointer (vrt_emu_ctx_switch below): glibc's swapcontext also saves the
 * signal mask with a system call on every switch, which made the emulated
 * model tests several times slower. Elsewhere (or with -DVRT_EMU_UCONTEXT)
 * ucontext does the same job. */
#if defined(__x86_64__) && !defined(VRT_EMU_UCONTEXT)
extern "C" void vrt_emu_ctx_switch(void **save_sp, void *load_sp);
/* Pushes the callee-saved registers on the current stack, saves rsp in
 * *save_sp, loads load_sp and pops the other context's registers; the ret
 * continues where that context switched out (or in its entry function). */
__asm__(".text\n"
        ".globl vrt_emu_ctx_switch\n"
        ".type vrt_emu_ctx_switch,@function\n"
        "vrt_emu_ctx_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size vrt_emu_ctx_switch, .-vrt_emu_ctx_switch\n");
struct emu_ctx {
    void *sp;
};
/* A fresh context that starts in entry (which must never return). */
static void ctx_init(emu_ctx *c, char *stack, size_t size, void (*entry)())
{
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    void **sp = reinterpret_cast<void **>(top);
    *--sp = nullptr;                         /* entry's return address: rsp % 16 == 8 */
    *--sp = reinterpret_cast<void *>(entry); /* popped by ret */
    for (int i = 0; i < 6; i++)              /* rbp rbx r12 r13 r14 r15 */
        *--sp = nullptr;
    c->sp = sp;
}
static inline void ctx_swap(emu_ctx *from, emu_ctx *to)
{
    vrt_emu_ctx_switch(&from->sp, to->sp);
}
#else
struct emu_ctx {
    ucontext_t uc;
};
#if defined(__SANITIZE_ADDRESS__)
/* ASan's swapcontext interceptor warns once per process and clears the
 * shadow of the whole target stack on every switch; the switches here are
 * annotated instead, so they go to libc's swapcontext directly. */
typedef int (*swap_fn)(ucontext_t *, const ucontext_t *);
static swap_fn libc_swapcontext()
{
    static swap_fn fn = [] {
        void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        void *sym = h ? dlsym(h, "swapcontext") : nullptr;
        return sym ? reinterpret_cast<swap_fn>(sym) : &swapcontext;
    }();
    return fn;
}
#endif
static void ctx_init(emu_ctx *c, char *stack, size_t size, void (*entry)())
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, entry, 0);
}
static inline void ctx_swap(emu_ctx *from, emu_ctx *to)
{
#if defined(__SANITIZE_ADDRESS__)
    libc_swapcontext()(&from->uc, &to->uc);
#else
    swapcontext(&from->uc, &to->uc);
#endif
}
#endif

namespace vrt_emu
{

thread_local thread_ctx *cur;

namespace
{

/* Fiber stacks: kernels keep their per-thread locals small (registers on
 * the GPU), but libm and ASan need room. */
const size_t STACK_BYTES = EMU_ASAN ? 256 * 1024 : 64 * 1024;
const uint64_t POISON = ~(uint64_t)0;

enum { F_RUN, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

} // namespace

struct fiber {
    emu_ctx uc;
    thread_ctx tc;
    char *stack; /* usable part, STACK_BYTES */
    int state;
    int lane;
    /* The pending warp op and its result. */
    int xkind, xarg, xwidth;
    unsigned xmask;
    uint64_t xval, xres;
    void *fake_stack; /* ASan's fake stack while switched out */
};

namespace
{

std::atomic<uint64_t> g_seed{0};
std::atomic<bool> g_seed_set{false};
std::atomic<uint64_t> g_launches{0};
std::atomic<int> g_threads{1};
std::atomic<int> g_sites{0};
thread_local char t_error[1024];
thread_local cudaError_t t_last = cudaSuccess;

uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The fiber stacks of one OS thread, reused across blocks and launches. */
struct stack_pool {
    std::vector<char *> maps;
    ~stack_pool()
    {
        for (char *m : maps)
            munmap(m, STACK_BYTES + (size_t)sysconf(_SC_PAGESIZE));
    }
    char *get(size_t i)
    {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        while (maps.size() <= i) {
            void *m = mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED)
                return nullptr;
            mprotect(m, page, PROT_NONE); /* guard page: an overflow faults */
            maps.push_back(static_cast<char *>(m));
        }
        return maps[i] + page;
    }
};
thread_local stack_pool t_stacks;

} // namespace

struct block {
    std::vector<fiber> f;
    int n;
    emu_ctx sched;
    kernel_fn fn;
    void *closure;
    std::vector<void *> smem; /* by site id */
    void *dyn;
    uint64_t rng;
    bool failed;
    char msg[256];
    const void *main_bottom;
    size_t main_size;
};

namespace
{

thread_local fiber *t_fiber;

void fail(block *b, const char *msg)
{
    if (!b->failed) {
        b->failed = true;
        snprintf(b->msg, sizeof b->msg, "%s", msg);
    }
}

void resume(block *b, fiber *f)
{
    cur = &f->tc;
    t_fiber = f;
#if EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack, STACK_BYTES);
#endif
    ctx_swap(&b->sched, &f->uc);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    cur = nullptr;
    t_fiber = nullptr;
}

/* Called on a fiber: back to the scheduler until it resumes this fiber. */
void yield(fiber *f)
{
    block *b = f->tc.blk;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(f->state == F_DONE ? nullptr : &f->fake_stack, b->main_bottom,
                                   b->main_size);
#endif
    ctx_swap(&f->uc, &b->sched);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &b->main_bottom, &b->main_size);
#endif
}

void fiber_entry()
{
    fiber *f = t_fiber;
    block *b = f->tc.blk;
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &b->main_bottom, &b->main_size);
#endif
    b->fn(b->closure);
    f->state = F_DONE;
    yield(f); /* never resumed again */
}

/* Resolves the pending warp ops of warp w; returns true if lanes moved. */
bool release_warp(block *b, int w)
{
    int lo = w * 32, hi = std::min(b->n, lo + 32);
    bool moved = false;
    for (int a = lo; a < hi; a++) {
        fiber &fa = b->f[a];
        if (fa.state != F_WAIT_WARP)
            continue;
        unsigned m = fa.xmask;
        if (!(m >> fa.lane & 1u)) {
            fail(b, "a warp op's mask does not include the calling lane");
            return false;
        }
        bool ready = true;
        for (int i = lo; i < hi; i++) {
            fiber &fi = b->f[i];
            if (!(m >> fi.lane & 1u) || fi.state == F_DONE)
                continue;
            if (fi.state != F_WAIT_WARP) {
                ready = false;
                break;
            }
            if (fi.xkind != fa.xkind || fi.xmask != m) {
                fail(b, "lanes of one warp meet at different warp ops (divergent shuffle, "
                        "vote or __syncwarp, or a different mask)");
                return false;
            }
        }
        if (!ready)
            continue;
        /* Every live lane of the mask is here: compute each lane's result. */
        uint64_t val[32];
        bool in[32] = {false};
        unsigned pred = 0;
        for (int i = lo; i < hi; i++) {
            fiber &fi = b->f[i];
            if ((m >> fi.lane & 1u) && fi.state == F_WAIT_WARP) {
                in[fi.lane] = true;
                val[fi.lane] = fi.xval;
                if (fi.xval)
                    pred |= 1u << fi.lane;
            }
        }
        unsigned group = 0;
        for (int l = 0; l < 32; l++)
            group |= (unsigned)in[l] << l;
        for (int i = lo; i < hi; i++) {
            fiber &fi = b->f[i];
            if (!in[fi.lane])
                continue;
            int l = fi.lane, wd = fi.xwidth, base = l & ~(wd - 1), j = l;
            switch (fi.xkind) {
            case X_SHFL: j = base + (((fi.xarg % wd) + wd) % wd); break;
            case X_XOR:
                j = l ^ fi.xarg;
                if (j < 0 || j > 31 || j >= base + wd)
                    j = l;
                break;
            case X_DOWN: j = l + fi.xarg >= base + wd ? l : l + fi.xarg; break;
            case X_UP: j = l - fi.xarg < base ? l : l - fi.xarg; break;
            default: break;
            }
            switch (fi.xkind) {
            case X_ANY: fi.xres = pred != 0; break;
            case X_ALL: fi.xres = pred == group; break;
            case X_BALLOT: fi.xres = pred; break;
            case X_SYNC: fi.xres = 0; break;
            default: fi.xres = in[j] ? val[j] : POISON; break; /* inactive source: undefined */
            }
            fi.state = F_RUN;
            moved = true;
        }
    }
    return moved;
}

/* Runs one block to its end; false (with b->msg) on a deadlock or misuse. */
bool run_block(block *b)
{
    std::vector<int> order;
    order.reserve((size_t)b->n);
    for (;;) {
        order.clear();
        for (int i = 0; i < b->n; i++)
            if (b->f[i].state == F_RUN)
                order.push_back(i);
        for (size_t i = order.size(); i > 1; i--) /* Fisher-Yates */
            std::swap(order[i - 1], order[splitmix(&b->rng) % i]);
        for (int i : order) {
            resume(b, &b->f[i]);
            if (b->failed)
                return false;
        }
        bool moved = false;
        int live = 0, at_barrier = 0;
        for (int w = 0; w * 32 < b->n; w++)
            moved |= release_warp(b, w);
        if (b->failed)
            return false;
        for (int i = 0; i < b->n; i++) {
            live += b->f[i].state != F_DONE;
            at_barrier += b->f[i].state == F_WAIT_BLOCK;
        }
        if (live == 0)
            return true;
        if (at_barrier == live) {
            for (int i = 0; i < b->n; i++)
                if (b->f[i].state == F_WAIT_BLOCK)
                    b->f[i].state = F_RUN;
            moved = true;
        }
        if (!moved) {
            fail(b, at_barrier ? "deadlock: some threads wait at __syncthreads while others "
                                 "wait at a warp op (barrier in divergent code?)"
                               : "deadlock: warp ops whose masks name lanes that never arrive");
            return false;
        }
    }
}

void *aligned_poisoned(size_t bytes)
{
    size_t n = ((bytes ? bytes : 1) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n);
    if (p)
        memset(p, 0xff, n);
    return p;
}

} // namespace

/* ---- called by kernels (on a fiber) ---- */

static fiber *self(const char *what)
{
    if (!t_fiber) {
        fprintf(stderr, "cuda-emu: %s called outside a kernel\n", what);
        abort(); /* a programming error in host code, not a runtime condition */
    }
    return t_fiber;
}

void syncthreads()
{
    fiber *f = self("__syncthreads");
    f->state = F_WAIT_BLOCK;
    yield(f);
}

uint64_t warp_exchange(int kind, unsigned mask, uint64_t value, int arg, int width)
{
    fiber *f = self("a warp shuffle/vote");
    if (width < 1 || width > 32 || (width & (width - 1))) {
        fail(f->tc.blk, "warp shuffle width must be a power of two <= 32");
        f->state = F_WAIT_WARP;
        yield(f);
        return POISON;
    }
    f->xkind = kind;
    f->xmask = mask;
    f->xval = value;
    f->xarg = arg;
    f->xwidth = width;
    f->state = F_WAIT_WARP;
    yield(f);
    return f->xres;
}

void syncwarp(unsigned mask)
{
    warp_exchange(X_SYNC, mask, 0, 0, 32);
}

int site_new()
{
    return g_sites.fetch_add(1);
}

void *static_smem(int site, size_t bytes, size_t align)
{
    block *b = self("VRT_SHARED")->tc.blk;
    if ((size_t)site >= b->smem.size())
        b->smem.resize((size_t)site + 1, nullptr);
    if (!b->smem[(size_t)site]) {
        (void)align; /* 64-byte alignment covers every type */
        b->smem[(size_t)site] = aligned_poisoned(bytes);
        if (!b->smem[(size_t)site]) {
            fprintf(stderr, "cuda-emu: out of memory for shared memory\n");
            abort();
        }
    }
    return b->smem[(size_t)site];
}

void *dyn_smem()
{
    return self("vrt_dyn_smem")->tc.blk->dyn;
}

/* ---- launch ---- */

static bool launch_block(block *b, dim3 grid, dim3 bdim, dim3 bid, size_t smem, uint64_t rng)
{
    b->n = (int)(bdim.x * bdim.y * bdim.z);
    b->f.assign((size_t)b->n, fiber{});
    b->smem.clear();
    b->dyn = smem ? aligned_poisoned(smem) : nullptr;
    b->rng = rng;
    b->failed = false;
    b->msg[0] = 0;
    for (int i = 0; i < b->n; i++) {
        fiber &f = b->f[(size_t)i];
        f.stack = t_stacks.get((size_t)i);
        if (!f.stack) {
            fail(b, "out of memory for fiber stacks");
            break;
        }
        f.tc.tid = dim3((unsigned)i % bdim.x, (unsigned)i / bdim.x % bdim.y,
                        (unsigned)i / (bdim.x * bdim.y));
        f.tc.bid = bid;
        f.tc.bdim = bdim;
        f.tc.gdim = grid;
        f.tc.linear = i;
        f.tc.blk = b;
        f.lane = i % 32;
        f.state = F_RUN;
        ctx_init(&f.uc, f.stack, STACK_BYTES, fiber_entry);
    }
    bool ok = !b->failed && run_block(b);
#if EMU_ASAN
    /* Fibers abandoned mid-kernel leave their frames' redzones poisoned. */
    for (int i = 0; !ok && i < b->n; i++)
        if (b->f[(size_t)i].stack)
            __asan_unpoison_memory_region(b->f[(size_t)i].stack, STACK_BYTES);
#endif
    for (void *p : b->smem)
        free(p);
    b->smem.clear();
    free(b->dyn);
    b->dyn = nullptr;
    return ok;
}

cudaError_t launch(const char *name, dim3 grid, dim3 bdim, size_t smem, cudaStream_t stream,
                   kernel_fn fn, void *closure)
{
    (void)stream; /* one in-order queue: launches run to completion */
    uint64_t nthreads = (uint64_t)bdim.x * bdim.y * bdim.z;
    uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
    if (nthreads == 0 || nthreads > 1024 || bdim.z > 64 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 0x7fffffffu || nblocks == 0 || smem > 48 * 1024) {
        snprintf(t_error, sizeof t_error,
                 "launch of %s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u) "
                 "dynamic shared memory %zu bytes",
                 name, grid.x, grid.y, grid.z, bdim.x, bdim.y, bdim.z, smem);
        return t_last = cudaErrorInvalidConfiguration;
    }
    if (!g_seed_set.load()) {
        const char *e = getenv("VRT_EMU_SEED");
        vrt_emu_set_seed(e && *e ? strtoull(e, nullptr, 0) : 0x5eed5eedull);
    }
    uint64_t launch_no = g_launches.fetch_add(1), seed = g_seed.load();
    int nt = g_threads.load();
    if ((uint64_t)nt > nblocks)
        nt = (int)nblocks;
    std::mutex mu;
    std::atomic<bool> failed{false};
    char msg[512] = "";
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        block *b = new block();
        b->fn = fn;
        b->closure = closure;
#pragma omp for schedule(dynamic, 1)
        for (uint64_t i = 0; i < nblocks; i++) {
            if (failed)
                continue;
            dim3 bid((unsigned)(i % grid.x), (unsigned)(i / grid.x % grid.y),
                     (unsigned)(i / ((uint64_t)grid.x * grid.y)));
            uint64_t rng = seed ^ (launch_no * 0x9e3779b97f4a7c15ull) ^ (i * 0xd1b54a32d192ed03ull);
            if (!launch_block(b, grid, bdim, bid, smem, rng)) {
                std::lock_guard<std::mutex> g(mu);
                if (!failed)
                    snprintf(msg, sizeof msg, "block (%u,%u,%u): %s", bid.x, bid.y, bid.z, b->msg);
                failed = true;
            }
        }
        delete b;
    }
    if (failed) {
        snprintf(t_error, sizeof t_error, "launch of %s failed in %s", name, msg);
        return t_last = cudaErrorLaunchFailure;
    }
    return cudaSuccess;
}

} // namespace vrt_emu

extern "C" {

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = vrt_emu::t_last;
    vrt_emu::t_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return vrt_emu::t_last;
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

void vrt_emu_set_seed(uint64_t seed)
{
    vrt_emu::g_seed.store(seed);
    vrt_emu::g_seed_set.store(true);
}

void vrt_emu_set_threads(int n)
{
    vrt_emu::g_threads.store(n < 1 ? 1 : n);
}

const char *vrt_emu_last_error(void)
{
    return vrt_emu::t_error;
}
}
