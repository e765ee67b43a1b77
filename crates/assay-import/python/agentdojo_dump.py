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

Probes (user_tasks[].utility_probe, injection_tasks[].security_probe): AgentDojo's utility() /
security() are Python, so the dump calls them (TaskSuite._check_task_result, as the benchmark and
agentdojo_score.py do: *_from_traces first, with the ground truth's call trace) on altered outcomes
of the ground-truth run (post environment, model output = GROUND_TRUTH_OUTPUT, "" when unset):
- gt_passes: the check on the ground-truth run itself. When not true, output_needs, state_needs and
  strict are null (nothing passing to start from) and a note says so.
- output_needs: substrings of the ground-truth output the check needs, all together and in any order
  (contains-all): [] when it passes with output ""; else whitespace tokens are dropped greedily while
  the check passes, each kept one is trimmed at punctuation/symbols while it passes, and tokens that
  are only accepted next to each other are joined into the phrase the output has there; null when no
  token set passes. If the kept pieces only pass in their original order, a note says so.
- output_case_sensitive: the check fails with the needed substrings lower-cased (null when none).
- state_needs: [{op, path, fields}] for the state_diff entries whose undoing (restore the pre value,
  drop the added item, re-insert the removed one), one at a time, makes the check fail. fields (for an
  added / replaced row): the row's fields whose change to a neutral value of the same type ("" / 0 /
  false / another enum member / 2000-01-01 / empty list) makes it fail; [] = only the row's presence
  counts; null = not a row.
- strict: the check fails after a change the ground truth did not make (it compares more than its
  own changes, typically the whole environment). perturbations: [{kind, path, passes}] on the largest
  collection the ground truth left untouched: "append_row" (a copy of its last row, with a fresh id)
  and "change_field" (" (assay probe)" appended to the longest string field of its last row).
  strict is null when there is no such collection.
- passes_empty: the check passes on the untouched pre environment, output "" and no calls.
- notes; check_raised: [{probe, error}] a check that raised on an altered outcome (counted as
  failing); probe_error: an exception of the probing itself (the fields it did not reach stay null).

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
    return [
        {k: e[k] for k in ("op", "path", "before", "after")} for e in state_diff_items(pre, post, skip, path)
    ]


def state_diff_items(pre, post, skip=(), path=()):
    """state_diff's entries, each also with `pre_path` and `post_path`: where the value is in the pre
    and in the post environment (for a removed item, post_path is where it would be re-inserted; for
    an added one, pre_path is None). `path` keeps state_diff's convention (pre indices, except the
    last index of an added item)."""
    out = []
    _diff(pre, post, list(path), list(path), list(path), out)
    return [e for e in out if not path_under(tuple(e["path"]), skip)]


