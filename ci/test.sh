#!/usr/bin/env bash
# The test command (README "Set-up", and what .ci/run calls): installs the Debian packages some
# tests drive when they are missing and this user may install them, builds the Go reference
# target and the Python one's venv (pip, pinned versions: the only download), then runs every
# test.
#   chromium       renders the HTML report headless (harness/tests/html_chromium.rs)
#   libxml2-utils  xmllint, checks junit.xml against harness/schema/junit.xsd
#   golang-go      builds targets/go/leaktarget (harness/tests/go_target.rs) and the conformance
#                  suite's HTTPS server (harness/tests/conformance/main.go), standard library only
#   default-jdk-headless  a real JVM for the hsperfdata probe's test (probe::hsperf), and javac
#                  and jcmd for targets/java/leaktarget (harness/tests/java_target.rs)
#   heaptrack      records the native leak of rest-target (harness/tests/native_target.rs)
#   nginx          a server this project did not write, for the load clients' conformance cases
#                  (harness/tests/conformance.rs: keep-alive, chunked, HEAD/204/304, h2c, h2 over
#                  TLS, a low stream limit); the test runs its own nginx on free ports (not the
#                  package's service). Debian puts it in /usr/sbin, off a user's PATH.
# Where they cannot be installed those tests fail when CI is set (to any value), naming the
# missing program; without CI they print SKIPPED and pass. Nothing else is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v java >/dev/null 2>&1 || need+=(default-jdk-headless)
command -v heaptrack_print >/dev/null 2>&1 || need+=(heaptrack)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
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

# The Python target: a venv with targets/python/requirements.txt (every version pinned; pip
# downloads them from PyPI here, once, and again only when the file changes), its gRPC stubs and
# the wrapper target/python/leaktarget; --check byte-compiles the script and runs it with --help.
# The tests themselves download nothing: without the venv they print SKIPPED (fail under CI).
if command -v python3 >/dev/null 2>&1; then
  bash targets/python/build.sh --check
else
  echo "ci/test.sh: no python3; the Python target tests will print SKIPPED (and fail under CI)" >&2
fi

# The Java target, compiled with -Xlint:all -Werror into target/java/ (JDK only).
if command -v javac >/dev/null 2>&1; then
  bash targets/java/build.sh --check
else
  echo "ci/test.sh: no javac; the Java target tests will print SKIPPED (and fail under CI)" >&2
fi

# cargo-nextest (on the machine image, or `cargo install cargo-nextest`) runs tests side by side
# as .config/nextest.toml says: about half the time of `cargo test`, which runs one binary at a
# time. There are no doc tests for it to miss.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked "$@"
else
  echo "ci/test.sh: cargo-nextest not installed; running cargo test (slower: one test binary at a time)" >&2
  cargo test --workspace --locked "$@"
fi
