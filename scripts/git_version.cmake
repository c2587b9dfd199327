# Writes OUT, a C file defining ds_git_version() as `git describe` of SRC, at
# every build (the build's custom target ds_git_version runs it), and
# rewrites it only when the text changes, so an unchanged tree rebuilds
# nothing. A version taken at configure time goes stale with every commit.
execute_process(COMMAND git describe --always --dirty --tags
                WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE V OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT V)
  set(V "unknown")
endif()
# a C string literal: backslashes and quotes escaped
string(REPLACE "\\" "\\\\" V "${V}")
string(REPLACE "\"" "\\\"" V "${V}")
set(text "/* Generated at build time by scripts/git_version.cmake; do not edit. */\n#include \"diffsamp/core.h\"\nconst char *ds_git_version(void) { return \"${V}\"; }\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
