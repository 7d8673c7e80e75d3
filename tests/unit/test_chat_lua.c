/* test_chat_lua.c — chat templates written as Lua functions in the config. */
#include "test.h"

#include "core/err.h"
#include "server/chat_lua.h"

#include <stdlib.h>
#include <unistd.h>

static const char *write_cfg(const char *tmpl)
{
    static char path[128];
    snprintf(path, sizeof path, "/tmp/vrt-chat-lua-%d.lua", (int)getpid());
    FILE *f = fopen(path, "w");
    fprintf(f,
            "local v100rt = require \"v100rt\"\n"
            "return v100rt.config{ model = { path = \"/nonexistent\", chat_template = %s } }\n",
            tmpl);
    fclose(f);
    return path;
}

TEST(chat_lua_renders_errors_and_budget)
{
    vrt_err err = {0};
    vrt_chat_lua *c;
    const char *path =
        write_cfg("function(m, o)\n"
                  "  if m[1].content == 'boom' then error('no booms') end\n"
                  "  if m[1].content == 'loop' then while true do end end\n"
                  "  if m[1].content == 'num' then return 42 end\n"
                  "  local s = o.bos_token\n"
                  "  for _, x in ipairs(m) do s = s .. '<' .. x.role .. '>' .. x.content end\n"
                  "  if o.add_generation_prompt then s = s .. '<assistant>' end\n"
                  "  return s\n"
                  "end");
    ASSERT_OK(vrt_chat_lua_load(&c, path, &err), &err);
    vrt_chat_msg msgs[2] = {{"system", "be brief"}, {"user", "hi"}};
    char *out = NULL;
    ASSERT_OK(vrt_chat_lua_render(c, msgs, 2, "<s>", "</s>", 1, &out, &err), &err);
    ASSERT_EQ_STR(out, "<s><system>be brief<user>hi<assistant>");
    free(out);
    vrt_chat_msg boom = {"user", "boom"}, loop = {"user", "loop"}, num = {"user", "num"};
    ASSERT_EQ_INT(vrt_chat_lua_render(c, &boom, 1, "", "", 1, &out, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "no booms");
    ASSERT(strstr(err.msg, "stack traceback") == NULL);
    /* The client gets this message: not the config file's path and line. */
    ASSERT_EQ_STR(err.msg, "model.chat_template: no booms");
    ASSERT_EQ_INT(vrt_chat_lua_render(c, &loop, 1, "", "", 1, &out, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "time budget");
    ASSERT_EQ_INT(vrt_chat_lua_render(c, &num, 1, "", "", 1, &out, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "must return the prompt string");
    /* Still usable after all that. */
    ASSERT_OK(vrt_chat_lua_render(c, msgs, 1, "", "", 0, &out, &err), &err);
    ASSERT_EQ_STR(out, "<system>be brief");
    free(out);
    vrt_chat_lua_free(c);
    /* A built-in name is not a function. */
    path = write_cfg("\"chatml\"");
    ASSERT_EQ_INT(vrt_chat_lua_load(&c, path, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "not a Lua function");
    unlink(path);
}
