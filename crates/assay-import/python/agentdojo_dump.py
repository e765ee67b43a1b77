"""Dump one AgentDojo task suite as a single JSON document, for `assay import agentdojo`.

Usage (the importer embeds this file and feeds it on stdin, so it never relies on its own path):

    python3 - --suite banking [--version v1.2.2] < agentdojo_dump.py > banking.json
    python3 agentdojo_dump.py --suite banking

Exit codes: 0 ok; 2 bad arguments (unknown suite or benchmark version: the valid values are listed
on stderr); 3 agentdojo is not importable (stderr says how to install it); 1 anything else.

Output (keys sorted, no timestamps, byte-identical across runs):

- agentdojo_version, benchmark_version, suite, now_marker
- tools[]: name, description (what AgentDojo gives the model), parameters (the JSON schema of the
  function's pydantic parameters model, as AgentDojo's LLM adapters send it), required, returns (the
  return annotation as text), returns_schema (JSON schema of the return type, or null),
  env_dependencies ({argument: environment attribute} injected by AgentDojo, hidden from the model)
- environment: the suite's default environment, every injection vector filled with its default text,
  as model_dump(mode="json") (computed fields included; their paths are in environment_computed_fields)
- environment_raw: the same, each vector's text replaced by the marker "{{slot:VECTOR_ID}}"
- environment_computed_fields: paths of pydantic computed fields ("*" = any key or index); they are
  derived views (e.g. an inbox's received/sent lists) and are left out of every state_diff
- environment_seed_fields: paths of the `initial_*` lists the models build their live dicts from
  (inbox.initial_emails -> inbox.emails, ...); they share objects with the live state and are left
  out of every state_diff too (see derived_field_paths). These are the paths AgentDojo's own
  WorkspaceDeepDiff / TravelDeepDiff exclude.
- injection_vectors[]: id, description, default (as written in injection_vectors.yaml), locations
  (paths in environment_raw whose string holds the marker), rendered_default (the text that stands
  where the marker stands in `environment`; it differs from `default` when YAML escapes apply)
- slot_dependent_fields: paths of values that AgentDojo computes from injected text when it loads
  the environment (the workspace cloud drive's file `size` = len(content) in characters): filling
  a marker in environment_raw must recompute them
- user_tasks[], injection_tasks[]: see dump_task()
- failing_ground_truths: ids of the tasks whose ground truth AgentDojo's own checks reject

Paths are lists of keys (strings) and list indices (integers) into the JSON of the environment.
State diffs: entries {op, path, before, after}, op one of "change" (a scalar or a type changed),
"add" (a dict key or list item that only exists after; list index in the post list), "remove" (only
before; list index in the pre list). Dicts are compared by key, lists of the same length by
position, other lists by aligning equal items (appends and removals are then single entries).

Participant order: see stable_set_order().

Dates relative to now: AgentDojo's tools stamp some records with datetime.now() (send_email:
the new email's `timestamp`; create_file / append_to_file: the file's `last_modified`). Such values in a
state_diff are replaced by the string in `now_marker`. The environment data itself holds only fixed dates.
"""

import argparse
import contextlib
import datetime
import difflib
import json
import re
import sys

# `python3 -` puts the current directory first on sys.path: a folder named like a module there
# (agentdojo/, yaml.py, ...) would shadow the real package. Drop it.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

EXIT_USAGE = 2
EXIT_NO_AGENTDOJO = 3
NOW_MARKER = "{{now}}"
SLOT_MARKER = "{{slot:%s}}"

INSTALL_HINT = (
    "agentdojo is not importable from {python}: {error}\n"
    "Install it with scripts/setup-agentdojo.sh from the assay repository (a private virtualenv,\n"
    "pinned version; it prints the venv's python on its last line), or: python3 -m pip install agentdojo==0.1.35"
)


def fail(code, message):
    print(f"agentdojo_dump: {message}", file=sys.stderr)
    sys.exit(code)


def import_agentdojo():
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import agentdojo  # noqa: F401
            from agentdojo.task_suite import load_suites  # noqa: F401
    except ImportError as e:
        print(INSTALL_HINT.format(python=sys.executable, error=e), file=sys.stderr)
        sys.exit(EXIT_NO_AGENTDOJO)


def version_key(v):
    return tuple(int(p) for p in re.findall(r"\d+", v))


def task_sort_key(task_id):
    m = re.search(r"(\d+)$", task_id)
    return (task_id.rstrip("0123456789"), int(m.group(1)) if m else -1)


