/* test_core.c — errors, logging, suggestions, the Lua host. */
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "lua/host.h"
#include "test.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>

TEST(err_table_names_and_strings)
{
    ASSERT_EQ_STR(vrt_err_name(VRT_ECONFIG), "ECONFIG");
    ASSERT_EQ_STR(vrt_strerror(VRT_ECONFIG), "invalid configuration");
    ASSERT_EQ_STR(vrt_err_name(0), "OK");
    ASSERT_EQ_STR(vrt_err_name(-9999), "EUNKNOWN");
    ASSERT_EQ_STR(vrt_strerror(-9999), "unknown error");
    /* Every code in the table has a distinct name. */
    int codes[] = {
#define X(name, value, desc) VRT_##name,
        VRT_ERRNO_MAP(X)
#undef X
    };
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        for (size_t j = i + 1; j < sizeof codes / sizeof *codes; j++)
            ASSERT(strcmp(vrt_err_name(codes[i]), vrt_err_name(codes[j])) != 0);
}

TEST(err_set_and_prefix)
{
    vrt_err e;
    vrt_err_clear(&e);
    ASSERT_EQ_INT(e.code, 0);
    ASSERT_EQ_INT(vrt_err_set(&e, VRT_EIO, "cannot read %s", "x.bin"), VRT_EIO);
    ASSERT_EQ_INT(vrt_err_prefix(&e, "loading %s: ", "model"), VRT_EIO);
    ASSERT_EQ_STR(e.msg, "loading model: cannot read x.bin");
    /* NULL errors are allowed everywhere. */
    ASSERT_EQ_INT(vrt_err_set(NULL, VRT_EINVAL, "x"), VRT_EINVAL);
    /* A prefix onto a full message truncates and stays terminated. */
    memset(e.msg, 'a', sizeof e.msg - 1);
    e.msg[sizeof e.msg - 1] = '\0';
    vrt_err_prefix(&e, "ctx: ");
    ASSERT_EQ_INT((long long)strlen(e.msg), (long long)sizeof e.msg - 1);
    ASSERT(strncmp(e.msg, "ctx: aaa", 8) == 0);
}

TEST(log_text_and_json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    vrt_log_set_stream(f);
    vrt_log_set_level(VRT_LOG_INFO);
    vrt_log_set_format(VRT_LOG_TEXT);
    VRT_DEBUG("hidden");
    VRT_INFO("hello %d", 42);
    vrt_log_set_format(VRT_LOG_JSON);
    VRT_WARN("quote \" and\nnewline");
    vrt_log_set_stream(NULL);
    fclose(f);
    ASSERT(!strstr(buf, "hidden"));
    ASSERT_CONTAINS(buf, "INFO  hello 42\n");
    ASSERT_CONTAINS(buf, "\"level\":\"warn\",\"msg\":\"quote \\\" and\\nnewline\"}");
    ASSERT_CONTAINS(buf, "{\"ts\":\"20");
    free(buf);
    ASSERT_EQ_INT(vrt_log_level_parse("WARNING"), VRT_LOG_WARN);
    ASSERT_EQ_INT(vrt_log_level_parse("loud"), -1);
}

TEST(suggest_close_words_only)
{
    const char *cmds[] = {"check", "run", "help", "version"};
    ASSERT_EQ_STR(vrt_suggest("chekc", cmds, 4), "check");
    ASSERT_EQ_STR(vrt_suggest("verison", cmds, 4), "version");
    ASSERT(vrt_suggest("quantize", cmds, 4) == NULL);
    ASSERT_EQ_INT(vrt_levenshtein("kitten", "sitting"), 3);
    ASSERT_EQ_INT(vrt_levenshtein("ab", "ba"), 1);
    ASSERT_EQ_INT(vrt_levenshtein("", "abc"), 3);
}

TEST(grow_keeps_elements_and_doubles)
{
    int32_t *v = NULL;
    size_t cap = 0, n = 0;
    ASSERT_EQ_INT(vrt_grow(&v, &cap, 0, sizeof *v), 0); /* nothing needed: no allocation */
    ASSERT(v == NULL && cap == 0);
    for (int i = 0; i < 1000; i++) {
        ASSERT_EQ_INT(vrt_grow(&v, &cap, n + 1, sizeof *v), 0);
        ASSERT(cap >= n + 1);
        v[n++] = i * 7;
    }
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ_INT(v[i], i * 7);
    ASSERT_EQ_INT((int)cap, 1024); /* 8, 16, ..., 1024: doubling, not one at a time */
    size_t before = cap;
    ASSERT_EQ_INT(vrt_grow(&v, &cap, 5000, sizeof *v), 0); /* a jump past 2x */
    ASSERT(cap >= 5000 && cap > before);
    ASSERT_EQ_INT(v[999], 999 * 7);
    /* An impossible size fails and leaves the array as it was. */
    int32_t *keep = v;
    ASSERT_EQ_INT(vrt_grow(&v, &cap, SIZE_MAX / 2, sizeof *v), VRT_ENOMEM);
    ASSERT(v == keep && cap >= 5000 && cap < SIZE_MAX / 8);
    ASSERT_EQ_INT(v[0], 0);
    free(v);
}

