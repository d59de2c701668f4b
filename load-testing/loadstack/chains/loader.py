"""Chain files → :class:`~loadstack.chains.engine.Chain`, validated before any load starts.

On top of the schema, the loader checks what a schema cannot: templates and
expressions parse, every ``vars.x`` is saved by an earlier step (or declared
under ``vars:``), step names are unique, ``goto`` targets exist in the same
sequence and jumping backwards has a bound, ``since`` names an earlier step,
``expect`` fits the step kind.  Every problem names the file, line and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from loadstack import configfile
from loadstack.chains.engine import Chain
from loadstack.chains.kinds import Step, build_step
from loadstack.chains.kinds.http import inside, request_file
from loadstack.chains.schema import (
    AwaitStepSpec,
    BranchStepSpec,
    ChainSpec,
    GotoSpec,
    HttpSpec,
    HttpStepSpec,
    StepSpec,
)
from loadstack.chains.templates import (
    Expression,
    Template,
    TemplateError,
    compile_value,
    environment,
    references,
)

# Names a template may use (besides Jinja's own globals such as range).
SCOPE_NAMES = {"vars", "last", "run_id", "user", "seed", "faker", "env", "data"}
EXPRESSION_KEYS = {"when", "check", "until", "while", "match", "expr"}
EXPECT_FIELDS = {
    "http": {"status", "json_values", "contains"},
    "sql": {"rows", "min_rows"},
    "await": {"rows", "min_rows"},
}

Loc = tuple[Any, ...]


def _walk(
    steps: list[StepSpec], raw: list[Any], loc: Loc
) -> Iterator[tuple[StepSpec, dict, Loc, list[StepSpec]]]:
    """Every step in execution order, with its raw mapping, location and the sequence it belongs to."""
    for i, step in enumerate(steps):
        raw_step = raw[i] if i < len(raw) and isinstance(raw[i], dict) else {}
        yield step, raw_step, (*loc, i), steps
        if isinstance(step, BranchStepSpec):
            raw_paths = ((raw_step.get("branch") or {}).get("paths")) or []
            for j, path in enumerate(step.branch.paths):
                raw_path = raw_paths[j] if j < len(raw_paths) and isinstance(raw_paths[j], dict) else {}
                yield from _walk(
                    path.steps, raw_path.get("steps") or [], (*loc, i, "branch", "paths", j, "steps")
                )


def _bad_template(value: Any, loc: Loc, key: str | None = None) -> tuple[Loc, str] | None:
    """The first string under ``value`` that does not parse as a template/expression."""
    if isinstance(value, str):
        try:
            compiled = Expression(value) if key in EXPRESSION_KEYS else Template(value)
            # A constant ({{ 2 ** 20000 }}) is evaluated now: its error is the file's, not the run's.
            if {ref.partition(".")[0] for ref in compiled.references} <= set(environment().globals):
                compiled({}) if isinstance(compiled, Expression) else compiled.render({})
        except TemplateError as exc:
            return loc, str(exc)
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _bad_template(v, (*loc, k), k if isinstance(k, str) else None)
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _bad_template(v, (*loc, i), key)
            if found:
                return found
    return None


def _file_problems(spec: HttpSpec, loc: Loc, base_dir: Path | None) -> list[tuple[Loc, str]]:
    """Request files that are missing, or (in a chain file) outside the chain file's directory."""
    problems: list[tuple[Loc, str]] = []
    for where, path in spec.files():
        field = (*loc, *where)
        if base_dir is not None:
            if Path(path).is_absolute():
                problems.append((field, f"{path!r} is absolute; give a path relative to the chain file"))
                continue
            if os.path.normpath(path).split(os.sep)[0] == os.pardir:
                problems.append(
                    (
                        field,
                        f"{path!r} leaves the chain file's directory; keep request files next to the chain",
                    )
                )
                continue
        if base_dir is not None and not inside(base_dir, path):
            problems.append(
                (
                    field,
                    f"{path!r} resolves to a file outside the chain file's directory (a symlink?); "
                    "keep request files next to the chain",
                )
            )
            continue
        found = request_file(base_dir, path)
        if not found.is_file():
            problems.append((field, f"no such file: {path!r} (looked for {found.absolute()})"))
    return problems


