# gen-cdef.awk — turns the FFI part of runtime/vrt.h into a C string so that
# the binary can hand it to ffi.cdef (see lua/v100rt/ffi.lua).
BEGIN { print "/* Generated from runtime/vrt.h by scripts/gen-cdef.awk; do not edit. */"
        print "#include \"vrt.h\""
        print "const char *vrt_ffi_cdef(void)\n{\n    return"; inside = 0 }
/VRT_FFI_END/ { inside = 0 }
inside { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); print "        \"" $0 "\\n\"" }
/VRT_FFI_BEGIN/ { inside = 1 }
END { print "        \"\";\n}" }
