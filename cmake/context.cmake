# Task context switch selection (DESIGN.md §7): per-architecture assembly
# where we have it, else the ucontext fallback.  FUT_CONTEXT = auto | asm |
# ucontext.  src/task/ctx_ucontext.c is always in the source list and
# compiles to nothing unless FUT_CTX_UCONTEXT is defined.
set(_fut_ctx_arch "")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(_fut_ctx_arch x86_64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(_fut_ctx_arch aarch64)
endif()

set(_fut_ctx ${FUT_CONTEXT})
if(_fut_ctx STREQUAL "auto")
  if(_fut_ctx_arch)
    set(_fut_ctx asm)
  else()
    set(_fut_ctx ucontext)
  endif()
endif()

if(_fut_ctx STREQUAL "asm")
  if(NOT _fut_ctx_arch)
    message(FATAL_ERROR "FUT_CONTEXT=asm: no context switch in assembly for "
      "${CMAKE_SYSTEM_PROCESSOR}; use FUT_CONTEXT=ucontext")
  endif()
  enable_language(ASM)
  list(APPEND FUT_EXTRA_SOURCES
    ${PROJECT_SOURCE_DIR}/src/task/ctx_${_fut_ctx_arch}.S)
  list(APPEND FUT_EXTRA_DEFINITIONS FUT_CTX_ASM=1)
elseif(_fut_ctx STREQUAL "ucontext")
  list(APPEND FUT_EXTRA_DEFINITIONS FUT_CTX_UCONTEXT=1)
else()
  message(FATAL_ERROR "FUT_CONTEXT must be auto, asm or ucontext, not "
    "'${FUT_CONTEXT}'")
endif()
message(STATUS "libfuture: task context switch: ${_fut_ctx} "
  "(${CMAKE_SYSTEM_PROCESSOR})")

