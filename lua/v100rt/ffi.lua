-- v100rt.ffi — the C API of runtime/vrt.h, declared for LuaJIT's FFI.
--
-- The declarations come from the binary itself (vrt_ffi_cdef()), which
-- embeds the FFI part of vrt.h at build time: one source of truth for every
-- struct layout. Returns the ffi module and ffi.C.
local ffi = require "ffi"

ffi.cdef [[ const char *vrt__cdef_text(void) __asm__("vrt_ffi_cdef"); ]]
local ok, err = pcall(function() ffi.cdef(ffi.string(ffi.C.vrt__cdef_text())) end)
if not ok then
  error("v100rt.ffi: the C API is not available in this process (run the script with `v100rt run`): " .. tostring(err), 2)
end

return { ffi = ffi, C = ffi.C }
