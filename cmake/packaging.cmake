# CPack: two Debian packages (and two tarballs), one per install component.
#   libfuture0     (component runtime): the shared library; Depends on libc6
#                  as dpkg-shlibdeps computes it; ships a shlibs file and
#                  the ldconfig trigger.
#   libfuture-dev  (component dev): headers, static library, libfuture.so,
#                  libfuture.pc, the CMake package, man pages, HTML;
#                  Depends on libfuture0 of the same version.
#   cd build && cpack -G DEB      (or -G TGZ; both by default)
# tests/register_deb.cmake builds the .debs, extracts them into a scratch
# root and builds a consumer against it.
set(CPACK_PACKAGE_NAME libfuture)
set(CPACK_PACKAGE_VENDOR "libfuture")
set(CPACK_PACKAGE_CONTACT "libfuture maintainers <libfuture@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "asyncio's core in C for Linux: event loop, futures, tasks, executors")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR "DEB;TGZ")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL runtime dev)

# Debian
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libfuture0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# The libc6 dependency as dpkg-shlibdeps computes it from the symbols the
# library uses (dpkg-dev); without it, an unversioned libc6.
find_program(FUT_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(FUT_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "libc6")
endif()
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # only libfuture0 has a library
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
  "asyncio's core in C for Linux: the shared library (${FUT_SONAME})")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libfuture-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libfuture0 (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "asyncio's core in C for Linux: headers, static library, pkg-config and CMake files, man pages and HTML reference")

# Tarballs: one per component as well.
set(CPACK_ARCHIVE_COMPONENT_INSTALL ON)
set(CPACK_ARCHIVE_RUNTIME_FILE_NAME "libfuture0_${PROJECT_VERSION}_${CMAKE_SYSTEM_PROCESSOR}")
set(CPACK_ARCHIVE_DEV_FILE_NAME "libfuture-dev_${PROJECT_VERSION}_${CMAKE_SYSTEM_PROCESSOR}")

include(CPack)
cpack_add_component(runtime DISPLAY_NAME "Shared library")
cpack_add_component(dev DISPLAY_NAME "Development files" DEPENDS runtime)
