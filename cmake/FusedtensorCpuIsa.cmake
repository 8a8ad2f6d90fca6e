# How fusedtensor's CPU loops meet the machine's vector instructions (include/ft/core/config.hpp):
#   FT_CPU_ISA=host (the default): each loop compiled once, for the instruction set of the
#     machine that configures the build (x86-64-v4: AVX-512; x86-64-v3: AVX2+FMA; else the
#     baseline), through a target attribute on the loops alone. A third of the compile time of
#     `portable`, the same code on this machine; a binary built so stops at start-up, saying
#     why, on a CPU without that instruction set.
#   FT_CPU_ISA=portable: each loop compiled three times (AVX-512, AVX2, baseline) and the best
#     one picked when the program loads: for binaries that run on other machines.
# Included by the source tree's CMakeLists.txt and by the installed fusedtensorConfig.cmake, so
# the machine that builds the user's program decides, not the one that installed the headers.
set(FT_CPU_ISA host CACHE STRING "fusedtensor's CPU loops: host (once, for this machine's ISA) or portable (three ISA clones)")
set_property(CACHE FT_CPU_ISA PROPERTY STRINGS host portable)

# The x86-64 level of this machine (4, 3, or 1 for the baseline or an unknown CPU) from the
# flags Linux lists in /proc/cpuinfo (LZCNT is `abm` there).
function(ft_cpu_host_isa_level out)
  set(level 1)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64)$" AND NOT CMAKE_CROSSCOMPILING AND EXISTS /proc/cpuinfo)
    file(STRINGS /proc/cpuinfo cpu_flags REGEX "^flags" LIMIT_COUNT 1)
    set(has_v3 ON)
    foreach(flag avx avx2 bmi1 bmi2 f16c fma abm movbe xsave)
      if(NOT cpu_flags MATCHES " ${flag}( |$)")
        set(has_v3 OFF)
      endif()
    endforeach()
    set(has_v4 ${has_v3})
    foreach(flag avx512f avx512bw avx512cd avx512dq avx512vl)
      if(NOT cpu_flags MATCHES " ${flag}( |$)")
        set(has_v4 OFF)
      endif()
    endforeach()
    if(has_v4)
      set(level 4)
    elseif(has_v3)
      set(level 3)
    endif()
  endif()
  set(${out} ${level} PARENT_SCOPE)
endfunction()

# Adds FT_CPU_HOST_ISA=<level> to `target`'s interface when FT_CPU_ISA is host. `wrap` is a
# generator expression's head such as "BUILD_INTERFACE" (the source tree's target must not
# export this machine's level to an installed package), or empty.
function(ft_apply_cpu_isa target wrap)
  if(FT_CPU_ISA STREQUAL "host")
    ft_cpu_host_isa_level(level)
    set(def FT_CPU_HOST_ISA=${level})
    if(wrap)
      set(def "$<${wrap}:${def}>")
    endif()
    set_property(TARGET ${target} APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS "${def}")
    message(STATUS "fusedtensor: CPU loops for this machine's ISA (FT_CPU_ISA=host, x86-64 level ${level})")
  elseif(FT_CPU_ISA STREQUAL "portable")
    message(STATUS "fusedtensor: CPU loops in three ISA clones picked at load time (FT_CPU_ISA=portable)")
  else()
    message(FATAL_ERROR "fusedtensor: FT_CPU_ISA is '${FT_CPU_ISA}'; it must be host or portable")
  endif()
endfunction()
