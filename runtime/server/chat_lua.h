/* chat_lua.h — a chat template written as a Lua function in the config
 * (model.chat_template = function(messages, opts) ... end), run on the
 * loop thread in its own Lua state with a time budget.
 */
#ifndef VRT_SERVER_CHAT_LUA_H
#define VRT_SERVER_CHAT_LUA_H

#include "tokenizer/chat.h"
#include "vrt.h"

typedef struct vrt_chat_lua vrt_chat_lua;

/* Loads config_path in a new Lua state and keeps model.chat_template, which
 * must be a function (VRT_ECONFIG otherwise). */
int vrt_chat_lua_load(vrt_chat_lua **out, const char *config_path, vrt_err *err);
void vrt_chat_lua_free(vrt_chat_lua *c);

/* Calls the function with messages (an array of {role=, content=}) and opts
 * {add_generation_prompt=, bos_token=, eos_token=}; it must return the
 * prompt string. *out is malloc'd. An error, a wrong return type or an
 * endless loop is VRT_EINVAL with the message (the request gets a 400). */
int vrt_chat_lua_render(vrt_chat_lua *c, const vrt_chat_msg *msgs, int n, const char *bos,
                        const char *eos, int add_generation_prompt, char **out, vrt_err *err);

#endif
