#!/usr/bin/env bash
# Builds the Go reference targets (targets/go/*/, standard library only) into target/go/NAME
# with the Go toolchain on PATH (Debian's golang-go, Go 1.19, is enough). Nothing is downloaded:
# GOPROXY=off, GOTOOLCHAIN=local. leakgate runs this itself for a scenario's {go:NAME} when the
# binary is missing or older than its sources.
#
#   targets/go/build.sh [--check] [NAME...]
#     NAME     a folder under targets/go/ (default: all of them)
#     --check  also fail when `gofmt -l` lists a file or `go vet` complains (ci/test.sh uses it)
#
# LEAKGATE_GO_BIN_DIR overrides the output folder (default: target/go in this workspace).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${LEAKGATE_GO_BIN_DIR:-$repo/target/go}"

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
    [ -f "$d/go.mod" ] && names+=("$(basename "$d")")
  done
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: no Go toolchain on PATH (Debian: apt-get install golang-go)" >&2
  exit 127
fi

export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0
# Without a home (some CI sandboxes) go has nowhere for its build cache: keep it under target/.
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
  export GOCACHE="$out/.cache/build"
fi
if [ -z "${GOPATH:-}" ] && [ -z "${HOME:-}" ]; then
  export GOPATH="$out/.cache/gopath"
fi

mkdir -p "$out"
for name in "${names[@]}"; do
  src="$here/$name"
  [ -f "$src/go.mod" ] || { echo "build.sh: no Go module at targets/go/$name" >&2; exit 64; }
  if [ "$check" = 1 ]; then
    unformatted="$(cd "$src" && gofmt -l .)"
    if [ -n "$unformatted" ]; then
      echo "build.sh: not gofmt-formatted in targets/go/$name: $unformatted" >&2
      exit 1
    fi
    (cd "$src" && go vet ./...)
  fi
  # Build to a name of this process and rename: a run reading the binary never sees half of
  # it, and two builds at once do not write into one file.
  tmp="$out/.$name.$$.tmp"
  trap 'rm -f "$tmp"' EXIT
  (cd "$src" && go build -trimpath -o "$tmp" .)
  mv -f "$tmp" "$out/$name"
  echo "build.sh: built $out/$name ($(go version | cut -d' ' -f3))" >&2
done
