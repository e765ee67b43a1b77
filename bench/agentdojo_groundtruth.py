"""Time AgentDojo's own benchmark machinery driven by its ground-truth agent.

    VENV_PYTHON bench/agentdojo_groundtruth.py [--version v1.2.2] [--suite NAME ...] [--attack direct] [--no-log]

For each suite this runs agentdojo.benchmark.benchmark_suite_with_injections, exactly as AgentDojo's
CLI (agentdojo.scripts.benchmark) does for a model, with:
- the agent: AgentDojo's GroundTruthPipeline for whichever task the query is (the pipeline is shared
  by every task, so a small dispatcher picks the task whose PROMPT / GOAL is the query);
- the attack: AgentDojo's registered "direct" attack by default (TODO: {goal} in every injection
  vector the user task's ground truth sees, found with AgentDojo's canary run);
- logging: an OutputLogger and a TraceLogger per pair writing AgentDojo's JSON run files into a
  temporary directory, as the CLI does (--no-log: the pipeline has no name, so TraceLogger saves nothing).

So it times: environment loading and injection (YAML format + pydantic validation), the ground-truth
calls through FunctionsRuntime, the utility/security checks, the injection tasks run alone (as the
benchmark does first), the canary runs, and the run logs. It prints one JSON document:
{"suites": {name: {"pairs", "seconds", "pairs_per_second", "utility_true", "security_true",
"injection_task_runs"}}, "overall": {...}, ...}. `pairs` counts user task x injection task pairs.
"""

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="agentdojo_groundtruth")
    parser.add_argument("--version", default="v1.2.2")
    parser.add_argument("--suite", action="append", default=None, help="repeatable; default: all suites")
    parser.add_argument("--attack", default="direct", help="an AgentDojo attack that needs no model name")
    parser.add_argument("--no-log", action="store_true", help="do not write AgentDojo's per-pair run files")
    args = parser.parse_args(argv)

    t_import = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        from importlib import metadata

        from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
        from agentdojo.agent_pipeline.ground_truth_pipeline import GroundTruthPipeline
        from agentdojo.attacks.attack_registry import load_attack
        from agentdojo.benchmark import benchmark_suite_with_injections
        from agentdojo.functions_runtime import EmptyEnv
        from agentdojo.logging import OutputLogger
        from agentdojo.task_suite.load_suites import get_suites
    import_seconds = time.perf_counter() - t_import

    class GroundTruthAgent(BasePipelineElement):
        """One pipeline for a whole suite: runs the ground truth of the task whose prompt is the query."""

        def __init__(self, suite, name):
            self.name = name
            self.by_query = {}
            for task in list(suite.user_tasks.values()) + list(suite.injection_tasks.values()):
                query = getattr(task, "PROMPT", None) or task.GOAL
                if query in self.by_query:
                    raise SystemExit(f"{suite.name}: two tasks share the query {query[:60]!r}")
                self.by_query[query] = GroundTruthPipeline(task)

        def query(self, query, runtime, env=EmptyEnv(), messages=[], extra_args={}):
            return self.by_query[query].query(query, runtime, env, messages, extra_args)

    suites = get_suites(args.version)
    names = args.suite or sorted(suites)
    unknown = [n for n in names if n not in suites]
    if unknown:
        print(f"unknown suite(s) {unknown}; valid: {sorted(suites)}", file=sys.stderr)
        return 2

    logging.getLogger().setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    results = {}
    total_pairs = total_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="agentdojo-gt-") as logdir:
        for name in names:
            suite = suites[name]
            agent = GroundTruthAgent(suite, None if args.no_log else "ground-truth")
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr), OutputLogger(None if args.no_log else logdir, live=None):
                attack = load_attack(args.attack, suite, agent)
                res = benchmark_suite_with_injections(
                    agent,
                    suite,
                    attack,
                    logdir=None if args.no_log else Path(logdir),
                    force_rerun=True,
                    verbose=False,
                    benchmark_version=args.version,
                )
            seconds = time.perf_counter() - t0
            pairs = len(res["utility_results"])
            results[name] = {
                "pairs": pairs,
                "user_tasks": len(suite.user_tasks),
                "injection_tasks": len(suite.injection_tasks),
                "injection_task_runs": len(res["injection_tasks_utility_results"]),
                "seconds": round(seconds, 3),
                "pairs_per_second": round(pairs / seconds, 1),
                "utility_true": sum(res["utility_results"].values()),
                "security_true": sum(res["security_results"].values()),
            }
            total_pairs += pairs
            total_seconds += seconds
        log_files = sum(len(files) for _, _, files in os.walk(logdir))

    doc = {
        "agentdojo_version": metadata.version("agentdojo"),
        "benchmark_version": args.version,
        "attack": args.attack,
        "logged": not args.no_log,
        "log_files_written": log_files,
        "python": platform.python_version(),
        "import_seconds": round(import_seconds, 3),
        "suites": results,
        "overall": {
            "pairs": int(total_pairs),
            "seconds": round(total_seconds, 3),
            "pairs_per_second": round(total_pairs / total_seconds, 1),
        },
    }
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