def _diff(a, b, path, pa, pb, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k in b:
                _diff(a[k], b[k], path + [k], pa + [k], pb + [k], out)
            else:
                out.append({"op": "remove", "path": path + [k], "before": a[k], "after": None,
                            "pre_path": pa + [k], "post_path": pb + [k]})
        for k in b:
            if k not in a:
                out.append({"op": "add", "path": path + [k], "before": None, "after": b[k],
                            "pre_path": None, "post_path": pb + [k]})
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                _diff(x, y, path + [i], pa + [i], pb + [i], out)
            return
        sm = difflib.SequenceMatcher(None, [_canon(x) for x in a], [_canon(y) for y in b], autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                continue
            n = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(n):
                _diff(a[i1 + k], b[j1 + k], path + [i1 + k], pa + [i1 + k], pb + [j1 + k], out)
            for i in range(i1 + n, i2):
                out.append({"op": "remove", "path": path + [i], "before": a[i], "after": None,
                            "pre_path": pa + [i], "post_path": pb + [j1 + n]})
            for j in range(j1 + n, j2):
                out.append({"op": "add", "path": path + [j], "before": None, "after": b[j],
                            "pre_path": None, "post_path": pb + [j]})
        return
    if type(a) is not type(b) or a != b:
        out.append({"op": "change", "path": path, "before": a, "after": b, "pre_path": pa, "post_path": pb})


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
# Probes: what AgentDojo's utility() / security() need, found by calling them on altered outcomes


class _Nothing:
    pass


NOTHING = _Nothing()  # no neutral value for this field
PROBE_SUFFIX = " (assay probe)"
PROBE_NAME = "assay-probe-extra"


class Check:
    """AgentDojo's own verdict for `task` (TaskSuite._check_task_result, as run_task_with_pipeline
    calls it: utility_from_traces / security_from_traces first, then utility() / security()),
    on copies of the environments. A check that raises counts as failing and is recorded."""

    def __init__(self, suite, task, pre, traces):
        self.suite, self.task, self.pre, self.traces = suite, task, pre, traces
        self.raised = []
        self.calls = 0

    def __call__(self, label, output, post, pre=None, traces=None):
        from agentdojo.types import text_content_block_from_string

        self.calls += 1
        pre = self.pre if pre is None else pre
        traces = self.traces if traces is None else traces
        try:
            with contextlib.redirect_stdout(sys.stderr):
                verdict = self.suite._check_task_result(
                    self.task,
                    [text_content_block_from_string(output)],
                    pre.model_copy(deep=True),
                    post.model_copy(deep=True),
                    list(traces),
                )
            return bool(verdict)
        except Exception as e:
            if all(r["probe"] != label for r in self.raised):
                self.raised.append({"probe": label, "error": f"{type(e).__name__}: {e}"[:300]})
            return False


def _is_model(value):
    from pydantic import BaseModel

    return isinstance(value, BaseModel)


def _dict_key(d, key):
    if key in d:
        return key
    for k in d:
        if str(getattr(k, "value", k)) == str(key):
            return k
    raise KeyError(key)


def obj_child(value, key):
    if _is_model(value):
        return getattr(value, key)
    if isinstance(value, dict):
        return value[_dict_key(value, key)]
    return value[key]


def obj_get(value, path):
    for key in path:
        value = obj_child(value, key)
    return value


def obj_set(parent, key, new):
    if _is_model(parent):
        try:
            setattr(parent, key, new)
        except Exception:  # validate_assignment rejected the probe value: set it anyway
            parent.__dict__[key] = new
    elif isinstance(parent, dict):
        try:
            parent[_dict_key(parent, key)] = new
        except KeyError:
            parent[key] = new
    else:
        parent[key] = new


def revert_item(post, pre, item):
    """Undo one state_diff entry in `post` (in place): restore the pre value, drop the added
    item, re-insert the removed one."""
    import copy

    op, pp = item["op"], item["post_path"]
    parent = obj_get(post, pp[:-1])
    if op == "change":
        obj_set(parent, pp[-1], copy.deepcopy(obj_get(pre, item["pre_path"])))
    elif op == "add":
        if isinstance(parent, dict):
            del parent[_dict_key(parent, pp[-1])]
        else:
            del parent[pp[-1]]
    else:  # remove
        pre_parent = obj_get(pre, item["pre_path"][:-1])
        old = copy.deepcopy(obj_child(pre_parent, item["pre_path"][-1]))
        if isinstance(parent, dict):
            parent[_dict_key(pre_parent, item["pre_path"][-1])] = old
        else:
            parent.insert(min(pp[-1], len(parent)), old)


def neutral(value):
    """A plain value of the same type that differs from `value`, or NOTHING."""
    import enum

    if isinstance(value, bool):
        return not value
    if isinstance(value, enum.Enum):
        others = [m for m in type(value) if m != value]
        return others[0] if others else NOTHING
    if isinstance(value, str):
        return "" if value else "assay-probe"
    if isinstance(value, int):
        return 0 if value != 0 else 1
    if isinstance(value, float):
        return 0.0 if value != 0 else 1.0
    if isinstance(value, datetime.datetime):
        d = datetime.datetime(2000, 1, 1, tzinfo=value.tzinfo)
        return d if d != value else d + datetime.timedelta(days=1)
    if isinstance(value, datetime.date):
        d = datetime.date(2000, 1, 1)
        return d if d != value else d + datetime.timedelta(days=1)
    if isinstance(value, datetime.time):
        return datetime.time(0, 0) if value != datetime.time(0, 0) else datetime.time(1, 0)
    if isinstance(value, (list, dict)):
        return type(value)() if value else NOTHING
    return NOTHING


def _row_fields(row):
    if _is_model(row):
        return list(type(row).model_fields)
    if isinstance(row, dict):
        return list(row)
    return []


def probe_fields(check, output, post, item):
    """Fields of an added / replaced row whose change to a neutral value makes the check fail."""
    row = obj_get(post, item["post_path"])
    needed = []
    for field in _row_fields(row):
        new = neutral(obj_child(row, field))
        if new is NOTHING:
            continue
        trial = post.model_copy(deep=True)
        obj_set(obj_get(trial, item["post_path"]), field, new)
        if not check(f"field {item['post_path'] + [field]}", output, trial):
            needed.append(field)
    return needed


def _strip_symbols(text):
    import unicodedata

    def edge(ch):
        return unicodedata.category(ch)[0] in "PS"

    start, end = 0, len(text)
    while start < end and edge(text[start]):
        start += 1
    while end > start and edge(text[end - 1]):
        end -= 1
    return start, end


def _punct(ch):
    import unicodedata

    return unicodedata.category(ch)[0] in "PS"


def _edge_cuts(output, s, e):
    """The token without the punctuation and symbols at its ends."""
    ds, de = _strip_symbols(output[s:e])
    if 0 < de - ds < e - s:
        yield s + ds, s + de


def _left_cuts(output, s, e):
    """Shorter and shorter tails of the token, cut after a punctuation or symbol character
    (the caller stops at the first one the check rejects; the start moves as cuts are kept)."""
    p = s + 1
    while p < e:
        if _punct(output[p - 1]):
            ds, de = _strip_symbols(output[p:e])
            if de > ds:
                yield p + ds, p + de
                s, e = p + ds, p + de
                p = s
        p += 1


def _right_cuts(output, s, e):
    """Shorter and shorter heads of the token, cut before a punctuation or symbol character."""
    p = e - 1
    while p > s:
        if _punct(output[p]):
            ds, de = _strip_symbols(output[s:p])
            if de > ds:
                yield s + ds, s + de
                s, e = s + ds, s + de
                p = e
        p -= 1


def probe_output(check, output, post, notes):
    """The substrings of the ground-truth output the check needs (contains-all semantics)."""
    if check("output ''", "", post):
        return [], None
    kept = [[i, m.start(), m.end()] for i, m in enumerate(re.finditer(r"\S+", output))]

    def text(spans, sep=" "):
        return sep.join(output[s:e] for _, s, e in spans)

    k = 0
    while k < len(kept):
        trial = kept[:k] + kept[k + 1:]
        if check("output drop", text(trial), post):
            kept = trial
            continue
        i, s, e = kept[k]
        for label, cuts in (("output strip", _edge_cuts), ("output trim left", _left_cuts), ("output trim right", _right_cuts)):
            for cs, ce in cuts(output, s, e):
                trial = kept[:k] + [[i, cs, ce]] + kept[k + 1:]
                if not check(label, text(trial), post):
                    break
                kept, (i, s, e) = trial, (i, cs, ce)
        k += 1
    if not kept:
        notes.append("the check passes with the ground-truth output but not with '', and no token of it alone")
        return None, None
    tokens = [output[s:e] for _, s, e in kept]
    if len(tokens) == 1 or check("output reversed", "\n".join(reversed(tokens)), post):
        needs = tokens
    else:
        # kept tokens adjacent in the output as phrases (the original text between them), then split
        # each phrase where the check still passes with the parts in reverse order
        phrases = []
        for i, s, e in kept:
            if phrases and phrases[-1][-1][0] == i - 1:
                phrases[-1].append([i, s, e])
            else:
                phrases.append([[i, s, e]])

        def texts(groups):
            return [output[g[0][1]:g[-1][2]] for g in groups]

        if len(phrases) == len(kept) or not check("output phrases reversed", "\n".join(reversed(texts(phrases))), post):
            needs = tokens
            notes.append("the check needs the kept tokens in this order (in another order it fails)")
        else:
            k = 0
            while k < len(phrases):
                g = phrases[k]
                split = False
                for cut in range(1, len(g)):
                    trial = phrases[:k] + [g[:cut], g[cut:]] + phrases[k + 1:]
                    if check("output split", "\n".join(reversed(texts(trial))), post):
                        phrases = trial
                        split = True
                        break
                if not split:
                    k += 1
            needs = texts(phrases)
            if len(needs) < len(tokens):
                notes.append("some tokens adjacent in the ground-truth output are needed together, as one phrase")
    case = not check("output lower-cased", " ".join(t.lower() for t in needs), post)
    return needs, case


def _prefix(a, b):
    return len(a) <= len(b) and list(b[: len(a)]) == list(a)


def collections(model, skip, path=()):
    """Top-level collections (lists and dicts reached through model fields only), in field order."""
    for name in type(model).model_fields:
        p = path + (name,)
        if path_under(p, skip):
            continue
        value = getattr(model, name)
        if _is_model(value):
            yield from collections(value, skip, p)
        elif isinstance(value, (list, dict)) and value:
            yield list(p), value


def _new_key(existing):
    keys = [getattr(k, "value", k) for k in existing]
    if keys and all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
        return max(keys) + 1
    if keys and all(isinstance(k, str) and k.isdigit() for k in keys):
        return str(max(int(k) for k in keys) + 1)
    name, n = PROBE_NAME, 1
    while name in keys:
        n += 1
        name = f"{PROBE_NAME}-{n}"
    return name


def _id_field(row):
    if _is_model(row):
        for name in ("id", "id_"):
            if name in type(row).model_fields:
                return name
    return None


def append_row(coll):
    """Append a copy of the last row (a fresh id where the row has one); returns its key/index."""
    import copy

    if isinstance(coll, list):
        last = coll[-1]
        if isinstance(last, str):
            coll.append(PROBE_NAME)
            return len(coll) - 1
        row = copy.deepcopy(last)
        idf = _id_field(row)
        if idf is not None:
            new = _new_key([getattr(r, idf) for r in coll if _is_model(r)])
            obj_set(row, idf, new)
        coll.append(row)
        return len(coll) - 1
    old_key = list(coll)[-1]
    key = _new_key(list(coll))
    row = copy.deepcopy(coll[old_key])
    idf = _id_field(row)
    if idf is not None and str(getattr(row, idf)) == str(getattr(old_key, "value", old_key)):
        obj_set(row, idf, key if isinstance(getattr(row, idf), type(key)) else type(getattr(row, idf))(key))
    if isinstance(row, str):
        row = PROBE_NAME
    coll[key] = row
    return key


def scalar_target(value, path):
    """(path, text) of an untouched string to alter: the longest non-id string field of the last row."""
    import enum

    if isinstance(value, str) and not isinstance(value, enum.Enum):
        return path, value
    if _is_model(value):
        best = None
        for name in type(value).model_fields:
            v = getattr(value, name)
            if name in ("id", "id_") or not isinstance(v, str) or isinstance(v, enum.Enum):
                continue
            if best is None or len(v) > len(best[1]):
                best = (path + [name], v)
        return best
    if isinstance(value, list) and value:
        return scalar_target(value[-1], path + [len(value) - 1])
    if isinstance(value, dict) and value:
        key = list(value)[-1]
        return scalar_target(value[key], path + [getattr(key, "value", key)])
    return None


def probe_strict(check, output, post, items, skip):
    """Does the check fail after a change the ground truth did not make? Two perturbations on the
    largest collection the ground truth left alone: a copy of its last row appended, and the longest
    string field of its last row altered."""
    touched = [p for it in items for p in (it["path"], it["pre_path"], it["post_path"]) if p is not None]
    best = None
    for path, coll in collections(post, skip):
        if any(_prefix(path, t) or _prefix(t, path) for t in touched):
            continue
        if best is None or len(coll) > len(best[1]):
            best = (path, coll)
    if best is None:
        return None, []
    path, _ = best
    results = []
    trial = post.model_copy(deep=True)
    key = append_row(obj_get(trial, path))
    results.append({"kind": "append_row", "path": path + [getattr(key, "value", key)],
                    "passes": check("strict append_row", output, trial)})
    target = scalar_target(obj_get(post, path), list(path))
    if target is not None:
        tpath, value = target
        trial = post.model_copy(deep=True)
        obj_set(obj_get(trial, tpath[:-1]), tpath[-1], value + PROBE_SUFFIX)
        results.append({"kind": "change_field", "path": tpath, "passes": check("strict change_field", output, trial)})
    return any(not r["passes"] for r in results), results


def probe_task(suite, task, rec, items, skip):
    """What AgentDojo's check of `task` needs, starting from its ground-truth run (see dump_task)."""
    from agentdojo.task_suite.task_suite import functions_stack_trace_from_messages, model_output_from_messages
    from agentdojo.types import get_text_content_as_str

    out = {
        "gt_passes": None,
        "output_needs": None,
        "output_case_sensitive": None,
        "state_needs": None,
        "strict": None,
        "perturbations": [],
        "passes_empty": None,
        "notes": [],
        "check_raised": [],
        "probe_error": None,
    }
    check = None
    try:
        if rec.pre is not None:
            check = Check(suite, task, rec.pre, [])
            out["passes_empty"] = check("empty", "", rec.pre)
        if rec.messages is None:
            out["probe_error"] = "the ground truth did not run to the end: nothing to probe but passes_empty"
            return out
        check.traces = functions_stack_trace_from_messages(rec.messages)
        output = get_text_content_as_str(model_output_from_messages(rec.messages) or [])
        post = rec.env
        out["gt_passes"] = check("ground truth", output, post)
        if not out["gt_passes"]:
            out["notes"].append("the check fails on the ground-truth run: nothing it passes on to probe from")
            return out
        out["output_needs"], out["output_case_sensitive"] = probe_output(check, output, post, out["notes"])
        needs = []
        for item in items:
            trial = post.model_copy(deep=True)
            revert_item(trial, rec.pre, item)
            if check(f"revert {item['op']} {item['path']}", output, trial):
                continue
            fields = None
            if isinstance(item["after"], dict):
                fields = probe_fields(check, output, post, item)
            needs.append({"op": item["op"], "path": item["path"], "fields": fields})
        out["state_needs"] = needs
        out["strict"], out["perturbations"] = probe_strict(check, output, post, items, skip)
        if out["strict"] is None:
            out["notes"].append("no collection left untouched by the ground truth to perturb")
    except Exception as e:
        import traceback

        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {tb[-1].name}:{tb[-1].lineno}" if tb else ""
        out["probe_error"] = f"{type(e).__name__}: {e}{where}"
    finally:
        if check is not None:
            out["check_raised"] = check.raised
    return out


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
    diff, items = [], []
    if rec.pre is not None:
        items = state_diff_items(env_json(rec.pre), env_json(rec.env), skip)
        diff = mark_now([{k: e[k] for k in ("op", "path", "before", "after")} for e in items], t0, t1)
    return bool(verdict) if exc is None else None, exc, diff, trace_check_used(task, rec), rec, items


def security_with_goal_injected(suite, task):
    """AgentDojo's security() on the injection task's ground truth run in an environment whose every
    injection vector holds the task's GOAL: in an attacked run the attack's own text is in the
    environment, and a check that counts matching items (emails with the subject, ...) can then
    reject a successful attack. None when the run raised."""
    Recorder = make_recorder()
    rec = Recorder(task)
    injections = {v: task.GOAL for v in suite.get_injection_vector_defaults()}
    try:
        with contextlib.redirect_stdout(sys.stderr):
            verdict, _ = suite.run_task_with_pipeline(rec, task, injection_task=None, injections=injections)
    except Exception:
        return None
    return bool(verdict)


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
    a fresh default environment, as benchmark_suite_with_injections does before the pairs),
    gt_security_goal_injected (the same check with the task's GOAL in every injection vector, as the
    attack's text is in an attacked run; null when that run raised).
    utility_probe / security_probe: see the module docstring (probe_task)."""
    env = suite.load_and_inject_default_environment({})
    if kind == "user":
        env = task.init_environment(env)
    try:
        calls = [call_json(c) for c in task.ground_truth(env.model_copy(deep=True))]
        gt_error = None
    except Exception as e:
        calls, gt_error = [], f"{type(e).__name__}: {e}"
    ok, exc, diff, by_traces, rec, items = run_ground_truth(suite, task, skip)
    probe = probe_task(suite, task, rec, items, skip)
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
                "utility_probe": probe,
            }
        )
    else:
        out.update(
            {
                "goal": task.GOAL,
                "defined_in": defined_in(suite._injection_tasks, task.ID, suite.benchmark_version),
                "gt_security": ok,
                "gt_security_goal_injected": security_with_goal_injected(suite, task),
                "checks_traces": by_traces,
                "security_probe": probe,
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


def cache_environment_parsing(suite):
    """load_and_inject_default_environment parses environment.yaml on every call (most of the
    dump's time: the ground truths, the canary runs and the probes load it hundreds of times).
    Parse each distinct injected text once; every call still formats the text, validates the
    injections and builds a fresh environment with the suite's model_validate, as AgentDojo does.
    Only this dump does this (an instance attribute on this process's suite object)."""
    import copy

    import yaml

    from agentdojo.task_suite.task_suite import read_suite_file, validate_injections

    text = read_suite_file(suite.name, "environment.yaml", suite.data_path)
    defaults = suite.get_injection_vector_defaults()
    parsed = {}

    def load_and_inject_default_environment(injections):
        validate_injections(injections, defaults)
        injected = text.format(**dict(defaults, **injections))
        if injected not in parsed:
            parsed[injected] = yaml.safe_load(injected)
        return suite.environment_type.model_validate(copy.deepcopy(parsed[injected]))

    suite.load_and_inject_default_environment = load_and_inject_default_environment
    suite.get_injection_vector_defaults = lambda: dict(defaults)


def build(suite_name, version):
    import yaml

    from agentdojo.task_suite.task_suite import InjectionVector, read_suite_file

    version, suite = resolve_suite(suite_name, version)
    stable_set_order()
    cache_environment_parsing(suite)

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
