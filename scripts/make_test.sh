#!/usr/bin/env bash
# `make test` after lint and types: the main suite, the multi-host lab, the strict docs
# build and the lowest-versions suite, overlapped where they do not compete.
#
# - The multi-host lab (make test-hosts) runs beside the main suite: its hosts have
#   their own network, /tmp and PIDs, and it mostly waits (Ray takes about a minute to
#   declare a lost host dead). Its output is shown when it ends.
# - The compatibility venv (.venv-compat, mostly downloads) is built meanwhile too.
# - Then the docs build and the lowest-versions suite (make test-compat).
#
# Every part runs even when an earlier one failed; the exit status is non-zero if any
# failed. The background parts run in process groups of their own (setsid), so a Ctrl-C
# reaches only this script; on any exit it stops them by their group's PID, and the lab's
# own SIGTERM handler deletes its namespaces.
set -u
cd "$(dirname "$0")/.."

BIN=.venv/bin
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/rap-make-test.XXXXXX")
failed=()
compat_build=""
hosts=""

stop_background() {
    for pid in $compat_build $hosts; do
        kill -0 "$pid" 2>/dev/null && kill -TERM -- "-$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$LOGS"
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setsid make --no-print-directory test-hosts >"$LOGS/hosts.log" 2>&1 &
hosts=$!
setsid make --no-print-directory compat-venv >"$LOGS/compat-venv.log" 2>&1 &
compat_build=$!

$BIN/python -m pytest -m "" --benchmark-disable --durations=20 --ignore=tests/hosts ||
    failed+=("main suite")

NO_MKDOCS_2_WARNING=1 $BIN/mkdocs build --strict --quiet || failed+=("docs build")

if wait "$compat_build"; then
    compat_build=""
    make --no-print-directory test-compat || failed+=("lowest-versions suite")
else
    compat_build=""
    cat "$LOGS/compat-venv.log"
    failed+=("building .venv-compat")
fi

wait "$hosts"
hosts_status=$?
hosts=""
echo "---- multi-host lab (make test-hosts) ----"
cat "$LOGS/hosts.log"
[ "$hosts_status" -eq 0 ] || failed+=("multi-host lab")

if [ ${#failed[@]} -gt 0 ]; then
    printf 'make test: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
    exit 1
fi
echo "make test: every part passed"
