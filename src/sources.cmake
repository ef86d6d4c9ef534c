# The library's layers, lowest first: each folder of src/ may include only
# its own private header and those of the folders before it (files directly
# in src/ are the top and may include any).  This list is the one place the
# order is written: the build and the layering check
# (cmake/check_layers.cmake) both read it.  docs/architecture.md explains it.
set(FUT_LAYERS base loop future task exec procpool sync net signal process)

# The sources of each layer.  The task context switch's assembly is added
# by cmake/context.cmake.
set(FUT_SOURCES_base alloc.c errors.c fork.c slab.c value.c)
set(FUT_SOURCES_loop ctxcall.c door.c epoll.c handle.c io.c loop.c ready.c
    timer.c)
set(FUT_SOURCES_future as_completed.c combine.c future.c gather.c
    run_until_complete.c shield.c then.c wait.c)
set(FUT_SOURCES_task await.c compact.c ctx_ucontext.c stack.c stack_guard.c task.c timeout.c)
set(FUT_SOURCES_exec cfuture.c cfuture_wait.c executor.c inbox.c
    run_in_executor.c thread_pool.c)
set(FUT_SOURCES_procpool dispatch.c executor.c forkserver.c frames.c
    manager.c pool.c receive.c worker.c)
# sync: three groups of files, one line each.
set(FUT_SYNC_LOCKS barrier.c condition.c event.c lock.c semaphore.c waiters.c)
set(FUT_SYNC_QUEUES queue.c)
set(FUT_SYNC_GROUPS ctxvar.c taskgroup.c threadsafe.c)
set(FUT_SOURCES_sync ${FUT_SYNC_LOCKS} ${FUT_SYNC_QUEUES} ${FUT_SYNC_GROUPS})
set(FUT_SOURCES_net addr.c connect.c datagram.c dns.c listen.c net.c sendfile.c
    server.c sock.c stream.c transport.c transport_sendfile.c wait_fd.c)
set(FUT_SOURCES_signal signal.c wakeup.c)
set(FUT_SOURCES_process communicate.c process.c spawn.c watcher.c)
set(FUT_SOURCES_top run.c)

set(FUT_SOURCES "")
foreach(layer ${FUT_LAYERS})
  foreach(f ${FUT_SOURCES_${layer}})
    list(APPEND FUT_SOURCES ${CMAKE_CURRENT_LIST_DIR}/${layer}/${f})
  endforeach()
endforeach()
foreach(f ${FUT_SOURCES_top})
  list(APPEND FUT_SOURCES ${CMAKE_CURRENT_LIST_DIR}/${f})
endforeach()
