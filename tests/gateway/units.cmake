# Unit tests of gateway/ modules: one executable and one add_test() each
# (STYLE rule 14), no network. Include from tests/gateway/CMakeLists.txt;
# paths are relative to this file.
# SPDX-License-Identifier: MIT
add_executable(test_outq ${CMAKE_CURRENT_LIST_DIR}/test_outq.c)
target_link_libraries(test_outq PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_outq COMMAND test_outq)

add_executable(test_hub ${CMAKE_CURRENT_LIST_DIR}/test_hub.c)
target_link_libraries(test_hub PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_hub COMMAND test_hub)

add_executable(test_proto ${CMAKE_CURRENT_LIST_DIR}/test_proto.c)
target_link_libraries(test_proto PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_proto COMMAND test_proto)

add_executable(test_conn ${CMAKE_CURRENT_LIST_DIR}/test_conn.c)
target_link_libraries(test_conn PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_conn COMMAND test_conn)

add_executable(test_metrics ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c)
target_link_libraries(test_metrics PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_metrics COMMAND test_metrics)

add_executable(test_admin ${CMAKE_CURRENT_LIST_DIR}/test_admin.c)
target_link_libraries(test_admin PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_admin COMMAND test_admin)

add_executable(test_agg ${CMAKE_CURRENT_LIST_DIR}/test_agg.c)
target_link_libraries(test_agg PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_agg COMMAND test_agg)

# test_wchan runs a real libuv loop over a socketpair (no network).
add_executable(test_wchan ${CMAKE_CURRENT_LIST_DIR}/test_wchan.c)
target_link_libraries(test_wchan PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_wchan COMMAND test_wchan)

add_executable(test_srclimit ${CMAKE_CURRENT_LIST_DIR}/test_srclimit.c)
target_link_libraries(test_srclimit PRIVATE rc_gateway PkgConfig::CMOCKA)
add_test(NAME test_srclimit COMMAND test_srclimit)
