# v100rt — build, test, install.
#
#   make deps      install missing build dependencies (Debian packages)
#   make           build ./v100rt
#   make test      build and run every test; ends with "N passed, N failed"
#   make demo-model  write models/tiny, the random-weight demo model
#   make serve     deps + build + ./v100rt serve configs/tiny.lua (the trained kjv-tiny)
#   make bench     serve a config and run the HTTP benchmark (scripts/bench.sh)
#   make asan      switch this tree to the AddressSanitizer+UBSan build
#   make release   switch back to the normal optimized build
#   make install   install to $(PREFIX) (default /usr/local)
#   make fmt       clang-format the C sources (make fmt-check: only check, as make test does)
#   make cuda-check  compile kernels/cuda with nvcc for the archs it offers (no GPU needed)
#   make check-sm70  install CUDA 11.8 (Debian non-free, ~2.5 GB) and check kernels/cuda builds for sm_70
#   make readme    regenerate the config reference in README.md
#
# The build variant (release or asan) is remembered in .build-variant so
# that `make asan && make test` runs the tests on the sanitized binaries.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= gcc
ifeq ($(origin CC),default)
CC      := gcc
endif
CXX     ?= g++
ifeq ($(origin CXX),default)
CXX     := g++
endif

VARIANT := $(shell cat .build-variant 2>/dev/null || echo release)
B       := build/$(VARIANT)

PKGS    := luajit libuv libcjson libpcre2-8
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

