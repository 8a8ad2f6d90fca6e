# Builds and runs the consumer program one way: MODE is bare, add_subdirectory or find_package.
set(work ${BINARY_DIR}/consumer_${MODE})
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
if(MODE STREQUAL "bare")
  # a plain g++ with only -I include: no CMake, no OpenMP, no CUDA headers
  run(${CXX} -std=c++20 -O1 -I${SOURCE_DIR}/include ${SOURCE_DIR}/tests/consumer/main.cpp -o ${work}/consumer)
elseif(MODE STREQUAL "add_subdirectory")
  # Release unoptimised: a check of the build model (the compiled-once part is built here too), not
  # of speed (-O1: 73 CPU-s of the library and main.cpp in CI's build, each way)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/add_subdirectory -B ${work}/build -G Ninja
      -DFUSEDTENSOR_DIR=${SOURCE_DIR} -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O0 -DNDEBUG")
  run(${CMAKE_COMMAND} --build ${work}/build)
  file(COPY ${work}/build/consumer DESTINATION ${work})
elseif(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install ${PROJECT_BINARY_DIR} --prefix ${work}/prefix)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/find_package -B ${work}/build -G Ninja
      -DCMAKE_PREFIX_PATH=${work}/prefix -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O0 -DNDEBUG")
  run(${CMAKE_COMMAND} --build ${work}/build)
  file(COPY ${work}/build/consumer DESTINATION ${work})
elseif(MODE STREQUAL "mixed")
  # g++ and nvcc files in one CUDA program (tests/consumer/mixed): it builds and trains on the
  # CPU here; a file of the other configuration must fail to link against it
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/mixed -B ${work}/build -G Ninja
      -DFUSEDTENSOR_DIR=${SOURCE_DIR} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}
      -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES} -DFT_CONSUMER_CUDA_QUICK=${CUDA_QUICK})
  run(${CMAKE_COMMAND} --build ${work}/build --target consumer_mixed)
  file(COPY ${work}/build/consumer_mixed DESTINATION ${work})
  file(RENAME ${work}/consumer_mixed ${work}/consumer)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${work}/build --target mismatch
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "a file built for the CPU configuration linked against the CUDA configuration's model.cu")
  endif()
  if(NOT "${out}${err}" MATCHES "undefined reference to `make_model\\(ft::abi_cpu::Device\\)'")
    message(FATAL_ERROR "mismatch failed for another reason than the configurations' names:\n${out}${err}")
  endif()
  message("mismatched configurations fail to link, as they should")
endif()
run(${work}/consumer)
