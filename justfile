# loadstack tasks.  `just` comes from PyPI (rust-just) with `pip install -e .`.
set positional-arguments
set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")

# List the recipes.
default:
    @just --list

# The loadstack CLI: run --profile NAME | ui | stop | status | report | compare | profile ... (see --help)
load-test *args:
    {{python}} -m loadstack "$@"

# The plain compose stack: just stack up [--workers N] [--offline] | down | logs [-f] | ps
stack *args:
    {{python}} -m loadstack stack "$@"

# Install test extras, make sure PostgreSQL/Redis/RabbitMQ answer locally, run the whole suite
# (but the real-cluster tests: just test-k8s) as two pytest processes side by side
# (LOADSTACK_TEST_SHARDS=1 for one; infra/dev/test-shards.sh).
test *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    PYTHON={{python}} bash infra/dev/test-shards.sh -m "not k8s" "$@"

# The suite without the slow end-to-end tests (< 3 minutes), sharded as `just test`.
test-quick *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    PYTHON={{python}} bash infra/dev/test-shards.sh -m "not slow and not docker and not k8s" "$@"

# The quick suite with two CPU-bound processes beside it (killed at the end, even on failure):
# the suite must hold on a busy machine, as users' shared CI runners are.
test-busy *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    PYTHON={{python}} bash infra/dev/test-busy.sh "$@"

# The real-cluster tests (docs/kubernetes.md): builds Kubernetes v1.20.2 from Debian's source once
# (~9 min, cached in /var/cache/loadstack-k8s or $LOADSTACK_K8S_CACHE), starts a one-node cluster in
# its own network namespace, runs the Job scenarios on it, and stops it. Needs root.
test-k8s *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    {{python}} -m pytest -m k8s tests/e2e_k8s "$@"

# Only the container end-to-end tests (starts dockerd and builds the offline images if needed).
test-docker *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    {{python}} -m pytest -m docker "$@"

# ruff lint + format check.
lint:
    {{python}} -m ruff check .
    {{python}} -m ruff format --check .

# Benchmarks, CPU per operation side by side (docs/performance.md):
# just bench [selfcheck|connectors|chains|exporter|http|scale|websocket|startup|arrival|masker|soak|users ...] [--rounds N] [--json FILE]
# (no names: all but soak and users, which are long and opt-in; `just bench soak --minutes 3` and
# `just bench users --users 200 --rounds 1 --pacing 1` check them quickly)
bench *names:
    {{python}} -m pip install -q -e '.[bench]'
    command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || echo "wrk not installed: the http bench runs without its ceiling"
    command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind gcc libc6-dev) || echo "valgrind not installed: no instruction-count pass"
    bash infra/dev/ensure-services.sh
    {{python}} -m bench "$@"

# Kubernetes: just k8s render [--workers N] [--profile P] [--image I] [--host URL] [--overlay O] | fetch RUN_ID
k8s *args:
    {{python}} -m loadstack k8s "$@"
