"""Score trajectories with AgentDojo's own checks: the parity scorer for `assay import agentdojo`.

Usage (the Rust side embeds this file, so it never relies on its own path):

    python3 - --input episodes.jsonl < agentdojo_score.py > verdicts.jsonl   # script on stdin
    python3 -c "$SCRIPT" < episodes.jsonl > verdicts.jsonl                    # episodes on stdin
    python3 agentdojo_score.py < episodes.jsonl > verdicts.jsonl

Input: JSON lines (from --input FILE, else stdin), one episode each:

    {"id": "...", "suite": "banking", "version": "v1.2.2", "user_task": "user_task_0",
     "injection_task": "injection_task_4" or null, "injections": {"VECTOR_ID": "text", ...},
     "calls": [{"function": "...", "args": {...}}, ...], "reply": "final assistant text"}

Output: one JSON line per input line, in order:

    {"id", "utility": bool|null, "security": bool|null, "errors": [...], "exception": str|null}

How an episode is scored (what AgentDojo's benchmark does with a model, the model replaced by the
recorded calls): TaskSuite.run_task_with_pipeline(pipeline, user_task, injection_task, injections)
with pipeline = InitQuery, a replay "LLM" that emits the recorded calls one per assistant message,
and AgentDojo's ToolsExecutionLoop(ToolsExecutor, replay LLM). So the environment is loaded with
the given injections (defaults for the other vectors), the user task's init_environment runs, the
pre-environment is copied, each call runs through AgentDojo's ToolsExecutor and FunctionsRuntime (a
call that raises becomes an error tool result and replay goes on; unknown tools, list-looking
string arguments and nested calls are handled by ToolsExecutor exactly as for a model), the reply
is the last assistant message, the traces are the flattened assistant tool calls, and AgentDojo's
_check_task_result runs utility_from_traces/utility and security_from_traces/security.

security is AgentDojo's: True means the ATTACK SUCCEEDED (the injection task's goal was reached);
null when no injection task is given. errors: the tool errors of the replay, as
{"index", "function", "error"}. A scoring exception (unknown suite or task, bad injection vector, a
check that raises) is reported in `exception` with utility and security null: never a verdict.
Exit codes: 0 (even with per-episode exceptions); 2 bad arguments; 3 agentdojo not importable.
"""

import argparse
import contextlib
import json
import sys
import traceback

if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

EXIT_USAGE = 2
EXIT_NO_AGENTDOJO = 3

INSTALL_HINT = (
    "agentdojo is not importable from {python}: {error}\n"
    "Install it with scripts/setup-agentdojo.sh from the assay repository (a private virtualenv,\n"
    "pinned version; it prints the venv's python on its last line), or: python3 -m pip install agentdojo==0.1.35"
)


def import_agentdojo():
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import agentdojo  # noqa: F401
            from agentdojo.task_suite import load_suites  # noqa: F401
    except ImportError as e:
        print(INSTALL_HINT.format(python=sys.executable, error=e), file=sys.stderr)
        sys.exit(EXIT_NO_AGENTDOJO)


class EpisodeError(Exception):
    pass


def make_pipeline(calls, reply):
    """AgentDojo's tool-calling pipeline with the model replaced by a replay of `calls`."""
    from agentdojo.agent_pipeline.agent_pipeline import AgentPipeline
    from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
    from agentdojo.agent_pipeline.basic_elements import InitQuery
    from agentdojo.agent_pipeline.tool_execution import ToolsExecutionLoop, ToolsExecutor
    from agentdojo.functions_runtime import EmptyEnv, FunctionCall
    from agentdojo.types import ChatAssistantMessage, text_content_block_from_string

    class ReplayLLM(BasePipelineElement):
        name = "assay-replay"

        def __init__(self):
            self.next = 0

        def query(self, query, runtime, env=EmptyEnv(), messages=[], extra_args={}):
            if self.next < len(calls):
                c = calls[self.next]
                call = FunctionCall(function=c["function"], args=dict(c.get("args") or {}), id=f"call_{self.next}")
                self.next += 1
                msg = ChatAssistantMessage(role="assistant", content=None, tool_calls=[call])
            else:
                msg = ChatAssistantMessage(
                    role="assistant", content=[text_content_block_from_string(reply)], tool_calls=None
                )
            return query, runtime, env, [*messages, msg], extra_args

    llm = ReplayLLM()
    # one iteration of the loop per recorded call, plus the one that yields the final reply
    loop = ToolsExecutionLoop([ToolsExecutor(), llm], max_iters=len(calls) + 1)
    return AgentPipeline([InitQuery(), llm, loop])


class Recording:
    """Wraps the pipeline to keep the messages it produced (for the tool errors)."""

    def __init__(self, inner):
        from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
        from agentdojo.functions_runtime import EmptyEnv

        outer = self

        class Rec(BasePipelineElement):
            name = "assay-replay"

            def query(self, query, runtime, env=EmptyEnv(), messages=[], extra_args={}):
                result = inner.query(query, runtime, env, messages, extra_args)
                outer.messages = result[3]
                return result

        self.messages = []
        self.element = Rec()


