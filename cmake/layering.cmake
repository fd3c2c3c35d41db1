# The house's one-way links, declared once. Each folder is one library (cli/ is the executable) and
# names the folders it links directly; what it may include is everything those reach. Two checks:
#   lorakit_check_links()    at configure time: every lorakit_* in a target's target_link_libraries
#                            must be declared here (so a new link is a reviewed edit of this file);
#   lorakit_check_includes() at configure time and as the ctest test `layering` (cmake -P this
#                            file): no file includes a header of a folder its folder cannot reach,
#                            e.g. trainer/ never includes inference/, export/ or sweep/.
if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  cmake_minimum_required(VERSION 3.25)  # the policies of the project's own configure
endif()

set(LORAKIT_LAYERS
  "core:"
  "quant:core"
  "models:core,quant"
  "lora:models"
  "checkpoints:lora,models,core"
  "tokenizers:core"
  "data:tokenizers"
  "device:data,models"
  "trainer:data,checkpoints,device"
  "inference:data,models,device"
  "export:checkpoints,device"
  "sweep:trainer,inference"
  "cli:sweep,export")

# LORAKIT_DIRECT_<folder> and LORAKIT_REACH_<folder> (transitive) in the caller's scope.
macro(lorakit_read_layers)
  set(LORAKIT_FOLDERS "")
  foreach(entry IN LISTS LORAKIT_LAYERS)
    string(REPLACE ":" ";" parts "${entry}")
    list(GET parts 0 folder)
    list(LENGTH parts n)
    set(LORAKIT_DIRECT_${folder} "")
    if(n GREATER 1)
      list(GET parts 1 deps)
      string(REPLACE "," ";" LORAKIT_DIRECT_${folder} "${deps}")
    endif()
    list(APPEND LORAKIT_FOLDERS ${folder})
  endforeach()
  # Declared bottom-up, so one pass gives the closure.
  foreach(folder IN LISTS LORAKIT_FOLDERS)
    set(LORAKIT_REACH_${folder} "")
    foreach(dep IN LISTS LORAKIT_DIRECT_${folder})
      if(NOT DEFINED LORAKIT_REACH_${dep})
        message(FATAL_ERROR "cmake/layering.cmake: ${folder} names ${dep}, which is not declared above it")
      endif()
      list(APPEND LORAKIT_REACH_${folder} ${dep} ${LORAKIT_REACH_${dep}})
    endforeach()
    list(REMOVE_DUPLICATES LORAKIT_REACH_${folder})
  endforeach()
endmacro()

function(lorakit_check_links)
  lorakit_read_layers()
  set(problems "")
  foreach(folder IN LISTS LORAKIT_FOLDERS)
    set(target lorakit_${folder})
    if(folder STREQUAL "cli")
      set(target lorakit)
    endif()
    if(NOT TARGET ${target})
      string(APPEND problems "\n  ${folder}/: no target ${target}")
      continue()
    endif()
    get_target_property(links ${target} LINK_LIBRARIES)
    foreach(link IN LISTS links)
      if(link MATCHES "^lorakit_(.+)$")
        list(FIND LORAKIT_DIRECT_${folder} "${CMAKE_MATCH_1}" found)
        if(found EQUAL -1)
          string(APPEND problems "\n  ${target} links ${link}, but ${folder}/ may link only: ${LORAKIT_DIRECT_${folder}}")
        endif()
      endif()
    endforeach()
  endforeach()
  if(problems)
    message(FATAL_ERROR "links against the layering in cmake/layering.cmake:${problems}\n"
                        "hint: a helper two siblings need goes down to a library both already link")
  endif()
endfunction()

function(lorakit_check_includes source_dir)
  lorakit_read_layers()
  set(problems "")
  set(checked 0)
  foreach(folder IN LISTS LORAKIT_FOLDERS)
    file(GLOB files "${source_dir}/${folder}/*.h" "${source_dir}/${folder}/*.cpp")
    foreach(file IN LISTS files)
      math(EXPR checked "${checked} + 1")
      file(STRINGS "${file}" lines REGEX "^#include \"[a-z_]+/")
      foreach(line IN LISTS lines)
        string(REGEX REPLACE "^#include \"([a-z_]+)/.*$" "\\1" used "${line}")
        if(used STREQUAL folder OR NOT used IN_LIST LORAKIT_FOLDERS)
          continue()
        endif()
        if(NOT used IN_LIST LORAKIT_REACH_${folder})
          file(RELATIVE_PATH rel "${source_dir}" "${file}")
          string(APPEND problems "\n  ${rel}: ${line}: ${folder}/ may use only: ${LORAKIT_REACH_${folder}}")
        endif()
      endforeach()
    endforeach()
  endforeach()
  if(problems)
    message(FATAL_ERROR "includes against the layering in cmake/layering.cmake:${problems}\n"
                        "hint: a helper two siblings need goes down to a library both already link")
  endif()
  if(checked LESS 50)
    message(FATAL_ERROR "layering: only ${checked} files found under ${source_dir}; is that the source tree?")
  endif()
  message(STATUS "layering: ${checked} files in ${LORAKIT_FOLDERS} include only what their folder may use")
endfunction()

# `cmake -DLORAKIT_SOURCE_DIR=DIR -P cmake/layering.cmake`: the include check alone (the ctest test).
if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  lorakit_check_includes("${LORAKIT_SOURCE_DIR}")
endif()
