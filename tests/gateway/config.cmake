# test_config: unit tests of gateway/config.c. config.c, config_keys.c and
# config_values.c are compiled in directly so the test does not wait on the rc_gateway
# library.
# Include from any CMakeLists.txt: paths are relative to this file.
# SPDX-License-Identifier: MIT
add_executable(test_config
               ${CMAKE_CURRENT_LIST_DIR}/../../gateway/config.c
               ${CMAKE_CURRENT_LIST_DIR}/../../gateway/config_keys.c
               ${CMAKE_CURRENT_LIST_DIR}/../../gateway/config_values.c
               ${CMAKE_CURRENT_LIST_DIR}/test_config.c)
target_link_libraries(test_config PRIVATE rc_common PkgConfig::JANSSON PkgConfig::SSL
                      PkgConfig::CMOCKA)
add_test(NAME test_config COMMAND test_config)
