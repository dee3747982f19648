#!/usr/bin/env bash
# Makes the man pages, each from the one text that already documents it:
#
#   scripts/man.sh tool TOOL OUT_DIR     shmrpc(1) with help2man from the
#       tool's own --help, --version and the help of each command the
#       general help lists (so a new command appears without an edit here)
#   scripts/man.sh library OUT_DIR       shmrpc(3), shmrpc_payload(3) and a
#       page per public struct, with Doxygen's man output from the headers
#       (the same filter and settings as `ninja docs`)
#
# The build (cmake/man.cmake) runs it; it needs help2man and doxygen.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Text as roff that shows it as it is: no escapes, no requests.
roff_literal() {
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

tool_page() {
  local tool=$1 out=$2 include
  mkdir -p "$out/man1"
  include=$(mktemp)
  trap 'rm -f "$include"' RETURN
  {
    printf '[NAME]\nshmrpc \\- look at, ping and call the shmrpc services of this user\n\n'
    printf '[COMMANDS IN DETAIL]\n'
    # The commands: the indented words under "Commands:" in --help.
    "$tool" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' |
      while read -r command; do
        [ "$command" = help ] && continue
        printf '.SS %s\n.nf\n' "$command"
        "$tool" help "$command" | roff_literal
        printf '.fi\n'
      done
    printf '\n[SEE ALSO]\n.BR shmrpc (3)\n'
  } >"$include"
  # help2man makes a SYNOPSIS of the lines that start with "Usage:".
  printf '#!/bin/sh\n"%s" "$@" | sed "s/^usage:/Usage:/"\n' "$tool" >"$include.tool"
  chmod +x "$include.tool"
  help2man --no-info --section=1 --include="$include" \
    --name="look at, ping and call the shmrpc services of this user" \
    --output="$out/man1/shmrpc.1" "$include.tool"
  rm -f "$include.tool"
}

library_pages() {
  local out=$1 work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  {
    cat "$root/docs/Doxyfile"
    cat <<DOXY
INPUT = "$root/include/shmrpc.h" "$root/include/shmrpc_payload.h"
FILTER_PATTERNS = *.h="bash $root/scripts/docs.sh --filter"
OUTPUT_DIRECTORY = "$work"
STRIP_FROM_PATH = "$root/include"
FULL_PATH_NAMES = NO
USE_MDFILE_AS_MAINPAGE =
GENERATE_HTML = NO
GENERATE_TREEVIEW = NO
SEARCHENGINE = NO
GENERATE_MAN = YES
MAN_OUTPUT = man
MAN_EXTENSION = .3
MAN_LINKS = NO
WARN_LOGFILE = "$work/warnings.log"
PROJECT_NUMBER = $(sed -n 's/^#define SHMRPC_VERSION_STRING "\(.*\)"$/\1/p' "$root/include/shmrpc.h")
DOXY
  } | (cd "$work" && doxygen -) >"$work/doxygen.log" 2>&1 ||
    { cat "$work/doxygen.log" >&2; echo "man.sh: doxygen failed" >&2; exit 1; }
  mkdir -p "$out/man3"
  rm -f "$out"/man3/*.3
  local page base
  for page in "$work"/man/man3/*.3; do
    base=$(basename "$page" .3)
    case $base in
      *.h) # shmrpc.h -> shmrpc(3): the page a reader asks for by name
        sed -e "s/^\\.TH \"${base}\" 3/.TH \"${base%.h}\" 3/" "$page" \
          >"$out/man3/${base%.h}.3" ;;
      shmrpc_*) cp "$page" "$out/man3/$base.3" ;;
      *) ;; # Doxygen's directory page: nothing a reader asks for
    esac
  done
  [ -f "$out/man3/shmrpc.3" ] || { echo "man.sh: doxygen made no shmrpc.h page" >&2; exit 1; }
}

case ${1:-} in
  tool) [ "$#" -eq 3 ] || { echo "usage: man.sh tool TOOL OUT_DIR" >&2; exit 2; }
    tool_page "$2" "$3" ;;
  library) [ "$#" -eq 2 ] || { echo "usage: man.sh library OUT_DIR" >&2; exit 2; }
    library_pages "$2" ;;
  *) echo "usage: man.sh tool TOOL OUT_DIR | library OUT_DIR" >&2; exit 2 ;;
esac
