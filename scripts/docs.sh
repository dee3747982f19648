#!/usr/bin/env bash
# `ninja docs`: the API reference. Runs Doxygen (configured by docs/Doxyfile)
# over include/, README.md and docs/*.md into build/docs/html, installing
# doxygen first if it is missing (as root with apt-get; otherwise it names
# the package and stops). Fails if doxygen fails.
#
#   scripts/docs.sh [OUTPUT_DIR]    HTML into OUTPUT_DIR/html (default
#                                   build/docs; relative to the repository)
#   scripts/docs.sh --filter FILE   Doxygen's input filter for the headers
#
# The filter: the public headers document each declaration with a plain
# block comment before it (and struct fields and enum values with one after
# them), which Doxygen would ignore. It turns a comment that opens a line
# into a doc comment (/* -> /**), a comment after code into a member comment
# (/* -> /**<), and the file's first comment into its @file text, on the fly;
# the headers themselves stay as they are. Section dividers (/* ---- ... */)
# and comments on preprocessor lines are left alone. It also keeps "e.g. "
# and " .. " from ending a brief description, and marks code examples (lines
# indented by three spaces after a blank comment line) as @code blocks.
set -euo pipefail

if [ "${1:-}" = "--filter" ]; then
  [ "$#" -eq 2 ] || { printf 'usage: %s --filter FILE\n' "$0" >&2; exit 2; }
  exec awk '
    # A period followed by a space ends the brief description: not these
    # (in prose, never in code).
    function keep_sentence(text) {
      gsub(/e\.g\. /, "e.g.\\ ", text)
      gsub(/i\.e\. /, "i.e.\\ ", text)
      gsub(/ \.\. /, " ..\\&nbsp;", text)
      return text
    }
    in_comment {
      # Lines indented by three spaces after a blank comment line are a code
      # example; Markdown would need four.
      if (in_code && $0 !~ /^ \*   /) {
        print " * @endcode"
        in_code = 0
      }
      if (!in_code && after_blank && $0 ~ /^ \*   /) {
        print " * @code"
        in_code = 1
      }
      after_blank = ($0 ~ /^ \*[ \t]*$/)
      print in_code ? $0 : keep_sentence($0)
      if (index($0, "*/")) in_comment = 0
      next
    }
    match($0, /^[ \t]*\/\*/) {
      head = substr($0, 1, RLENGTH)
      rest = substr($0, RLENGTH + 1)
      if (!index(rest, "*/")) in_comment = 1
      after_blank = 0
      if (rest ~ /^[*!]/ || rest ~ /^ ?---/) {
        print                      # already a doc comment, or a divider
      } else if (!seen_comment) {
        print substr(head, 1, length(head) - 2) "/** @file"
        if (rest !~ /^[ \t]*$/) print " *" rest
      } else {
        print head "*" keep_sentence(rest)
      }
      seen_comment = 1
      next
    }
    $0 !~ /^[ \t]*#/ && (at = index($0, "/*")) > 0 &&
        substr($0, at + 2, 1) !~ /[*!]/ {
      tail = substr($0, at + 2)
      if (!index(tail, "*/")) in_comment = 1
      after_blank = 0
      print substr($0, 1, at + 1) "*<" keep_sentence(tail)
      next
    }
    { print }
  ' "$2"
fi

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

out=${1:-build/docs}
command -v doxygen >/dev/null || need_packages doxygen

version=$(sed -n 's/^#define SHMRPC_VERSION_STRING "\(.*\)"$/\1/p' include/shmrpc.h)
mkdir -p "$out"
rm -rf "$out/html"
# docs/Doxyfile holds the settings; only where the output goes, and the
# version, are given here.
{
  cat docs/Doxyfile
  printf 'OUTPUT_DIRECTORY = "%s"\n' "$out"
  printf 'WARN_LOGFILE = "%s/warnings.log"\n' "$out"
  printf 'PROJECT_NUMBER = "%s"\n' "$version"
} | doxygen - >"$out/doxygen.log" 2>&1 || {
  cat "$out/doxygen.log" >&2
  [ -f "$out/warnings.log" ] && cat "$out/warnings.log" >&2
  say "docs: doxygen failed"
  exit 1
}
[ -f "$out/html/index.html" ] || { say "docs: doxygen wrote no $out/html/index.html"; exit 1; }
warnings=$(grep -c . "$out/warnings.log" 2>/dev/null || true)
if [ "${warnings:-0}" -gt 0 ]; then
  say "docs: $warnings doxygen warning line(s), in $out/warnings.log"
fi
case $out in
  /*) echo "docs: $out/html/index.html" ;;
  *) echo "docs: $ROOT/$out/html/index.html" ;;
esac
