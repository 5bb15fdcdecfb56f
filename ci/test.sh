#!/usr/bin/env bash
# The test command (README "Set-up", and what .ci/run calls): installs the Debian packages some
# tests drive when they are missing and this user may install them, builds the Go reference
# target, then runs every test.
#   chromium       renders the HTML report headless (harness/tests/html_chromium.rs)
#   libxml2-utils  xmllint, checks junit.xml against harness/schema/junit.xsd
#   golang-go      builds targets/go/leaktarget (harness/tests/go_target.rs), standard library only
#   default-jdk-headless  a real JVM for the hsperfdata probe's test (probe::hsperf), and javac
#                  and jcmd for targets/java/leaktarget (harness/tests/java_target.rs)
# Where they cannot be installed those tests fail when CI is set (to any value), naming the
# missing program; without CI they print SKIPPED and pass. Nothing else is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v java >/dev/null 2>&1 || need+=(default-jdk-headless)
if [ ${#need[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo=(sudo -n); }
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ ${#sudo[@]} -gt 0 ]; }; then
    echo "ci/test.sh: installing ${need[*]} from Debian" >&2
    { "${sudo[@]}" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } ||
      echo "ci/test.sh: could not install ${need[*]}; the tests that need them will fail under CI, print SKIPPED otherwise" >&2
  else
    echo "ci/test.sh: ${need[*]} missing and not installable here; the tests that need them will fail under CI, print SKIPPED otherwise" >&2
  fi
fi

# The Go target, checked (gofmt, go vet) and built into target/go/ before the tests use it;
# GOPROXY=off: it needs nothing but the standard library.
if command -v go >/dev/null 2>&1; then
  bash targets/go/build.sh --check
else
  echo "ci/test.sh: no Go toolchain; the Go target tests will print SKIPPED (and fail under CI)" >&2
fi

# The Java target, compiled with -Xlint:all -Werror into target/java/ (JDK only).
if command -v javac >/dev/null 2>&1; then
  bash targets/java/build.sh --check
else
  echo "ci/test.sh: no javac; the Java target tests will print SKIPPED (and fail under CI)" >&2
fi

cargo test --workspace --locked "$@"
