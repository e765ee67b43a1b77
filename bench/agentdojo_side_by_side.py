"""Episodes per second: Assay on imported AgentDojo suites against AgentDojo's own ground-truth pipeline.

    bench/agentdojo-side-by-side.sh [SUITE ...]          # installs agentdojo, builds assay, runs this
    VENV_PYTHON bench/agentdojo_side_by_side.py --assay BIN [--suite NAME ...] [--repeat N]

For each suite, in one process and back to back on the same machine:

1. `assay import agentdojo --suite NAME` writes the suite as specs (timed, not counted).
2. AgentDojo: bench/agentdojo_groundtruth.py runs `benchmark_suite_with_injections` with its
   ground-truth agent on every user task x injection task pair (one episode per pair; AgentDojo also
   runs each injection task alone and its canary runs, as its benchmark always does).
3. Assay: `assay run SPECS --techniques important-instructions --slots all --store FILE` runs every
   imported pair with the three control agents (solve, naive, refuse) plus the attack-free runs, case
   QA and the run store: the default job a user runs. Episodes are counted from the store.

Both sides are timed as whole processes (wall clock, and user+system CPU of the child), so start-up,
loading and writing are included on both sides. The figure compared is episodes per second of wall
time; the ratio is Assay's over AgentDojo's, per suite and over all suites (total episodes / total
seconds). With --repeat N each side runs N times per suite and the fastest run counts (the machine's
noise only ever slows a run down).

Prints one JSON document on stdout and a table on stderr.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

HERE = Path(__file__).resolve().parent
SUITES = ["banking", "slack", "travel", "workspace"]


def timed(cmd, **kw):
    """Runs a command; (completed process, wall seconds, child CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def check(proc, what, ok=(0,)):
    if proc.returncode not in ok:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{what} failed with exit code {proc.returncode}")


def agentdojo_side(python, suite, version):
    cmd = [python, "-I", str(HERE / "agentdojo_groundtruth.py"), "--suite", suite, "--version", version]
    proc, wall, cpu = timed(cmd)
    check(proc, f"AgentDojo ground truth on {suite}")
    doc = json.loads(proc.stdout)
    s = doc["suites"][suite]
    return {"episodes": s["pairs"], "wall_seconds": wall, "cpu_seconds": cpu,
            "harness_seconds": s["seconds"], "utility_true": s["utility_true"],
            "security_true": s["security_true"]}


def assay_side(assay, specs, work, suite, run_no):
    store = work / f"{suite}-{run_no}.db"
    name = f"bench-{suite}-{run_no}"
    cmd = [assay, "run", str(specs), "--techniques", "important-instructions", "--slots", "all",
           "--store", str(store), "--name", name, "--seed", "7"]
    # Exit 1 means some gate failed (attacks succeed against control:naive by design).
    proc, wall, cpu = timed(cmd, env={**os.environ, "ASSAY_AGENTS": ""})
    check(proc, f"assay run on {suite}", ok=(0, 1))
    runs, _, _ = timed([assay, "runs", "--store", str(store), "--json"])
    check(runs, "assay runs")
    (run,) = [r for r in json.loads(runs.stdout) if r["name"] == name]
    if run["state"] != "complete" or run["stored"] != run["planned"]:
        raise SystemExit(f"assay run on {suite} did not complete: {run}")
    store.unlink()
    return {"episodes": run["stored"], "wall_seconds": wall, "cpu_seconds": cpu}


def best(runs):
    return min(runs, key=lambda r: r["wall_seconds"] / max(r["episodes"], 1))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="agentdojo_side_by_side")
    parser.add_argument("--assay", required=True, help="the assay binary (a release build)")
    parser.add_argument("--suite", action="append", default=None, help="repeatable; default: all four")
    parser.add_argument("--version", default="v1.2.2")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    suites = args.suite or SUITES
    python = sys.executable

    out = {"python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "version": args.version, "suites": {}}
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        work = Path(tmp)
        for suite in suites:
            specs = work / suite
            imp, imp_wall, _ = timed([args.assay, "import", "agentdojo", "--suite", suite,
                                      "--version", args.version, "--python", python,
                                      "--out", str(specs)])
            check(imp, f"assay import agentdojo --suite {suite}")
            report = json.loads((specs / "import-report.json").read_text())
            n_specs = len(list(specs.glob("*.yaml")))
            ad = best([agentdojo_side(python, suite, args.version) for _ in range(args.repeat)])
            us = best([assay_side(args.assay, specs, work, suite, i) for i in range(args.repeat)])
            ad["episodes_per_second"] = ad["episodes"] / ad["wall_seconds"]
            us["episodes_per_second"] = us["episodes"] / us["wall_seconds"]
            out["suites"][suite] = {
                "import_seconds": imp_wall, "specs": n_specs,
                "tasks_in_report": len(report.get("tasks", [])),
                "agentdojo": ad, "assay": us,
                "ratio": us["episodes_per_second"] / ad["episodes_per_second"],
                "ratio_cpu": (us["episodes"] / us["cpu_seconds"]) / (ad["episodes"] / ad["cpu_seconds"]),
            }
            sys.stderr.write(f"{suite}: done\n")

    def total(side, key):
        return sum(s[side][key] for s in out["suites"].values())

    ad_eps = total("agentdojo", "episodes") / total("agentdojo", "wall_seconds")
    us_eps = total("assay", "episodes") / total("assay", "wall_seconds")
    out["overall"] = {
        "agentdojo_episodes": total("agentdojo", "episodes"),
        "agentdojo_seconds": total("agentdojo", "wall_seconds"),
        "agentdojo_episodes_per_second": ad_eps,
        "assay_episodes": total("assay", "episodes"),
        "assay_seconds": total("assay", "wall_seconds"),
        "assay_episodes_per_second": us_eps,
        "ratio": us_eps / ad_eps,
    }
    print(json.dumps(out, indent=2, sort_keys=True))

    row = "{:<10} {:>6} {:>9} {:>10} {:>8} {:>9} {:>10} {:>7}\n"
    sys.stderr.write(row.format("suite", "AD eps", "AD s", "AD eps/s", "Assay ep", "Assay s", "eps/s", "ratio"))
    for name, s in out["suites"].items():
        a, u = s["agentdojo"], s["assay"]
        sys.stderr.write(row.format(name, a["episodes"], f"{a['wall_seconds']:.2f}",
                                    f"{a['episodes_per_second']:.1f}", u["episodes"],
                                    f"{u['wall_seconds']:.2f}", f"{u['episodes_per_second']:.0f}",
                                    f"{s['ratio']:.0f}x"))
    o = out["overall"]
    sys.stderr.write(row.format("all", o["agentdojo_episodes"], f"{o['agentdojo_seconds']:.2f}",
                                f"{o['agentdojo_episodes_per_second']:.1f}", o["assay_episodes"],
                                f"{o['assay_seconds']:.2f}", f"{o['assay_episodes_per_second']:.0f}",
                                f"{o['ratio']:.0f}x"))


if __name__ == "__main__":
    main()
