# The one definition of the C flags of tachyon, for every build of the core:
# the library and C tests (csrc/Makefile), the C benchmarks
# (benchmarks/Makefile, which also builds the Python benchmarks' C producer)
# and the Python extension (setup.py).
#
# The Makefiles include this file; setup.py reads it with a small parser that
# understands exactly the form used here and refuses any other line, so keep
# to it:
#   NAME := words          one assignment a line
#   $(NAME)                may refer to a name assigned above it
#   # ...                  comment lines; blank lines
# No conditionals, no +=, no continuation lines.
#
# A flavour F has TACHYON_CFLAGS_F (compile) and TACHYON_LDFLAGS_F (link).
# Nothing here has -Werror: a new compiler's new warning must not break a
# user's pip install. CI reads the warnings.

TACHYON_STD  := -std=c11 -D_GNU_SOURCE
TACHYON_WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# Hidden by default: the extension exports only PyInit__core, and no core
# helper can clash with a symbol of the program that links the archive.
TACHYON_BASE := $(TACHYON_STD) $(TACHYON_WARN) -fvisibility=hidden -g

# The optimised build. Link-time optimisation lets the bus calls inline the
# ring-end calls they wrap (reserve, peek, release live in another file):
# callgrind counts about a quarter fewer instructions a message in C and
# 5-10% fewer on the extension's calls.
TACHYON_CFLAGS_release  := $(TACHYON_BASE) -O2 -flto=auto
TACHYON_LDFLAGS_release := -O2 -flto=auto

# AddressSanitizer and UndefinedBehaviorSanitizer together; the first report
# stops the program, so no finding scrolls past unnoticed.
TACHYON_CFLAGS_asan  := $(TACHYON_BASE) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
TACHYON_LDFLAGS_asan := -fsanitize=address,undefined

# ThreadSanitizer. TACHYON_TSAN=1 makes the core express its full fence in a
# form the detector models (gcc's TSan ignores atomic_thread_fence).
TACHYON_CFLAGS_tsan  := $(TACHYON_BASE) -O1 -fno-omit-frame-pointer -fsanitize=thread -DTACHYON_TSAN=1
TACHYON_LDFLAGS_tsan := -fsanitize=thread

# For a debugger: no optimisation, assertions on.
TACHYON_CFLAGS_debug  := $(TACHYON_BASE) -O0 -UNDEBUG
TACHYON_LDFLAGS_debug :=

# libFuzzer targets (clang only); the core is compiled into each target so it
# is instrumented too. UBSan findings stop the run; ASan's always do.
TACHYON_CFLAGS_fuzz  := $(TACHYON_BASE) -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
TACHYON_LDFLAGS_fuzz := -fsanitize=fuzzer,address,undefined

# Opt-in only (TACHYON_NATIVE=1 for setup.py): a wheel built with it runs
# only on CPUs like the build machine's.
TACHYON_NATIVE := -march=native
