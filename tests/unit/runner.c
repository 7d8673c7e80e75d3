/* runner.c — runs the registered C unit tests, each in its own process.
 *
 *   unit_tests            run all tests
 *   unit_tests PATTERN    run tests whose name contains PATTERN
 *   unit_tests --list     list test names
 *
 * Each test runs in a forked child with a timeout (VRT_TEST_TIMEOUT, default
 * 60 s); a crash, an abort or a timeout fails that test only. The last line
 * is "RESULT <passed> <failed>" for tests/run.sh to add up.
 */
#include "test.h"

#include "core/util.h"

#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name, *file;
    vrt_test_fn fn;
} test_case;

static test_case *g_tests;
static int g_n;
static size_t g_cap;
int vrt_test_failed;

void vrt_test_register(const char *name, const char *file, vrt_test_fn fn)
{
    if (vrt_grow(&g_tests, &g_cap, (size_t)g_n + 1, sizeof *g_tests)) {
        perror("realloc");
        _exit(1);
    }
    g_tests[g_n++] = (test_case){name, file, fn};
}

char *vrt_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static int cmp_test(const void *a, const void *b)
{
    const test_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Returns 1 if the test passed. */
/* A crashing test prints where (the child's output so far is flushed
 * first, then the stack to stderr), so a crash on a machine one cannot log
 * into (a lent GPU) still says something. */
static void on_crash(int sig)
{
    fflush(stdout);
    void *frames[48];
    int n = backtrace(frames, 48);
    static const char msg[] = "  crash: signal, stack:\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(128 + sig);
    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_one(const test_case *t, int timeout_s)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGSEGV, on_crash);
        signal(SIGBUS, on_crash);
        signal(SIGFPE, on_crash);
        alarm((unsigned)timeout_s);
        vrt_test_failed = 0;
        t->fn();
        fflush(stdout);
        fflush(stderr);
        _exit(vrt_test_failed ? 1 : 0);
    }
    int status = 0;
    double t0 = now();
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (now() - t0 > timeout_s + 5) { /* alarm did not fire: hard kill */
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(2000);
    }
    double dt = now() - t0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok    %-48s %.2fs\n", t->name, dt);
        return 1;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("FAIL  %-48s timed out after %d s (%s)\n", t->name, timeout_s, t->file);
    else if (WIFSIGNALED(status))
        printf("FAIL  %-48s killed by signal %d (%s)\n", t->name, WTERMSIG(status), t->file);
    else
        printf("FAIL  %-48s (%s)\n", t->name, t->file);
    return 0;
}

int main(int argc, char **argv)
{
    /* Tests whose name contains any of the patterns (all when none). */
    const char *patterns[64];
    int n_pat = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0)
            list = 1;
        else if (n_pat < 64)
            patterns[n_pat++] = argv[i];
    }
    int timeout_s = 60;
    if (getenv("VRT_TEST_TIMEOUT"))
        timeout_s = atoi(getenv("VRT_TEST_TIMEOUT"));
    if (timeout_s <= 0)
        timeout_s = 60;
    qsort(g_tests, (size_t)g_n, sizeof *g_tests, cmp_test);
    int passed = 0, failed = 0;
    for (int i = 0; i < g_n; i++) {
        const test_case *t = &g_tests[i];
        int match = n_pat == 0;
        for (int p = 0; p < n_pat && !match; p++)
            match = strstr(t->name, patterns[p]) != NULL;
        if (!match)
            continue;
        if (list) {
            printf("%s\n", t->name);
            continue;
        }
        if (run_one(t, timeout_s))
            passed++;
        else
            failed++;
    }
    if (!list)
        printf("RESULT %d %d\n", passed, failed);
    free(g_tests);
    return failed ? 1 : 0;
}

/* Self-check of the runner's isolation, run by tests/cli/test_cli.sh with
 * VRT_TEST_SELFCHECK=1: a crash, a hang and a failed assertion must each
 * fail only their own test. Without the variable they pass trivially. */
static int selfcheck(void)
{
    return getenv("VRT_TEST_SELFCHECK") != NULL;
}

TEST(selfcheck_crash)
{
    if (selfcheck())
        abort(); /* a crash (SIGABRT), the same with or without sanitizers */
}

TEST(selfcheck_hang)
{
    while (selfcheck())
        usleep(1000);
}

TEST(selfcheck_assert)
{
    if (selfcheck())
        ASSERT_EQ_INT(1 + 1, 3);
}

TEST(selfcheck_pass)
{
    ASSERT_EQ_INT(1 + 1, 2);
}