def validate(spec: ChainSpec, raw: dict[str, Any], base_dir: Path | None = None) -> list[tuple[Loc, str]]:
    """Semantic problems of a schema-valid chain, as (location, message).

    ``base_dir`` is the chain file's directory: request files must be inside it.  ``None`` (the
    Python API): paths are absolute or relative to the current directory.
    """
    problems: list[tuple[Loc, str]] = []
    raw_steps = raw.get("steps") or []
    walked = list(_walk(spec.steps, raw_steps, ("steps",)))
    for step, _, loc, _ in walked:
        if isinstance(step, HttpStepSpec):
            problems += _file_problems(step.http, (*loc, "http"), base_dir)
        if isinstance(step, AwaitStepSpec) and step.await_.http is not None:
            problems += _file_problems(step.await_.http, (*loc, "await", "http"), base_dir)
    if problems:
        return problems  # steps are built below, and building reads the files

    seen: dict[str, Loc] = {}
    for step, _, loc, _ in walked:
        if step.name in seen:
            problems.append(
                (
                    (*loc, "name"),
                    f"duplicate step name {step.name!r} (first at {configfile.field_path(seen[step.name])})",
                )
            )
        seen.setdefault(step.name, loc)

    for _step, raw_step, loc, _ in walked:
        bad = _bad_template({k: v for k, v in raw_step.items() if k not in ("branch", "steps")}, loc)
        if bad:
            problems.append(bad)
    if problems:
        return problems

    defined = set((spec.vars or {}).keys())
    done: set[str] = set()
    allowed = SCOPE_NAMES | set(environment().globals)
    if spec.seed is None:
        allowed -= {"seed"}
    if spec.data is None:
        allowed -= {"data"}
    # `vars:` templates are rendered before the first step: no vars or last response yet.
    for name, value in (spec.vars or {}).items():
        bad = _bad_template(value, ("vars", name))
        if bad:
            problems.append(bad)
            continue
        try:
            refs = references(compile_value(value))
        except TemplateError as exc:
            problems.append((("vars", name), str(exc)))
            continue
        for ref in sorted(refs):
            top = ref.partition(".")[0]
            if top not in allowed - {"vars", "last"}:
                problems.append(
                    (
                        ("vars", name),
                        f"{top!r} is not available in vars: (use run_id, user, seed, faker, env)",
                    )
                )
    for step, _, loc, sequence in walked:
        built = build_step(step, base_dir)
        names_ok = allowed | ({"message"} if step.kind in ("ws", "amqp_expect") else set())
        for ref in sorted(built.references()):
            top, _, attr = ref.partition(".")
            if top not in names_ok:
                hint = {"seed": " (the chain has no `seed:`)", "data": " (the chain has no `data:`)"}.get(
                    top, ""
                )
                problems.append(
                    (loc, f"undefined variable {top!r}{hint}; available: {', '.join(sorted(names_ok))}")
                )
            elif top == "vars" and attr and attr not in defined:
                problems.append(
                    (
                        loc,
                        f"undefined variable vars.{attr}: no earlier step saves it and it is not declared under `vars:`",
                    )
                )
        _check_kind_options(step, loc, problems)
        if isinstance(step, AwaitStepSpec) and step.await_.since and step.await_.since not in done:
            problems.append(
                ((*loc, "await", "since"), f"since: {step.await_.since!r} is not an earlier step")
            )
        if isinstance(step.on_failure, GotoSpec):
            names = [s.name for s in sequence]
            target = step.on_failure.goto
            if target not in names:
                problems.append(
                    ((*loc, "on_failure", "goto"), f"goto {target!r}: no such step in this sequence")
                )
            elif names.index(target) <= names.index(step.name) and step.on_failure.max is None:
                problems.append(
                    ((*loc, "on_failure"), f"goto {target!r} jumps back: a cycle without bound; add `max: N`")
                )
        defined |= set((step.save or {}).keys())
        done.add(step.name)
    return problems


def _check_kind_options(step: StepSpec, loc: Loc, problems: list[tuple[Loc, str]]) -> None:
    kind = step.kind
    if step.expect is not None:
        used = {k for k, v in step.expect.model_dump(exclude_none=True).items() if v is not None}
        wrong = used - EXPECT_FIELDS.get(kind, set())
        if wrong:
            fields = ", ".join(sorted(EXPECT_FIELDS.get(kind, set()))) or "none (use check:)"
            problems.append(
                (
                    (*loc, "expect"),
                    f"{kind} steps cannot expect {', '.join(sorted(wrong))} (possible: {fields})",
                )
            )
    if kind in ("amqp_publish", "sleep", "think", "branch") and (step.save or step.check):
        problems.append((loc, f"{kind} steps have no result to save or check"))


