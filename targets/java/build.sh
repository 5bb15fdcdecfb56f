#!/usr/bin/env bash
# Builds the Java reference targets (targets/java/*/, JDK only, no dependencies) into class
# folders target/java/NAME with the javac on PATH (Debian's default-jdk-headless, JDK 17, is
# enough; the sources need 16 or newer). Nothing is downloaded. leakgate runs this itself for
# a scenario's {java:NAME} when the folder is missing or older than its sources; a scenario
# then runs `java -cp {java:NAME} MainClass ...`.
#
#   targets/java/build.sh [--check] [NAME...]
#     NAME     a folder under targets/java/ holding .java files (default: all of them)
#     --check  compile with -Xlint:all -Werror (ci/test.sh uses it)
#
# LEAKGATE_JAVA_BIN_DIR overrides the output folder (default: target/java in this workspace).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${LEAKGATE_JAVA_BIN_DIR:-$repo/target/java}"

check=0
names=()
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    -*) echo "build.sh: unknown option $a" >&2; exit 64 ;;
    *) names+=("$a") ;;
  esac
done
if [ ${#names[@]} -eq 0 ]; then
  for d in "$here"/*/; do
    compgen -G "$d*.java" >/dev/null && names+=("$(basename "$d")")
  done
fi

if ! command -v javac >/dev/null 2>&1; then
  echo "build.sh: no javac on PATH (Debian: apt-get install default-jdk-headless)" >&2
  exit 127
fi

lint=(-Xlint:-options)
[ "$check" = 1 ] && lint=(-Xlint:all -Xlint:-options -Werror)

mkdir -p "$out"
for name in "${names[@]}"; do
  src="$here/$name"
  compgen -G "$src/*.java" >/dev/null || { echo "build.sh: no .java files in targets/java/$name" >&2; exit 64; }
  # Compile into a folder of this process and rename it into place: a run reading the classes
  # never sees half of them, and two builds at once do not write into one folder.
  tmp="$out/.$name.$$.tmp"
  trap 'rm -rf "$tmp" "$out/.$name.$$.old"' EXIT
  rm -rf "$tmp"
  javac "${lint[@]}" --release 17 -encoding UTF-8 -d "$tmp" "$src"/*.java
  # The folder's own time is the build's: leakgate compares it with the sources'.
  touch "$tmp"
  if [ -e "$out/$name" ]; then
    mv "$out/$name" "$out/.$name.$$.old"
  fi
  mv "$tmp" "$out/$name"
  rm -rf "$out/.$name.$$.old"
  echo "build.sh: built $out/$name ($(javac -version 2>&1))" >&2
done
