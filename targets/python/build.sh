#!/usr/bin/env bash
# Builds the Python reference targets (targets/python/NAME.py) into target/python/:
#   venv/        a virtualenv with requirements.txt installed (every version pinned); pip runs only
#                when the venv is missing or requirements.txt changed since it was made
#   gen/         the gRPC stubs of targets/proto/**/*.proto (protoc from grpcio-tools), generated
#                here and never committed
#   NAME         a wrapper that runs targets/python/NAME.py with the venv's interpreter and the stubs
# leakgate runs this itself for a scenario's {python:NAME} when the wrapper is missing or older
# than targets/python/ or the protos (with the venv in place that is offline: stubs and wrapper).
#
#   targets/python/build.sh [--check] [NAME...]
#     NAME     a script targets/python/NAME.py (default: all of them)
#     --check  also byte-compile each script and run it with --help, so a syntax error or a missing
#              import fails the build (ci/test.sh uses it)
#
# PYTHON picks the interpreter (default python3, at least 3.9); LEAKGATE_PYTHON_DIR overrides the
# output folder (default: target/python in this workspace). Exit 127: no interpreter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${LEAKGATE_PYTHON_DIR:-$repo/target/python}"
python="${PYTHON:-python3}"

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
  for f in "$here"/*.py; do
    [ -f "$f" ] && names+=("$(basename "$f" .py)")
  done
fi
for name in "${names[@]}"; do
  [ -f "$here/$name.py" ] || { echo "build.sh: no Python target at targets/python/$name.py" >&2; exit 64; }
done

if ! command -v "$python" >/dev/null 2>&1; then
  echo "build.sh: no $python on PATH (Debian: apt-get install python3 python3-venv)" >&2
  exit 127
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
  echo "build.sh: $("$python" --version 2>&1) is too old; the target needs Python 3.9 or newer" >&2
  exit 1
}

mkdir -p "$out"
# One build at a time (two runs starting at once would both make the venv).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.build.lock"
  flock 9
fi

venv="$out/venv"
stamp="$venv/.requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  echo "build.sh: creating $venv from targets/python/requirements.txt (pip, pinned versions)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv" || {
    echo "build.sh: $python -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --no-input --quiet \
    --only-binary=:all: -r "$here/requirements.txt"
  # Written last: a venv whose install was cut off has no stamp and is made again.
  cp "$here/requirements.txt" "$stamp"
fi

# Stubs: generated next to each other in a fresh folder, then swapped in.
gen="$out/gen"
tmp="$out/.gen.$$.tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
protos=()
while IFS= read -r p; do protos+=("${p#"$repo/targets/proto/"}"); done \
  < <(find "$repo/targets/proto" -name '*.proto' | sort)
"$venv/bin/python" -m grpc_tools.protoc -I "$repo/targets/proto" \
  --python_out="$tmp" --grpc_python_out="$tmp" "${protos[@]}"
rm -rf "$gen"
mv "$tmp" "$gen"

for name in "${names[@]}"; do
  script="$here/$name.py"
  wrapper="$out/$name"
  # Renamed into place: a run starting the wrapper never sees half of it.
  {
    echo '#!/usr/bin/env bash'
    echo "# Made by targets/python/build.sh: runs targets/python/$name.py in the venv with the stubs."
    printf 'export PYTHONPATH=%q${PYTHONPATH:+:$PYTHONPATH}\n' "$gen"
    printf 'exec %q -u %q "$@"\n' "$venv/bin/python" "$script"
  } >"$wrapper.$$.tmp"
  chmod +x "$wrapper.$$.tmp"
  mv -f "$wrapper.$$.tmp" "$wrapper"
  if [ "$check" = 1 ]; then
    "$venv/bin/python" -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' "$script"
    "$wrapper" --help >/dev/null
  fi
  echo "build.sh: built $wrapper ($("$venv/bin/python" --version 2>&1), grpcio $("$venv/bin/python" -c 'import grpc; print(grpc.__version__)'))" >&2
done