def package_version():
    from importlib import metadata

    try:
        return metadata.version("agentdojo")
    except metadata.PackageNotFoundError:
        return "unknown"


def resolve_suite(suite_name, version):
    from agentdojo.task_suite.load_suites import _SUITES, get_suites

    versions = sorted((v for v in _SUITES if _SUITES[v]), key=version_key)
    if version is None:
        version = versions[-1]
    if version not in versions:
        fail(EXIT_USAGE, f"unknown benchmark version {version!r}; valid: {', '.join(versions)}")
    suites = get_suites(version)
    if suite_name not in suites:
        fail(EXIT_USAGE, f"unknown suite {suite_name!r} in {version}; valid: {', '.join(sorted(suites))}")
    return version, suites[suite_name]


# ---------------------------------------------------------------------------------------------
# JSON helpers


def to_json(value):
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def env_json(env):
    return env.model_dump(mode="json")


def call_json(call):
    out = {"function": call.function, "args": to_json(dict(call.args))}
    if call.placeholder_args is not None:
        out["placeholder_args"] = to_json(dict(call.placeholder_args))
    return out


def short_type_name(annotation):
    import inspect

    if annotation is None or annotation is type(None):
        return "None"
    if annotation is inspect.Signature.empty:
        return ""
    text = inspect.formatannotation(annotation)
    # drop module qualifiers: agentdojo.default_suites.v1.tools.types.Email -> Email
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


# ---------------------------------------------------------------------------------------------
# Tools


def dump_tools(suite):
    import inspect

    from pydantic import TypeAdapter

    tools = []
    for f in suite.tools:
        schema = f.parameters.model_json_schema()
        ret = inspect.signature(f.run).return_annotation
        try:
            returns_schema = TypeAdapter(f.return_type).json_schema() if f.return_type is not None else None
        except Exception:  # some return types have no JSON schema; the text annotation remains
            returns_schema = None
        deps = {}
        for arg, dep in f.dependencies.items():
            target = dep.env_dependency
            deps[arg] = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
        tools.append(
            {
                "name": f.name,
                "description": f.description,
                "parameters": schema,
                "required": list(schema.get("required", [])),
                "returns": short_type_name(ret),
                "returns_schema": returns_schema,
                "env_dependencies": deps,
            }
        )
    return sorted(tools, key=lambda t: t["name"])


# ---------------------------------------------------------------------------------------------
# Environment: computed fields, slot locations


def derived_field_paths(model, path=(), out=None):
    """Paths ("*" = any dict key / list index) of fields that are not the live state:
    pydantic computed fields (inbox received/sent/drafts) and the `initial_*` seed lists that the
    models' validators turn into the live dicts (inbox.initial_emails -> emails, calendar.initial_events
    -> events, cloud_drive.initial_files -> files; the seed lists hold the same objects, so an edit
    shows in both)."""
    from pydantic import BaseModel

    if out is None:
        out = {"computed": set(), "seed": set()}
    if isinstance(model, BaseModel):
        for name in type(model).model_computed_fields:
            out["computed"].add(path + (name,))
        for name in type(model).model_fields:
            if name.startswith("initial_"):
                out["seed"].add(path + (name,))
            derived_field_paths(getattr(model, name), path + (name,), out)
    elif isinstance(model, dict):
        for v in model.values():
            derived_field_paths(v, path + ("*",), out)
    elif isinstance(model, (list, tuple)):
        for v in model:
            derived_field_paths(v, path + ("*",), out)
    return out


def path_under(path, patterns):
    for pat in patterns:
        if len(path) >= len(pat) and all(p == "*" or p == q for p, q in zip(pat, path)):
            return True
    return False


def walk_strings(value, path=()):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk_strings(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, path + (i,))


def get_path(value, path):
    for p in path:
        value = value[p]
    return value


MARKER_RE = re.compile(r"\{\{slot:([A-Za-z0-9_.\-]+)\}\}")


