# Turns a text file into a C source that defines one string constant with
# its bytes: cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_text.cmake
# Used at build time (adapter/ and gateway/CMakeLists.txt); the output lives
# in the build directory only.
# SPDX-License-Identifier: MIT
file(READ "${IN}" text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
# "??" would start a trigraph in ISO C mode.
string(REPLACE "?" "\\?" text "${text}")
string(REPLACE "\t" "\\t" text "${text}")
string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
file(WRITE "${OUT}"
  "/* Generated from ${IN} at build time: do not edit. */\n"
  "extern const char ${NAME}[];\n"
  "const char ${NAME}[] =\n    \"${text}\";\n")
