# The library's sources, layer by layer (docs/architecture.md): each folder
# depends only on the folders listed before it.  The task context switch's
# assembly is added by cmake/context.cmake.
set(FUT_SOURCES_BASE alloc.c errors.c fork.c slab.c value.c)
set(FUT_SOURCES_LOOP door.c epoll.c io.c loop.c ready.c timer.c)
set(FUT_SOURCES_FUTURE combine.c future.c run_until_complete.c)
set(FUT_SOURCES_TASK ctx_ucontext.c stack.c task.c timeout.c)
set(FUT_SOURCES_EXEC cfuture.c cfuture_wait.c executor.c inbox.c
    run_in_executor.c thread_pool.c)
set(FUT_SOURCES_PROCPOOL executor.c forkserver.c frames.c manager.c pool.c
    worker.c)

set(FUT_SOURCES ${CMAKE_CURRENT_LIST_DIR}/run.c)
foreach(layer BASE LOOP FUTURE TASK EXEC PROCPOOL)
  string(TOLOWER ${layer} dir)
  foreach(f ${FUT_SOURCES_${layer}})
    list(APPEND FUT_SOURCES ${CMAKE_CURRENT_LIST_DIR}/${dir}/${f})
  endforeach()
endforeach()
