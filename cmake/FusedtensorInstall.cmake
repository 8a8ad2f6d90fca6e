# cmake --install support: headers, the targets, the compiled-once part's sources and a
# fusedtensorConfig.cmake so that downstream projects can find_package(fusedtensor CONFIG).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ft DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/data/digits.csv.gz ${PROJECT_SOURCE_DIR}/data/words.txt.gz
              ${PROJECT_SOURCE_DIR}/data/words.COPYRIGHT ${PROJECT_SOURCE_DIR}/data/README.md
  DESTINATION ${CMAKE_INSTALL_DATADIR}/fusedtensor)
install(TARGETS fusedtensor_headers fusedtensor EXPORT fusedtensorTargets)
if(FT_HAS_CUDA)
  install(TARGETS fusedtensor_cuda_headers fusedtensor_cuda EXPORT fusedtensorTargets)
endif()
# the compiled-once part's sources: the package config builds them in the consumer's project
install(FILES ${PROJECT_SOURCE_DIR}/src/fusedtensor.cpp ${PROJECT_SOURCE_DIR}/src/fusedtensor_cuda.cu
  DESTINATION ${CMAKE_INSTALL_DATADIR}/fusedtensor/src)
if(TARGET fusedtensor_distributed)
  install(TARGETS fusedtensor_distributed EXPORT fusedtensorTargets)
endif()
if(TARGET fusedtensor_distributed_cuda)
  install(TARGETS fusedtensor_distributed_cuda EXPORT fusedtensorTargets)
endif()
install(EXPORT fusedtensorTargets NAMESPACE ft:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fusedtensor)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/fusedtensorConfig.cmake.in
  ${PROJECT_BINARY_DIR}/fusedtensorConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fusedtensor PATH_VARS CMAKE_INSTALL_DATADIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fusedtensorConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/fusedtensorConfig.cmake ${PROJECT_BINARY_DIR}/fusedtensorConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FusedtensorCpuIsa.cmake ${PROJECT_SOURCE_DIR}/cmake/FusedtensorCompiled.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fusedtensor)
