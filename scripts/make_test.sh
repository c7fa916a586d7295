#!/usr/bin/env bash
# `make test`: lint and types, the main suite, the multi-host lab, the strict docs build,
# the launch tests and the lowest-versions suite, overlapped where they do not compete.
#
# The main suite leaves a third of the machine idle on average (its fault tests wait
# for timeouts and restarts), so beside it, in the background, run one after the other:
# - the multi-host lab (make test-hosts): its hosts have their own network, /tmp and
#   PIDs, and it mostly waits (Ray takes about a minute to declare a lost host dead);
# - the launch tests, the agents' fault tests and the examples (BACKGROUND_TESTS):
#   each launch test starts clusters of its own in driver subprocesses and mostly
#   waits for processes to start, scale and stop; the fault tests and the examples
#   run last, on a session cluster of that pytest process;
# - the lowest-versions suite (make test-compat, which first builds .venv-compat):
#   another embedded cluster, on its own Spark and Ray.
# Their output is shown when the main suite and the docs build are done.
#
# Every part runs even when an earlier one failed; the exit status is non-zero if any
# failed. The background parts run in a process group of their own (setsid), so a
# Ctrl-C reaches only this script; on any exit it stops that group by its PID, and the
# lab's own SIGTERM handler deletes its namespaces.
set -u
cd "$(dirname "$0")/.."

BIN=.venv/bin
# Test files that run in the background chain, not in the main suite: the launch tests
# (their clusters are all their own, started in subprocesses), then the agents' fault
# tests and the examples, on a session cluster of that pytest process. The fault tests
# mostly wait (for crashes, restarts and timeouts): here they shorten the main suite,
# which is the longer part, by about as much as they lengthen this chain. (The demo's
# tour, moved here too once, made this chain the longer part.)
BACKGROUND_TESTS="tests/test_launcher_teardown.py tests/test_launcher_autoscaling.py
tests/test_launcher_standalone.py tests/test_cli.py tests/test_wheel.py
tests/test_agents_faults.py tests/test_examples.py"
ignore_background_tests=()
for file in $BACKGROUND_TESTS; do ignore_background_tests+=("--ignore=$file"); done
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/rap-make-test.XXXXXX")
failed=()
background=""

stop_background() {
    if [ -n "$background" ] && kill -0 "$background" 2>/dev/null; then
        kill -TERM -- "-$background" 2>/dev/null
        wait "$background" 2>/dev/null
    fi
    rm -rf "$LOGS"
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setsid bash -c '
    make --no-print-directory test-hosts >"$1/hosts.log" 2>&1; echo $? >"$1/hosts.rc"
    .venv/bin/python -m pytest -m "" --benchmark-disable --durations=10 -p no:cacheprovider $2 \
        >"$1/launches.log" 2>&1; echo $? >"$1/launches.rc"
    make --no-print-directory test-compat >"$1/compat.log" 2>&1; echo $? >"$1/compat.rc"
' background "$LOGS" "$BACKGROUND_TESTS" &
background=$!

# Lint, format and types while the lab boots (mypy from a fresh clone: ~25 s of one core).
$BIN/ruff check . || failed+=("lint (ruff check)")
$BIN/ruff format --check . || failed+=("format (ruff format --check)")
$BIN/mypy || failed+=("types (mypy)")

$BIN/python -m pytest -m "" --benchmark-disable --durations=20 --ignore=tests/hosts \
    "${ignore_background_tests[@]}" ||
    failed+=("main suite")

NO_MKDOCS_2_WARNING=1 $BIN/mkdocs build --strict --quiet || failed+=("docs build")

wait "$background"
background=""
for part in hosts launches compat; do
    case $part in
        hosts) title="multi-host lab (make test-hosts)" ;;
        launches) title="launch tests and examples" ;;
        compat) title="lowest supported versions (make test-compat)" ;;
    esac
    echo "---- $title ----"
    cat "$LOGS/$part.log" 2>/dev/null
    [ "$(cat "$LOGS/$part.rc" 2>/dev/null)" = "0" ] || failed+=("$title")
done

if [ ${#failed[@]} -gt 0 ]; then
    printf 'make test: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
    exit 1
fi
echo "make test: every part passed"