def build(spec: ChainSpec, source: str | None = None, base_dir: Path | None = None) -> Chain:
    steps: list[Step[Any]] = [build_step(s, base_dir) for s in spec.steps]
    return Chain(
        spec.name,
        steps,
        defaults=dict(spec.vars or {}),
        seed=spec.seed,
        data=spec.data,
        weight=spec.weight,
        description=spec.description,
        source=source,
    )


def load_file(path: str | Path) -> Chain:
    """Parse, validate and build one chain file (YAML or JSON); :class:`ConfigError` on any problem."""
    path = Path(path)
    data, node = configfile.read_document(path)
    spec = configfile.validate(ChainSpec, data, node, path)
    base_dir = path.parent.absolute()
    problems = validate(spec, data, base_dir)
    if problems:
        raise configfile.ConfigError(
            [
                configfile.ConfigIssue(
                    str(path), configfile.line_of(node, loc), configfile.field_path(loc), message
                )
                for loc, message in problems
            ]
        )
    return build(spec, str(path), base_dir)


def from_python(name: str, steps: Sequence[StepSpec], **options: Any) -> Chain:
    """A chain from Python-built step specs, validated like a file."""
    spec = ChainSpec(name=name, steps=list(steps), **options)
    raw = yaml.safe_load(yaml.safe_dump(spec.model_dump(by_alias=True, exclude_none=True)))
    problems = validate(spec, raw)
    if problems:
        raise ValueError("; ".join(f"{configfile.field_path(loc)}: {msg}" for loc, msg in problems))
    return build(spec, f"python:{name}")


def parse_chain_list(value: str) -> list[tuple[str, float]]:
    """``a.yml,b.yml:3`` → ``[("a.yml", 1.0), ("b.yml", 3.0)]`` (``$LOADSTACK_CHAINS``)."""
    out = []
    for item in filter(None, (p.strip() for p in value.split(","))):
        path, sep, weight = item.rpartition(":")
        try:
            out.append((path, float(weight)) if sep else (item, 1.0))
        except ValueError:
            out.append((item, 1.0))
    return out


def sources(run: Any, config: Any) -> tuple[list[tuple[str, float]], str]:
    """The run's chain files and what named them: ``$LOADSTACK_CHAINS``, else the run settings'
    ``chains``.  The one answer for the users that run them and the pre-run checks alike."""
    if config.chains:
        return parse_chain_list(config.chains), "LOADSTACK_CHAINS"
    return [(c.path, c.weight) for c in run.chains or []], f"{run.profile_file}: chains"


def configured() -> list[tuple[str, float]]:
    """Chain files of the current run: ``$LOADSTACK_CHAINS``, else the run settings' ``chains``."""
    from loadstack import runcontext, settings

    return sources(runcontext.current().settings, settings.current())[0]


def env_names(refs: Iterable[str]) -> list[str]:
    """The environment variables (``env.X``) among a template's references, sorted."""
    return sorted({name for top, _, name in (ref.partition(".") for ref in refs) if top == "env" and name})


def env_references(path: str | Path) -> list[tuple[int | None, str, str]]:
    """``(line, field, variable)`` of each ``env.X`` a (valid) chain file's templates read, first
    use of each variable only: the run checks they are set before any load."""
    path = Path(path)
    data, node = configfile.read_document(path)
    spec = configfile.validate(ChainSpec, data, node, path)
    found: dict[str, tuple[int | None, str, str]] = {}

    def add(refs: set[str], loc: Loc) -> None:
        for name in env_names(refs):
            if name not in found:
                found[name] = (configfile.line_of(node, loc), configfile.field_path(loc), name)

    for name, value in (spec.vars or {}).items():
        add(references(compile_value(value)), ("vars", name))
    base_dir = path.parent.absolute()
    for step, _, loc, _ in _walk(spec.steps, data.get("steps") or [], ("steps",)):
        add(build_step(step, base_dir).references(), loc)
    return list(found.values())


def load_all(files: list[tuple[str, float]]) -> list[Chain]:
    chains: list[Chain] = []
    issues: list[configfile.ConfigIssue] = []
    for path, weight in files:
        try:
            chain = load_file(path)
        except configfile.ConfigError as exc:
            issues.extend(exc.issues)
            continue
        chain.weight = weight * chain.weight
        if any(c.name == chain.name for c in chains):
            issues.append(
                configfile.ConfigIssue(
                    path, None, "name", f"chain name {chain.name!r} is used by another file"
                )
            )
        chains.append(chain)
    if issues:
        raise configfile.ConfigError(issues)
    return chains