def check_episode(ep):
    if not isinstance(ep, dict):
        raise EpisodeError("an episode must be a JSON object")
    for key in ("suite", "user_task"):
        if not isinstance(ep.get(key), str):
            raise EpisodeError(f"missing or non-string field {key!r}")
    calls = ep.get("calls") or []
    if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("function"), str) for c in calls):
        raise EpisodeError("calls must be a list of {function, args}")
    for c in calls:
        if not isinstance(c.get("args", {}) or {}, dict):
            raise EpisodeError(f"args of call {c['function']!r} must be an object")
    injections = ep.get("injections") or {}
    if not isinstance(injections, dict) or not all(isinstance(v, str) for v in injections.values()):
        raise EpisodeError("injections must map vector ids to strings")
    reply = ep.get("reply")
    if reply is None:
        reply = ""
    if not isinstance(reply, str):
        raise EpisodeError("reply must be a string")
    return calls, injections, reply


def get_suite(version, name):
    from agentdojo.task_suite.load_suites import _SUITES

    if version not in _SUITES or not _SUITES[version]:
        raise EpisodeError(f"unknown benchmark version {version!r}; valid: {', '.join(sorted(v for v in _SUITES if _SUITES[v]))}")
    suites = _SUITES[version]
    if name not in suites:
        raise EpisodeError(f"unknown suite {name!r}; valid: {', '.join(sorted(suites))}")
    return suites[name]


def newest_version():
    import re

    from agentdojo.task_suite.load_suites import _SUITES

    return max((v for v in _SUITES if _SUITES[v]), key=lambda v: tuple(int(p) for p in re.findall(r"\d+", v)))


_ENVIRONMENTS = {}


def environment(suite, injections):
    """A fresh copy of the suite's default environment with `injections`: what run_task_with_pipeline
    loads itself when given none. Loading (YAML formatting and pydantic validation of the whole
    environment) dominates scoring, and the episodes of one attacked case share their injections, so
    each distinct environment is loaded once and deep-copied per episode, as AgentDojo's own
    TaskSuite.check() does."""
    key = (suite.name, suite.benchmark_version, tuple(sorted(injections.items())))
    if key not in _ENVIRONMENTS:
        if len(_ENVIRONMENTS) >= 64:
            _ENVIRONMENTS.clear()
        _ENVIRONMENTS[key] = suite.load_and_inject_default_environment(injections)
    return _ENVIRONMENTS[key].model_copy(deep=True)


def score(ep):
    calls, injections, reply = check_episode(ep)
    suite = get_suite(ep.get("version") or newest_version(), ep["suite"])
    if ep["user_task"] not in suite.user_tasks:
        raise EpisodeError(f"unknown user task {ep['user_task']!r} in {suite.name}")
    user_task = suite.user_tasks[ep["user_task"]]
    injection_task = None
    if ep.get("injection_task") is not None:
        if ep["injection_task"] not in suite.injection_tasks:
            raise EpisodeError(f"unknown injection task {ep['injection_task']!r} in {suite.name}")
        injection_task = suite.injection_tasks[ep["injection_task"]]
    unknown = sorted(set(injections) - set(suite.get_injection_vector_defaults()))
    if unknown:
        raise EpisodeError(f"unknown injection vectors in {suite.name}: {', '.join(unknown)}")

    rec = Recording(make_pipeline(calls, reply))
    with contextlib.redirect_stdout(sys.stderr):
        utility, security = suite.run_task_with_pipeline(
            rec.element, user_task, injection_task, injections, environment=environment(suite, injections)
        )

    errors = []
    index = 0
    for msg in rec.messages:
        if msg["role"] == "tool":
            if msg.get("error") is not None:
                errors.append({"index": index, "function": msg["tool_call"].function, "error": msg["error"]})
            index += 1
    return {
        "utility": bool(utility),
        "security": bool(security) if injection_task is not None else None,
        "errors": errors,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="agentdojo_score",
        description="Score JSON-lines episodes with AgentDojo's own utility/security checks.",
    )
    parser.add_argument("--input", default=None, help="episodes file (JSON lines); default: stdin")
    args = parser.parse_args(argv)
    import_agentdojo()

    # UTF-8 in and out, whatever the locale
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    out = sys.stdout.buffer
    with source:
        for lineno, raw in enumerate(source, 1):
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            result = {"id": None, "utility": None, "security": None, "errors": [], "exception": None}
            try:
                ep = json.loads(line)
                if isinstance(ep, dict):
                    result["id"] = ep.get("id")
                result.update(score(ep))
            except EpisodeError as e:
                result["exception"] = f"line {lineno}: {e}"
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)
                where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
                result["exception"] = f"line {lineno}: {type(e).__name__}: {e}{where}"
                result["utility"] = result["security"] = None
            out.write((json.dumps(result, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
            out.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader went away (`... | head`)
        sys.stderr.close()
        sys.exit(141)
