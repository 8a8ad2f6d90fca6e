# Separate compilation (include/ft/core/config.hpp): the library's non-template parts and its
# fixed instantiations (the optimizers' steps, gradient clipping, ...) compiled once per build
# tree, into a static library that the configuration's target links, instead of in every file
# that includes them. Used by the source tree's CMakeLists.txt and by the installed package's
# fusedtensorConfig.cmake, which builds the library in the consumer's project (with its compiler
# and flags, as the headers are).
# Off by default with clang before 18: it cannot compile the library's out-of-line definitions
# (a floating-point template argument, a constrained constructor defined outside its class);
# the headers alone it compiles.
set(FT_SEPARATE_COMPILATION_DEFAULT ON)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 18)
  set(FT_SEPARATE_COMPILATION_DEFAULT OFF)
endif()
option(FT_SEPARATE_COMPILATION
       "Compile fusedtensor's non-template parts once, into a static library that ft::ft links (OFF: header-only)"
       ${FT_SEPARATE_COMPILATION_DEFAULT})

# ft_add_compiled_library(<target> <library> <source> <wrap> <usage>...): builds <library> from
# <source> with the usage requirements of the <usage> targets, and makes <target> (ft::ft or
# ft::ft_cuda) link it and define FT_SEPARATE_COMPILATION. <wrap> is a generator expression's head
# such as "BUILD_INTERFACE" (an installed package must not name a library of the build tree), or
# empty. The library is built only when something links it (EXCLUDE_FROM_ALL), position-
# independent so that shared libraries may link it too.
function(ft_add_compiled_library target library source wrap)
  add_library(${library} STATIC EXCLUDE_FROM_ALL ${source})
  target_link_libraries(${library} PUBLIC ${ARGN})
  target_compile_definitions(${library} PRIVATE FT_BUILDING_LIBRARY)
  set_target_properties(${library} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set(lib ${library})
  set(def FT_SEPARATE_COMPILATION)
  if(wrap)
    set(lib "$<${wrap}:${lib}>")
    set(def "$<${wrap}:${def}>")
  endif()
  set_property(TARGET ${target} APPEND PROPERTY INTERFACE_LINK_LIBRARIES "${lib}")
  set_property(TARGET ${target} APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS "${def}")
endfunction()
