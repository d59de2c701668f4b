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

# Install test extras, make sure PostgreSQL/Redis/RabbitMQ answer locally, run the whole suite.
test *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    {{python}} -m pytest "$@"

# The suite without the slow end-to-end tests (< 3 minutes).
test-quick *args:
    {{python}} -m pip install -q -e '.[test]'
    bash infra/dev/ensure-services.sh
    {{python}} -m pytest -m "not slow and not docker" "$@"

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
# just bench [connectors|chains|exporter|http|scale|websocket|startup|soak ...] [--rounds N] [--json FILE]
# (no names: all but soak, which is long and opt-in; `just bench soak --minutes 3` checks it quickly)
bench *names:
    {{python}} -m pip install -q -e '.[bench]'
    command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || echo "wrk not installed: the http bench runs without its ceiling"
    command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind gcc libc6-dev) || echo "valgrind not installed: no instruction-count pass"
    bash infra/dev/ensure-services.sh
    {{python}} -m bench "$@"

# Kubernetes: just k8s render [--workers N] [--profile P] [--image I] [--host URL] [--overlay O] | fetch RUN_ID
k8s *args:
    {{python}} -m loadstack k8s "$@"