/* vrt_strbuf grows through vrt_grow: 256 bytes first, then doubling; a
 * size that wraps sets oom and keeps the text. */
TEST(strbuf_grows_by_doubling_and_a_wrapping_size_is_oom)
{
    vrt_strbuf b = {0};
    vrt_strbuf_puts(&b, "a");
    ASSERT_EQ_INT((int)b.cap, 256);
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 10; i++)
        vrt_strbuf_put(&b, chunk, sizeof chunk);
    ASSERT_EQ_INT((int)b.len, 1001);
    ASSERT_EQ_INT((int)b.cap, 1024);
    ASSERT(b.p[0] == 'a' && b.p[1000] == 'x' && b.p[1001] == '\0');
    ASSERT_EQ_INT(vrt_strbuf_reserve(&b, 2000), 0);
    ASSERT_EQ_INT((int)b.cap, 4096);
    ASSERT_EQ_INT(vrt_strbuf_reserve(&b, SIZE_MAX - 10), -1);
    ASSERT(b.oom);
    ASSERT_EQ_INT((int)b.len, 1001);
    ASSERT_EQ_INT((int)b.cap, 4096);
    vrt_strbuf_puts(&b, "more"); /* ignored after oom */
    ASSERT_EQ_INT((int)b.len, 1001);
    vrt_strbuf_free(&b);
}

TEST(lua_error_has_file_line_and_traceback)
{
    vrt_err err = {0};
    lua_State *L = vrt_lua_new(&err);
    ASSERT(L != NULL);
    char path[] = "/tmp/vrt_test_XXXXXX.lua";
    int fd = mkstemps(path, 4);
    ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("local x = 1\nlocal function g() error('boom') end\ng()\n", f);
    fclose(f);
    int rc = vrt_lua_dofile(L, path, 0, 0, &err);
    remove(path);
    vrt_lua_close(L);
    ASSERT_EQ_INT(rc, VRT_ELUA);
    ASSERT_CONTAINS(err.msg, ":2: boom");
    ASSERT_CONTAINS(err.msg, "stack traceback");
}

TEST(lua_missing_file_is_enoent)
{
    vrt_err err = {0};
    lua_State *L = vrt_lua_new(&err);
    ASSERT_EQ_INT(vrt_lua_dofile(L, "/nonexistent/x.lua", 0, 0, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "/nonexistent/x.lua");
    /* The state is still usable. */
    ASSERT_EQ_INT(luaL_dostring(L, "return 1 + 1"), 0);
    ASSERT_EQ_INT(lua_tointeger(L, -1), 2);
    vrt_lua_close(L);
}

TEST(lua_budget_stops_endless_loop)
{
    vrt_err err = {0};
    lua_State *L = vrt_lua_new(&err);
    vrt_lua_set_budget(L, 0.2);
    ASSERT_EQ_INT(luaL_loadstring(L, "while true do end"), 0);
    ASSERT_EQ_INT(vrt_lua_pcall(L, 0, 0, &err), VRT_ELUA);
    ASSERT_CONTAINS(err.msg, "time budget");
    /* The budget is per call: a short call afterwards succeeds. */
    ASSERT_EQ_INT(luaL_loadstring(L, "local s = 0 for i = 1, 1000 do s = s + i end return s"), 0);
    ASSERT_EQ_INT(vrt_lua_pcall(L, 0, 1, &err), 0);
    ASSERT_EQ_INT(lua_tointeger(L, -1), 500500);
    vrt_lua_close(L);
}

TEST(lua_finds_v100rt_module)
{
    vrt_err err = {0};
    lua_State *L = vrt_lua_new(&err);
    ASSERT_EQ_INT(luaL_dostring(L, "return require('v100rt').VERSION"), 0);
    ASSERT_EQ_STR(lua_tostring(L, -1), vrt_version());
    vrt_lua_close(L);
}