def locate_vectors(env_raw, env_default, vector_ids):
    """For each vector: paths of the strings holding its marker, and the text at that place in env_default."""
    locations = {v: [] for v in vector_ids}
    rendered = {v: set() for v in vector_ids}
    for path, text in walk_strings(env_raw):
        found = MARKER_RE.findall(text)
        if not found:
            continue
        for vid in found:
            if vid in locations and list(path) not in locations[vid]:
                locations[vid].append(list(path))
        # the literal parts around the markers must match the default environment's string
        parts = MARKER_RE.split(text)  # [lit, id, lit, id, ..., lit]
        pattern = "".join(re.escape(p) if i % 2 == 0 else "(.*?)" for i, p in enumerate(parts))
        try:
            target = get_path(env_default, path)
        except (KeyError, IndexError, TypeError):
            continue
        m = re.fullmatch(pattern, target, flags=re.S) if isinstance(target, str) else None
        if m is None:
            continue
        for vid, text_here in zip(parts[1::2], m.groups()):
            if vid in rendered:
                rendered[vid].add(text_here)
    out = {}
    for vid in vector_ids:
        r = rendered[vid]
        out[vid] = (locations[vid], next(iter(r)) if len(r) == 1 else None)
    return out


def fill_markers(value, texts):
    if isinstance(value, str):
        def sub(m):
            vid = m.group(1)
            return (texts[vid] or "") if vid in texts else m.group(0)

        return MARKER_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: fill_markers(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_markers(v, texts) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# State diff


def _canon(x):
    return json.dumps(x, sort_keys=True)


def state_diff(pre, post, skip=(), path=()):
    out = []
    _diff(pre, post, list(path), out)
    return [e for e in out if not path_under(tuple(e["path"]), skip)]


def _diff(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k in b:
                _diff(a[k], b[k], path + [k], out)
            else:
                out.append({"op": "remove", "path": path + [k], "before": a[k], "after": None})
        for k in b:
            if k not in a:
                out.append({"op": "add", "path": path + [k], "before": None, "after": b[k]})
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                _diff(x, y, path + [i], out)
            return
        sm = difflib.SequenceMatcher(None, [_canon(x) for x in a], [_canon(y) for y in b], autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                continue
            n = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(n):
                _diff(a[i1 + k], b[j1 + k], path + [i1 + k], out)
            for i in range(i1 + n, i2):
                out.append({"op": "remove", "path": path + [i], "before": a[i], "after": None})
            for j in range(j1 + n, j2):
                out.append({"op": "add", "path": path + [j], "before": None, "after": b[j]})
        return
    if type(a) is not type(b) or a != b:
        out.append({"op": "change", "path": path, "before": a, "after": b})


def mark_now(value, t0, t1):
    """Replace ISO datetimes produced by datetime.now() during [t0, t1] with NOW_MARKER."""
    if isinstance(value, str):
        if len(value) >= 16 and value[4:5] == "-" and "T" in value:
            try:
                t = datetime.datetime.fromisoformat(value)
            except ValueError:
                return value
            if t.tzinfo is None and t0 <= t <= t1:
                return NOW_MARKER
        return value
    if isinstance(value, dict):
        return {k: mark_now(v, t0, t1) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_now(v, t0, t1) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Tasks


def make_recorder():
    from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
    from agentdojo.agent_pipeline.ground_truth_pipeline import GroundTruthPipeline
    from agentdojo.functions_runtime import EmptyEnv

    class Recorder(BasePipelineElement):
        """GroundTruthPipeline that keeps the environment it was given (mutated in place by the tools)."""

        def __init__(self, task):
            self.inner = GroundTruthPipeline(task)
            self.env = None
            self.pre = None
            self.messages = None

        def query(self, query, runtime, env=EmptyEnv(), messages=[], extra_args={}):
            self.env = env
            self.pre = env.model_copy(deep=True)
            result = self.inner.query(query, runtime, env, messages, extra_args)
            self.messages = result[3]
            return result

    return Recorder


def run_ground_truth(suite, task, skip):
    """Run `task`'s ground truth the way AgentDojo's benchmark does without injections
    (TaskSuite.run_task_with_pipeline with a GroundTruthPipeline) and diff the environment."""
    Recorder = make_recorder()
    rec = Recorder(task)
    verdict, exc = None, None
    t0 = datetime.datetime.now()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            verdict, _ = suite.run_task_with_pipeline(rec, task, injection_task=None, injections={})
    except Exception as e:  # a ground truth call raised (GroundTruthPipeline runs with raise_on_error)
        exc = f"{type(e).__name__}: {e}"
    t1 = datetime.datetime.now()
    diff = []
    if rec.pre is not None:
        diff = mark_now(state_diff(env_json(rec.pre), env_json(rec.env), skip), t0, t1)
    return bool(verdict) if exc is None else None, exc, diff, trace_check_used(task, rec)


def trace_check_used(task, rec):
    """Does AgentDojo decide this task from the call trace? utility_from_traces / security_from_traces
    return None when they leave it to utility() / security() (combined tasks always override the
    method, and return None unless a part checks traces), so ask them on the ground-truth run."""
    from agentdojo.base_tasks import BaseUserTask
    from agentdojo.task_suite.task_suite import functions_stack_trace_from_messages, model_output_from_messages
    from agentdojo.types import get_text_content_as_str

    if rec.messages is None:
        return None
    method = task.utility_from_traces if isinstance(task, BaseUserTask) else task.security_from_traces
    try:
        output = get_text_content_as_str(model_output_from_messages(rec.messages) or [])
        verdict = method(output, rec.pre, rec.env, functions_stack_trace_from_messages(rec.messages))
    except Exception:
        return None
    return verdict is not None


def combined_parts(task):
    """Ids of the two user tasks a TaskCombinator task is made of, else None."""
    if "NewCombinedTask" not in type(task).__qualname__:
        return None
    from agentdojo.base_tasks import BaseUserTask

    parts = []
    for cell in type(task).ground_truth.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, BaseUserTask):
            parts.append(value)
    # closure cells are ordered by name: user_task_1, user_task_2
    return [p.ID for p in parts] or None


def injection_candidates(suite):
    """AgentDojo's canary method (BaseAttack.get_injection_candidates): which vectors show up in
    what the model sees when a user task's ground truth runs."""
    from agentdojo.attacks.base_attacks import BaseAttack

    class CanaryProbe(BaseAttack):
        name = "assay-canary-probe"

        def attack(self, user_task, injection_task):
            return {}

    probe = CanaryProbe(suite, None)

    def candidates(task):
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return sorted(probe.get_injection_candidates(task)), None
        except ValueError as e:  # "<task> is not injectable."
            return [], str(e)
        except Exception as e:
            return [], f"{type(e).__name__}: {e}"

    return candidates


def defined_in(registry, task_id, benchmark_version):
    versions = [v for v in registry[task_id] if v <= benchmark_version]
    if not versions:
        return None
    parts = list(max(versions))
    while len(parts) > 1 and parts[-1] == 0:  # AgentDojo's own names: (1, 0, 0) -> v1, (1, 2, 0) -> v1.2
        parts.pop()
    return "v" + ".".join(str(p) for p in parts)


def dump_task(suite, task, kind, skip, candidates=None):
    """One task. Both kinds: id, difficulty (easy/medium/hard), defined_in (the benchmark version
    whose definition is used), ground_truth ([{function, args, placeholder_args?}] from
    task.ground_truth(pre_env) on the default environment, after the user task's init_environment),
    ground_truth_output (null when empty), state_diff (pre vs post environment of the ground truth
    run through AgentDojo's FunctionsRuntime), exception (a ground-truth call that raised, else null),
    checks_traces (AgentDojo decides the task from the call trace: its utility_from_traces /
    security_from_traces gave a verdict on the ground-truth run; null if that could not be asked).
    User tasks: prompt, gt_utility (AgentDojo's utility check on its own ground truth; null when it
    raised), injection_vectors (ids of the vectors the ground truth's tool outputs show, AgentDojo's
    canary method), injection_note (why none, if so), combines (the two user task ids of a
    TaskCombinator task: prompt "1. ... 2. ...", utility = part 1 non-strict and part 2 strict).
    Injection tasks: goal, gt_security (AgentDojo's security check on the ground truth run alone, on
    a fresh default environment, as benchmark_suite_with_injections does before the pairs)."""
    env = suite.load_and_inject_default_environment({})
    if kind == "user":
        env = task.init_environment(env)
    try:
        calls = [call_json(c) for c in task.ground_truth(env.model_copy(deep=True))]
        gt_error = None
    except Exception as e:
        calls, gt_error = [], f"{type(e).__name__}: {e}"
    ok, exc, diff, by_traces = run_ground_truth(suite, task, skip)
    out = {
        "id": task.ID,
        "difficulty": task.DIFFICULTY.name.lower(),
        "ground_truth": calls,
        "ground_truth_output": task.GROUND_TRUTH_OUTPUT or None,
        "state_diff": diff,
        "exception": exc or gt_error,
    }
    if kind == "user":
        seen, note = candidates(task)
        out.update(
            {
                "prompt": task.PROMPT,
                "defined_in": defined_in(suite._user_tasks, task.ID, suite.benchmark_version),
                "gt_utility": ok,
                "injection_vectors": seen,
                "injection_note": note,
                "checks_traces": by_traces,
                "combines": combined_parts(task),
            }
        )
    else:
        out.update(
            {
                "goal": task.GOAL,
                "defined_in": defined_in(suite._injection_tasks, task.ID, suite.benchmark_version),
                "gt_security": ok,
                "checks_traces": by_traces,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------


def stable_set_order():
    """AgentDojo's calendar `create_event` does `participants = list(set(participants))`, so the order
    of a new event's participants (and of the invitation email's recipients and attachment) follows
    Python's per-process string hashing. For a byte-stable dump, `set` in that module is shadowed by
    an order-keeping dedupe (same members, first-seen order). Only this dump does this; the scorer
    runs AgentDojo untouched (its checks compare participants as sets)."""
    import importlib

    try:
        mod = importlib.import_module("agentdojo.default_suites.v1.tools.calendar_client")
    except ImportError:
        return

    def ordered_set(items=()):
        return list(dict.fromkeys(items))

    mod.set = ordered_set


def build(suite_name, version):
    import yaml

    from agentdojo.task_suite.task_suite import InjectionVector, read_suite_file

    version, suite = resolve_suite(suite_name, version)
    stable_set_order()

    vectors_yaml = yaml.safe_load(read_suite_file(suite.name, "injection_vectors.yaml", suite.data_path))
    vectors = {vid: InjectionVector.model_validate(info) for vid, info in vectors_yaml.items()}
    vector_ids = sorted(vectors)

    with contextlib.redirect_stdout(sys.stderr):
        env_model = suite.load_and_inject_default_environment({})
        env_raw_model = suite.load_and_inject_default_environment({v: SLOT_MARKER % v for v in vector_ids})
    environment = env_json(env_model)
    environment_raw = env_json(env_raw_model)
    derived = derived_field_paths(env_model)
    computed = sorted(derived["computed"], key=lambda p: [str(x) for x in p])
    seeds = sorted(derived["seed"], key=lambda p: [str(x) for x in p])
    skip = computed + seeds
    located = locate_vectors(environment_raw, environment, vector_ids)

    injection_vectors = []
    for vid in vector_ids:
        locs, rendered = located[vid]
        injection_vectors.append(
            {
                "id": vid,
                "description": vectors[vid].description,
                "default": vectors[vid].default,
                "locations": locs,
                "rendered_default": rendered,
            }
        )

    # Fields computed from injected text at load time (cloud drive files' `size` = len(content)):
    # they differ between `environment` and environment_raw with every marker replaced by its
    # rendered default. The importer must recompute them when it fills a slot.
    rendered = {vid: located[vid][1] for vid in vector_ids}
    filled = fill_markers(environment_raw, rendered)
    slot_dependent = [e["path"] for e in state_diff(filled, environment, skip)]

    candidates = injection_candidates(suite)
    user_tasks = [
        dump_task(suite, suite.user_tasks[tid], "user", skip, candidates)
        for tid in sorted(suite.user_tasks, key=task_sort_key)
    ]
    injection_tasks = [
        dump_task(suite, suite.injection_tasks[tid], "injection", skip)
        for tid in sorted(suite.injection_tasks, key=task_sort_key)
    ]
    failing = [t["id"] for t in user_tasks if t["gt_utility"] is not True] + [
        t["id"] for t in injection_tasks if t["gt_security"] is not True
    ]

    return {
        "agentdojo_version": package_version(),
        "benchmark_version": version,
        "suite": suite.name,
        "now_marker": NOW_MARKER,
        "slot_marker": SLOT_MARKER % "VECTOR_ID",
        "tools": dump_tools(suite),
        "environment": environment,
        "environment_raw": environment_raw,
        "environment_computed_fields": [list(p) for p in computed],
        "environment_seed_fields": [list(p) for p in seeds],
        "injection_vectors": injection_vectors,
        "slot_dependent_fields": slot_dependent,
        "user_tasks": user_tasks,
        "injection_tasks": injection_tasks,
        "failing_ground_truths": failing,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="agentdojo_dump",
        description="Dump an AgentDojo task suite (tools, environment, tasks, ground truths) as JSON on stdout.",
    )
    parser.add_argument("--suite", required=True, help="workspace, travel, banking or slack")
    parser.add_argument("--version", default=None, help="benchmark version, e.g. v1.2.2 (default: the newest)")
    args = parser.parse_args(argv)

    import_agentdojo()
    doc = build(args.suite, args.version)
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=None, separators=(",", ":"))
    sys.stdout.buffer.write((text + "\n").encode("utf-8"))  # UTF-8 whatever the locale
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