comma   := ,
BACKENDS := $(if $(wildcard kernels/cpu/*.c),cpu)$(if $(wildcard kernels/cuda/*.cu),$(comma)cuda-emu)
GIT_REV := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# C only: every non-static function has a prototype in a header.
CWARN   := $(WARN) -Wmissing-prototypes
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(CWARN) -fopenmp -pthread \
	-Iruntime -Ikernels $(PKG_CFLAGS) \
	-DVRT_VERSION='"$(VERSION)"' -DVRT_GIT_REV='"$(GIT_REV)"' \
	-DVRT_BACKENDS='"$(BACKENDS)"' \
	-DVRT_LUA_DIR='"$(PREFIX)/share/v100rt/lua"'
ifeq ($(VARIANT),asan)
OPT     := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
OPT     := -O2
endif
CFLAGS  ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(OPT) $(CFLAGS)
LDFLAGS_ALL := -rdynamic -fopenmp -pthread $(OPT) $(LDFLAGS)
LIBS    := $(PKG_LIBS) -lhttp_parser -ldl -lm -lstdc++

# cuda-emu: kernels/cuda/<op>.cu compiled as C++ with the emulator's header
# (kernels/emu/cuda_emu.h) and linked into ./v100rt and the tests, so every
# CUDA kernel runs on the CPU (device.kind = "cuda-emu", test_ops).
EMU_CXXFLAGS := -std=c++17 -g $(WARN) -fopenmp -pthread -Iruntime -Ikernels
EMU_CU  := $(sort $(wildcard kernels/cuda/*.cu))

# Library sources: everything under runtime/ except main.c, plus the CPU
# kernels. kernels/ref is linked into the tests only.
LIB_SRC := $(filter-out runtime/main.c,$(shell find runtime -name '*.c' | sort)) \
	$(sort $(wildcard kernels/cpu/*.c)) $(sort $(wildcard kernels/gpu/*.c)) \
	$(sort $(wildcard kernels/emu/*.c))
REF_SRC := $(sort $(wildcard kernels/ref/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/*.c))
EMU_OBJ := $(EMU_CU:%.cu=$(B)/emu/%.o) $(B)/kernels/emu/emu.o
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/vrt_cdef.o $(B)/gen/mkmodel_assets.o $(EMU_OBJ)
REF_OBJ := $(REF_SRC:%.c=$(B)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o) \
	$(patsubst %.cu,$(B)/emu/%.o,$(sort $(wildcard tests/unit/*.cu)))
MAIN_OBJ := $(B)/runtime/main.o

# CUDA: detected, not required (see the "CUDA (nvcc)" block below).
NVCC    ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && \
	echo /usr/local/cuda/bin/nvcc; })

.PHONY: FORCE all deps test asan release install uninstall clean fmt fmt-check info check-configs readme \
	fuzz fuzz-run demo-model serve bench examples cuda-check cuda-objs cuda-so check-sm70 sm70-objs
all: v100rt $(if $(NVCC),cuda-so)

deps:
	@bash scripts/deps.sh

# ./v100rt is a copy of the current variant's binary.
v100rt: $(B)/v100rt FORCE
	@cmp -s $< $@ || cp $< $@
FORCE:

# V=1 shows the full command lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(B)/v100rt: $(MAIN_OBJ) $(LIB_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

# make examples: the programs of examples/bench are built (and so kept
# compiling) by `make test`: each examples/bench/NAME.c against the library
# objects, and each NAME.cu with nvcc for one architecture, when nvcc is
# there, with the kernel file its name starts with (q4_matmul_cuda.cu ->
# kernels/cuda/matmul_q4.cu is named in the rule below).
EXAMPLES_C := $(sort $(wildcard examples/bench/*.c))
EXAMPLES := $(EXAMPLES_C:examples/bench/%.c=$(B)/examples/%) \
	$(if $(NVCC),$(B)/examples/q4_matmul_cuda)
examples: $(EXAMPLES)
$(B)/examples/%: examples/bench/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJ) $(LDFLAGS_ALL) $(LIBS)
$(B)/examples/q4_matmul_cuda: examples/bench/q4_matmul_cuda.cu kernels/cuda/matmul_q4.cu
	@mkdir -p $(@D)
	@echo "  NVCC    $@"
	$(Q)$(NVCC) -std=c++17 -O3 -Iruntime -Ikernels -arch=sm_$(firstword $(NVCC_ARCHS)) \
		-o $@ $^

# Stand-ins for libv100rt-cuda.so (see below).
FAKE_PLUGINS := $(B)/test_plugins/fake_cuda_ok.so $(B)/test_plugins/fake_cuda_bad.so \
	$(B)/test_plugins/fake_cuda_none.so
$(B)/unit_tests: $(TEST_OBJ) $(LIB_OBJ) $(REF_OBJ) $(FAKE_PLUGINS)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $(filter %.o,$^) $(LDFLAGS_ALL) $(LIBS)

# Stand-ins for libv100rt-cuda.so that test_ops.c loads to see the ABI
# check accept one and refuse the others: the binary's version, another
# version, no version symbol.
FAKE_PLUGIN_FLAGS_ok := -DFAKE_ABI_OFFSET=0
FAKE_PLUGIN_FLAGS_bad := -DFAKE_ABI_OFFSET=1
FAKE_PLUGIN_FLAGS_none := -DFAKE_NO_ABI
$(B)/test_plugins/fake_cuda_%.so: tests/unit/plugin/fake_cuda.c runtime/backend/backend.h \
		runtime/backend/ops.def
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE $(CWARN) -Iruntime -Ikernels -fPIC -shared \
		$(FAKE_PLUGIN_FLAGS_$*) -o $@ $<

# version.c carries the git revision: rebuilt on every make (cheap).
$(B)/runtime/core/version.o: FORCE

# The FFI part of vrt.h, embedded as a string (lua/v100rt/ffi.lua reads it).
$(B)/gen/vrt_cdef.c: runtime/vrt.h scripts/gen-cdef.awk
	@mkdir -p $(dir $@)
	$(Q)awk -f scripts/gen-cdef.awk $< > $@
$(B)/gen/vrt_cdef.o: $(B)/gen/vrt_cdef.c
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# The tokenizer `v100rt mkmodel` writes, embedded so that an installed
# binary needs no files from the source tree.
MKMODEL_TOK := tests/fixtures/tokenizers/sentencepiece
$(B)/gen/mkmodel_assets.c: $(MKMODEL_TOK)/tokenizer.json $(MKMODEL_TOK)/tokenizer_config.json \
		scripts/gen-assets.sh
	@mkdir -p $(dir $@)
	$(Q)sh scripts/gen-assets.sh vrt__asset_tokenizer_json=$(MKMODEL_TOK)/tokenizer.json \
		vrt__asset_tokenizer_config_json=$(MKMODEL_TOK)/tokenizer_config.json > $@.tmp
	$(Q)mv $@.tmp $@
$(B)/gen/mkmodel_assets.o: $(B)/gen/mkmodel_assets.c
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# The AVX2+FMA+F16C kernels: their own objects, called only on CPUs that
# have the features (kernels/cpu/isa.c), so the binary runs on any x86-64.
ifneq ($(filter x86_64%,$(shell $(CC) -dumpmachine)),)
$(B)/kernels/cpu/matmul_avx2.o $(B)/kernels/cpu/attn_avx2.o: ALL_CFLAGS += -mavx2 -mfma -mf16c
endif
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(B)/emu/%.o: %.cu kernels/emu/cuda_emu.h
	@mkdir -p $(dir $@)
	@echo "  CXX-EMU $<"
	$(Q)$(CXX) $(EMU_CXXFLAGS) $(OPT) -x c++ -include kernels/emu/cuda_emu.h -MMD -MP -c $< -o $@

$(B)/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	$(Q)$(CXX) $(EMU_CXXFLAGS) $(OPT) -MMD -MP -c $< -o $@

-include $(shell find build -name '*.d' 2>/dev/null)

# The runner's per-test timeout only catches hangs; sanitized code runs
# several times slower, so the asan variant gets a longer one.
test: v100rt $(B)/unit_tests examples
	@VRT_TEST_TIMEOUT=$${VRT_TEST_TIMEOUT:-$(if $(filter asan,$(VARIANT)),240,60)} \
	VRT_UNIT_TESTS=$(B)/unit_tests VRT_VARIANT=$(VARIANT) bash tests/run.sh

asan:
	@echo asan > .build-variant
	@$(MAKE) --no-print-directory VARIANT=asan all build/asan/unit_tests
	@echo "build variant is now asan (make release switches back)"

release:
	@rm -f .build-variant
	@$(MAKE) --no-print-directory all VARIANT=release

install: v100rt
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/v100rt/lua/v100rt \
		$(DESTDIR)$(PREFIX)/share/v100rt/configs
	install -m 755 v100rt $(DESTDIR)$(PREFIX)/bin/v100rt
	cd lua && find . -type d -exec install -d $(DESTDIR)$(PREFIX)/share/v100rt/lua/{} \;
	cd lua && find . -type f -name '*.lua' -exec install -m 644 {} $(DESTDIR)$(PREFIX)/share/v100rt/lua/{} \;
	install -m 644 configs/*.lua $(DESTDIR)$(PREFIX)/share/v100rt/configs/
	if [ -f libv100rt-cuda.so ]; then install -d $(DESTDIR)$(PREFIX)/lib/v100rt && \
		install -m 755 libv100rt-cuda.so $(DESTDIR)$(PREFIX)/lib/v100rt/; fi

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/v100rt $(DESTDIR)$(PREFIX)/share/v100rt \
		$(DESTDIR)$(PREFIX)/lib/v100rt

info:
	@echo "variant: $(VARIANT)"
	@echo "cc:      $(CC) ($(shell $(CC) -dumpversion))"
	@echo "nvcc:    $(if $(NVCC),$(NVCC),not found (CUDA backend not built))"

# Everything a newcomer needs, then the server on the demo model configs/tiny.lua
# points at (models-trained/kjv-tiny, committed; port 8080, or PORT=...).
# Recursive so that the build sees what deps installed.
serve:
	@bash scripts/deps.sh
	@$(MAKE) --no-print-directory all
	./v100rt serve configs/tiny.lua

# The HTTP load benchmark against a freshly started server; appends its
# table to examples/bench/RESULTS.md. BENCH_CONFIG / BENCH_ARGS adjust it.
bench: v100rt
	@bash scripts/bench.sh

# A random-weight model (a few MB) for tests and experiments: V100RT_MODEL=models/tiny.
demo-model: v100rt
	@if [ -f models/tiny/config.json ]; then \
		echo "models/tiny already exists (rm -r models/tiny to make it again)"; \
	else \
		./v100rt mkmodel --preset tiny --seed 1 models/tiny; \
	fi

check-configs: v100rt
	@for f in configs/*.lua; do ./v100rt check $$f >/dev/null || exit 1; echo "ok $$f"; done

# Regenerates the config reference embedded in README.md from the schema.
readme: v100rt
	@./v100rt help config > build/config-reference.md
	@awk 'FNR==NR { ref = ref $$0 "\n"; next } \
	     /<!-- config-reference:begin -->/ { print; printf "%s", ref; skip = 1; next } \
	     /<!-- config-reference:end -->/ { skip = 0 } !skip' build/config-reference.md README.md > build/README.new
	@mv build/README.new README.md
	@echo "README.md: config reference updated"

# ---- fuzzing
# Optional, needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev);
# not a build dependency. `make fuzz` builds the targets, `make fuzz-run`
# runs the safetensors header target for FUZZ_SECONDS on one process, with
# the seeds in tests/fuzz/corpus_st_header (new inputs go to build/fuzz/).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror \
	-Wno-unused-parameter -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Iruntime $(shell pkg-config --cflags libcjson 2>/dev/null)
FUZZ_LIBS    := $(shell pkg-config --libs libcjson 2>/dev/null) -lm
FUZZ_ST_SRC  := tests/fuzz/fuzz_st_header.c runtime/model/safetensors.c \
	runtime/core/err.c runtime/core/util.c

fuzz: build/fuzz/fuzz_st_header

build/fuzz/fuzz_st_header: $(FUZZ_ST_SRC) runtime/model/safetensors.h \
		runtime/core/err.h runtime/vrt.h
	@mkdir -p build/fuzz
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz: $(FUZZ_CC) \
	not found; install it with: sudo apt-get install clang libclang-rt-14-dev \
	(fuzzing is optional, the normal build does not need it)" >&2; exit 1; }
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ return 0; }\n' \
		> build/fuzz/probe.c
	@$(FUZZ_CC) -fsanitize=fuzzer build/fuzz/probe.c -o build/fuzz/probe \
		>/dev/null 2>&1 || { echo "make fuzz: $(FUZZ_CC) cannot link \
	-fsanitize=fuzzer (libFuzzer missing); install it with: sudo apt-get \
	install libclang-rt-14-dev" >&2; exit 1; }
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_ST_SRC) -o $@ $(FUZZ_LIBS)

fuzz-run: build/fuzz/fuzz_st_header
	@mkdir -p build/fuzz/corpus_st_header
	build/fuzz/fuzz_st_header -max_total_time=$(FUZZ_SECONDS) \
		-max_len=4096 -print_final_stats=1 -dict=tests/fuzz/st_header.dict \
		-artifact_prefix=build/fuzz/ \
		build/fuzz/corpus_st_header tests/fuzz/corpus_st_header

# ---- CUDA (nvcc)
# The same kernels/cuda/<op>.cu, compiled by nvcc for every arch from 70 to
# 90 that `nvcc --list-gpu-arch` offers, into build/$(VARIANT)/cuda/, and
# linked into the cuda backend below. CUDA 13 dropped sm_70: there this
# builds 75+ and says that the V100 needs CUDA <= 12.9.
NVCC_ARCHS := $(if $(NVCC),$(shell $(NVCC) --list-gpu-arch 2>/dev/null | \
	sed -n 's/^compute_\([0-9]*\)$$/\1/p' | awk '$$1 >= 70 && $$1 <= 90' | sort -n))
NVCC_GENCODE := $(foreach a,$(NVCC_ARCHS),-gencode arch=compute_$(a),code=sm_$(a))
NVCC_FLAGS := -std=c++17 -O3 -Iruntime -Ikernels -Werror all-warnings \
	-Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-parameter,-Werror
CUDA_OBJ := $(EMU_CU:kernels/cuda/%.cu=$(B)/cuda/%.o)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/,%,$(dir $(realpath $(NVCC)))))

# The cuda backend: the kernels as nvcc built them plus backend_cuda.c, in
# one shared object that ./v100rt loads at startup (device.kind = "cuda"
# or "auto"), so the binary itself needs no CUDA library. It carries its
# own gpu_ops.c and err.c and calls nothing in the binary; -Bsymbolic binds
# its kernel launchers to its own, not to the binary's cuda-emu ones. The
# binary checks its ABI version (vrt_cuda_backend_abi) when it loads it.
# Copied beside ./v100rt, where the binary looks first.
CUDA_SO := $(B)/libv100rt-cuda.so
cuda-so: $(CUDA_SO) libv100rt-cuda.so
libv100rt-cuda.so: $(CUDA_SO) FORCE
	@cmp -s $< $@ || cp $< $@
$(B)/cuda/backend_cuda.o: kernels/cuda/backend_cuda.c | $(B)/cuda/archs.txt
	@mkdir -p $(dir $@)
	@echo "  CC      $< (cuda)"
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -g -O2 -fPIC $(CWARN) -Iruntime -Ikernels \
		-isystem $(CUDA_HOME)/include -DVRT_CUDA_ARCHS='"$(NVCC_ARCHS)"' -MMD -MP -c $< -o $@
# The plugin's own copies of the shared GPU ops and the error functions:
# it calls nothing in ./v100rt (one-way), which the link checks.
CUDA_HOST_SRC := kernels/gpu/gpu_ops.c runtime/core/err.c
CUDA_HOST_OBJ := $(CUDA_HOST_SRC:%.c=$(B)/cuda/host/%.o)
$(B)/cuda/host/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (cuda plugin)"
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -g -O2 -fPIC $(CWARN) -Iruntime -Ikernels -MMD -MP -c $< -o $@
$(CUDA_SO): $(CUDA_OBJ) $(B)/cuda/backend_cuda.o $(CUDA_HOST_OBJ)
	@echo "  LD      $@"
	$(Q)$(NVCC) -shared -o $@ $^ -lcublas -Xlinker -Bsymbolic,--no-undefined-version
	$(Q)if nm -D --undefined-only $@ | grep -q ' vrt'; then echo "$@ calls into ./v100rt \
	(undefined: $$(nm -D --undefined-only $@ | grep ' vrt' | awk '{print $$2}' | tr '\n' ' ')); \
	the plugin must carry what it needs" >&2; rm -f $@; exit 1; fi

# Part of `make` when nvcc exists (about 15 s for all kernels on 2 cores,
# and only what changed is rebuilt); NVCC= turns it off.
cuda-objs: $(CUDA_OBJ)

cuda-check: $(if $(NVCC),cuda-objs)
	@if [ -z "$(NVCC)" ]; then echo "make cuda-check: nvcc not found (install the CUDA \
	toolkit, or set NVCC=/path/to/nvcc)" >&2; exit 1; fi
	@echo "cuda-check: $(words $(CUDA_OBJ)) kernel files compiled by $(NVCC) for \
	$(patsubst %,sm_%,$(NVCC_ARCHS))"

# Says once per build tree which archs this nvcc builds (and when sm_70 is
# missing, that the V100 needs an older toolkit).
$(B)/cuda/archs.txt:
	@mkdir -p $(dir $@)
	@echo "nvcc: $(NVCC), archs: $(NVCC_ARCHS)"
	@case " $(NVCC_ARCHS) " in *" 70 "*) ;; *) echo "note: this nvcc cannot build sm_70: \
	the V100 needs CUDA <= 12.9 (see docs/design.md, CUDA without a GPU); building $(NVCC_ARCHS)";; esac
	@echo "$(NVCC_ARCHS)" > $@

$(B)/cuda/%.o: kernels/cuda/%.cu $(wildcard kernels/cuda/*.cuh kernels/cuda/*.h) \
		| $(B)/cuda/archs.txt
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) $(NVCC_FLAGS) $(NVCC_GENCODE) -c $< -o $@

# ---- sm_70 (V100) check with Debian's CUDA 11.8: `make check-sm70`
# CUDA 13 has dropped Volta, so the installed nvcc cannot prove the kernels
# still build for sm_70. This installs bookworm's nvidia-cuda-toolkit 11.8
# (non-free, about 2.5 GB; scripts/cuda118.sh, needs root or sudo, does
# nothing when it is there), compiles every kernels/cuda/*.cu with its
# /usr/bin/nvcc for -arch=sm_70 into build/sm70/, and checks with cuobjdump
# that each object holds an sm_70 cubin. Not part of `make`, `make test` or
# CI (too big to install there). 11.8 needs an older host compiler (clang-14,
# else g++-11). nvcc finds ptxas through PATH, and Debian's is /usr/bin/ptxas:
# /usr/lib/nvidia-cuda-toolkit/bin and /usr/bin go first, before
# /usr/local/cuda/bin and /usr/local/bin (which may hold a ptxas shim), or
# CUDA 13's ptxas is picked up and rejects sm_70 (docs/design.md, CUDA without a GPU).
SM70_NVCC  := /usr/bin/nvcc
SM70_PATH  := /usr/lib/nvidia-cuda-toolkit/bin:/usr/bin:$(PATH)
SM70_CCBIN  = $(shell command -v clang-14 2>/dev/null || command -v g++-11 2>/dev/null)
SM70_FLAGS := -arch=sm_70 -std=c++17 -O3 -Iruntime -Ikernels -Werror all-warnings \
	-Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-parameter,-Werror
SM70_OBJ   := $(EMU_CU:kernels/cuda/%.cu=build/sm70/%.o)
# The host compiler searches /usr/local/include before /usr/include, and a
# machine with CUDA 13 may link its headers there (crt/host_runtime.h of 13
# breaks 11.8's stubs): build/sm70/include links each name found in both to
# /usr/include (Debian's 11.8 headers), and goes first with -isystem.
SM70_INC   := build/sm70/include

check-sm70:
	@bash scripts/cuda118.sh
	@$(MAKE) --no-print-directory sm70-objs build/sm70/libv100rt-cuda.so
	@export PATH="$(SM70_PATH)"; n=0; bad=""; \
	for o in $(SM70_OBJ); do \
		if cuobjdump --list-elf $$o 2>/dev/null | grep -q 'sm_70'; then n=$$((n+1)); \
		else bad="$$bad $$o"; fi; \
	done; \
	if [ -n "$$bad" ]; then echo "check-sm70: no sm_70 cubin in:$$bad" >&2; exit 1; fi; \
	echo "check-sm70: $$n/$(words $(SM70_OBJ)) kernel files have an sm_70 cubin \
	($$($(SM70_NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/CUDA \1/p'), \
	-ccbin $(notdir $(SM70_CCBIN)))"
	@export PATH="$(SM70_PATH)"; cuobjdump --list-elf build/sm70/libv100rt-cuda.so | grep -q sm_70 && \
	nm -D build/sm70/libv100rt-cuda.so | grep -q ' T vrt_cuda_backend_create' || \
	{ echo "check-sm70: build/sm70/libv100rt-cuda.so has no sm_70 code or no entry point" >&2; \
	exit 1; }; echo "check-sm70: build/sm70/libv100rt-cuda.so (the whole cuda backend, \
	$$(ldd build/sm70/libv100rt-cuda.so | grep -o 'libcublas.so.[0-9]*' | head -1)) built for sm_70"

sm70-objs: $(SM70_OBJ)

# The whole cuda backend for the V100, from the same sources: backend_cuda.c
# against the 11.8 headers (Debian's /usr/bin/gcc: the toolkit's bin dir
# holds a gcc wrapper that refuses unsupported versions).
build/sm70/backend_cuda.o: kernels/cuda/backend_cuda.c | $(SM70_INC)/.stamp
	@mkdir -p $(dir $@)
	@echo "  CC70    $<"
	$(Q)/usr/bin/gcc -std=c11 -D_GNU_SOURCE -O2 -fPIC $(CWARN) -Iruntime -Ikernels \
		-isystem $(SM70_INC) -DVRT_CUDA_ARCHS='"70"' -c $< -o $@
build/sm70/host/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC70    $<"
	$(Q)/usr/bin/gcc -std=c11 -D_GNU_SOURCE -O2 -fPIC $(CWARN) -Iruntime -Ikernels -c $< -o $@
build/sm70/libv100rt-cuda.so: $(SM70_OBJ) build/sm70/backend_cuda.o \
		$(CUDA_HOST_SRC:%.c=build/sm70/host/%.o)
	@echo "  LD70    $@"
	$(Q)PATH="$(SM70_PATH)" $(SM70_NVCC) -ccbin $(SM70_CCBIN) -shared -arch=sm_70 -o $@ $^ \
		-lcublas -Xlinker -Bsymbolic

$(SM70_INC)/.stamp:
	@rm -rf $(SM70_INC) && mkdir -p $(SM70_INC)
	@for f in /usr/local/include/*; do n=$${f##*/}; \
		if [ -e "/usr/include/$$n" ]; then ln -s "/usr/include/$$n" "$(SM70_INC)/$$n"; fi; \
	done; touch $@

build/sm70/%.o: kernels/cuda/%.cu $(wildcard kernels/cuda/*.cuh kernels/cuda/*.h) \
		| $(SM70_INC)/.stamp
	@mkdir -p $(dir $@)
	@echo "  NVCC70  $<"
	$(Q)PATH="$(SM70_PATH)" $(SM70_NVCC) -ccbin $(SM70_CCBIN) -isystem $(SM70_INC) $(SM70_FLAGS) \
		-c $< -o $@

# The C, C++ and CUDA sources clang-format keeps in the repository's style
# (.clang-format); tests/cli/test_format.sh runs fmt-check in `make test`.
FMT_SRC = $(shell find runtime kernels tests examples -type f \( -name '*.[ch]' -o -name '*.cc' \
	-o -name '*.cu' -o -name '*.cuh' \) ! -path 'tests/fixtures/*' | sort)
fmt:
	clang-format -i $(FMT_SRC)
fmt-check:
	@clang-format --dry-run --Werror $(FMT_SRC) && \
	echo "fmt-check: $(words $(FMT_SRC)) files formatted as .clang-format says"

clean:
	rm -rf build v100rt libv100rt-cuda.so
