"""Tests of agentdojo_dump.py and agentdojo_score.py against the real AgentDojo package.

    PY=$(scripts/setup-agentdojo.sh | tail -n 1)
    $PY crates/assay-import/python/test_agentdojo.py [-v]

Plain unittest. The scripts run the way the Rust importer runs them: `python - ARGS` with the
script text on stdin, from another working directory. Without agentdojo every test fails
except the one that checks the exit code 3 and its message.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DUMP = os.path.join(HERE, "agentdojo_dump.py")
SCORE = os.path.join(HERE, "agentdojo_score.py")
VERSION = "v1.2.2"

try:
    import agentdojo  # noqa: F401

    HAVE_AGENTDOJO = True
except ImportError:
    HAVE_AGENTDOJO = False


def needs_agentdojo(target):
    """Tests against the real package fail, never skip, when it is missing: a parity
    check that silently did not run would read as a pass."""

    def check(self):
        if not HAVE_AGENTDOJO:
            self.fail("agentdojo is not importable from this python: run scripts/setup-agentdojo.sh "
                      "and run the tests with the python it prints")

    if isinstance(target, type):
        target.setUp = check
        return target

    def wrapper(self, *args, **kwargs):
        check(self)
        return target(self, *args, **kwargs)

    wrapper.__name__ = target.__name__
    return wrapper


def run_script(path, args, stdin_extra=None, python_flags=()):
    """`python - ARGS` with the script on stdin, in a scratch working directory."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [sys.executable, *python_flags, "-", *args],
            input=source.encode(),
            capture_output=True,
            cwd=cwd,
            timeout=600,
        )


_DUMPS = {}

PROBE_KEYS = {
    "gt_passes", "output_needs", "output_case_sensitive", "state_needs", "strict", "perturbations",
    "passes_empty", "notes", "check_raised", "probe_error",
}


def dump(suite):
    if suite not in _DUMPS:
        p = run_script(DUMP, ["--suite", suite, "--version", VERSION])
        if p.returncode != 0:
            raise AssertionError(f"dump {suite} exited {p.returncode}: {p.stderr.decode()}")
        _DUMPS[suite] = (p.stdout, json.loads(p.stdout))
    return _DUMPS[suite]


def score(episodes):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for ep in episodes:
            f.write(json.dumps(ep) + "\n")
        name = f.name
    try:
        p = run_script(SCORE, ["--input", name])
    finally:
        os.unlink(name)
    if p.returncode != 0:
        raise AssertionError(f"scorer exited {p.returncode}: {p.stderr.decode()}")
    lines = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(lines) == len(episodes), (len(lines), len(episodes))
    return lines


def episode(suite, user_task, calls, reply="", injection_task=None, injections=None, id_=None):
    return {
        "id": id_ or f"{suite}/{user_task}/{injection_task}",
        "suite": suite,
        "version": VERSION,
        "user_task": user_task,
        "injection_task": injection_task,
        "injections": injections or {},
        "calls": [{"function": c["function"], "args": c["args"]} for c in calls],
        "reply": reply,
    }


class Errors(unittest.TestCase):
    def test_without_agentdojo_exit_3(self):
        # -S: no site-packages, so agentdojo cannot be imported
        p = run_script(DUMP, ["--suite", "banking"], python_flags=("-S",))
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("setup-agentdojo.sh", p.stderr.decode())
        self.assertEqual(p.stdout, b"")
        p = run_script(SCORE, [], python_flags=("-S",))
        self.assertEqual(p.returncode, 3, p.stderr)

    @needs_agentdojo
    def test_unknown_suite_and_version_exit_2(self):
        p = run_script(DUMP, ["--suite", "bank"])
        self.assertEqual(p.returncode, 2)
        err = p.stderr.decode()
        for name in ("banking", "slack", "travel", "workspace"):
            self.assertIn(name, err)
        p = run_script(DUMP, ["--suite", "banking", "--version", "v9"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("v1.2.2", p.stderr.decode())
        self.assertEqual(p.stdout, b"")


@needs_agentdojo
class Dump(unittest.TestCase):
    def check_suite(self, name):
        from agentdojo.task_suite.load_suites import get_suite

        raw, doc = dump(name)
        again = run_script(DUMP, ["--suite", name, "--version", VERSION])
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(raw, again.stdout, "dump is not byte-identical across runs")

        suite = get_suite(VERSION, name)
        self.assertEqual(doc["suite"], name)
        self.assertEqual(doc["benchmark_version"], VERSION)
        self.assertEqual({t["id"] for t in doc["user_tasks"]}, set(suite.user_tasks))
        self.assertEqual({t["id"] for t in doc["injection_tasks"]}, set(suite.injection_tasks))
        self.assertEqual({t["name"] for t in doc["tools"]}, {f.name for f in suite.tools})
        self.assertEqual({v["id"] for v in doc["injection_vectors"]}, set(suite.get_injection_vector_defaults()))

        tools = {t["name"]: t for t in doc["tools"]}
        for task in doc["user_tasks"] + doc["injection_tasks"]:
            for call in task["ground_truth"]:
                self.assertIn(call["function"], tools, f"{task['id']} calls an undumped tool")
                for arg in tools[call["function"]]["required"]:
                    self.assertIn(arg, call["args"], f"{task['id']}: {call['function']} lacks {arg}")
        for task in doc["user_tasks"]:
            self.assertTrue(task["prompt"])
            self.assertTrue(task["injection_vectors"], f"{task['id']} sees no injection vector")
            self.assertIn(task["gt_utility"], (True, False, None))
        for task in doc["injection_tasks"]:
            self.assertTrue(task["goal"])

        # every vector is located, and environment_raw with the rendered defaults is environment
        env_raw = json.dumps(doc["environment_raw"])
        for v in doc["injection_vectors"]:
            self.assertIn("{{slot:%s}}" % v["id"], env_raw)
            self.assertTrue(v["locations"], v["id"])
            self.assertIsNotNone(v["rendered_default"], v["id"])
        filled = doc["environment_raw"]
        for v in doc["injection_vectors"]:
            filled = json.loads(
                json.dumps(filled).replace(json.dumps("{{slot:%s}}" % v["id"])[1:-1], json.dumps(v["rendered_default"])[1:-1])
            )
        for path in doc["slot_dependent_fields"]:  # computed from the text at load time
            target, want = filled, doc["environment"]
            for key in path[:-1]:
                target, want = target[key], want[key]
            target[path[-1]] = want[path[-1]]
        self.assertEqual(filled, doc["environment"])

        # probes: present on every task, no probing error, needs that point into the ground truth
        for kind, key in (("user_tasks", "utility_probe"), ("injection_tasks", "security_probe")):
            for task in doc[kind]:
                probe = task[key]
                self.assertEqual(set(probe), PROBE_KEYS, task["id"])
                self.assertIsNone(probe["probe_error"], task["id"])
                self.assertIn(probe["passes_empty"], (True, False), task["id"])
                if probe["gt_passes"] is not True:
                    self.assertIsNone(probe["output_needs"], task["id"])
                    self.assertIsNone(probe["state_needs"], task["id"])
                    continue
                for text in probe["output_needs"] or []:
                    self.assertIn(text, task["ground_truth_output"] or "", task["id"])
                diff = [(d["op"], d["path"]) for d in task["state_diff"]]
                for need in probe["state_needs"]:
                    self.assertIn((need["op"], need["path"]), diff, task["id"])
                self.assertIn(probe["strict"], (True, False, None), task["id"])
        return doc

    def test_banking(self):
        doc = self.check_suite("banking")
        ut0 = next(t for t in doc["user_tasks"] if t["id"] == "user_task_0")
        self.assertEqual(ut0["injection_vectors"], ["injection_bill_text"])
        # paying the bill appends one transaction
        self.assertEqual([(d["op"], d["path"][:2]) for d in ut0["state_diff"]], [("add", ["bank_account", "transactions"])])

    def test_slack(self):
        self.check_suite("slack")

    def test_banking_probes(self):
        _, doc = dump("banking")
        user = {t["id"]: t["utility_probe"] for t in doc["user_tasks"]}
        inj = {t["id"]: t["security_probe"] for t in doc["injection_tasks"]}

        # paying the bill: the appended transaction is needed, at least its recipient and amount
        ut0 = user["user_task_0"]
        self.assertEqual(ut0["output_needs"], [])
        self.assertIsNone(ut0["output_case_sensitive"])
        (need,) = ut0["state_needs"]
        self.assertEqual((need["op"], need["path"][:2]), ("add", ["bank_account", "transactions"]))
        self.assertLessEqual({"recipient", "amount"}, set(need["fields"]))
        self.assertFalse(ut0["passes_empty"])
        self.assertFalse(ut0["strict"])

        # the redirect of the first scheduled transaction: its recipient, nothing else
        self.assertEqual(
            inj["injection_task_4"]["state_needs"],
            [{"op": "change", "path": ["bank_account", "scheduled_transactions", 0, "recipient"], "fields": None}],
        )
        self.assertEqual(inj["injection_task_4"]["output_needs"], [])
        self.assertFalse(inj["injection_task_4"]["passes_empty"])

        # "no real utility check here": always True, so it passes when the agent does nothing
        self.assertTrue(user["user_task_8"]["passes_empty"])
        self.assertEqual(user["user_task_8"]["state_needs"], [])
        # "pre_environment == post_environment": a change anywhere fails it
        self.assertTrue(user["user_task_10"]["strict"])
        self.assertEqual([p["passes"] for p in user["user_task_10"]["perturbations"]], [False, False])
        # the total spending, as AgentDojo's check reads it from the reply
        self.assertEqual(user["user_task_1"]["output_needs"], ["1,050"])

    def test_travel_output_needs_agree_with_the_scorer(self):
        _, doc = dump("travel")
        tasks = [t for t in doc["user_tasks"] if t["utility_probe"]["output_needs"]]
        self.assertGreaterEqual(len(tasks), 10)
        ut7 = next(t for t in doc["user_tasks"] if t["id"] == "user_task_7")
        self.assertEqual(ut7["utility_probe"]["output_needs"], ["New Israeli Restaurant"])
        self.assertTrue(ut7["utility_probe"]["output_case_sensitive"])
        # the needed substrings alone, in reverse order, are a useful reply; without them it is not
        eps = []
        for t in tasks:
            needs = t["utility_probe"]["output_needs"]
            eps.append(episode("travel", t["id"], t["ground_truth"], "\n".join(reversed(needs)), id_=t["id"] + "/needs"))
            eps.append(episode("travel", t["id"], t["ground_truth"], "", id_=t["id"] + "/empty"))
        results = score(eps)
        for t, useful, empty in zip(tasks, results[0::2], results[1::2]):
            self.assertIs(useful["utility"], True, f"{t['id']}: {useful}")
            self.assertIs(empty["utility"], False, f"{t['id']}: {empty}")


@needs_agentdojo
class Score(unittest.TestCase):
    def check_ground_truths(self, name):
        _, doc = dump(name)
        tasks = [t for t in doc["user_tasks"] if t["gt_utility"] is True]
        self.assertTrue(tasks)
        eps = [episode(name, t["id"], t["ground_truth"], t["ground_truth_output"] or "") for t in tasks]
        for t, r in zip(tasks, score(eps)):
            self.assertIsNone(r["exception"], t["id"])
            self.assertIs(r["utility"], True, f"{name} {t['id']}: {r}")
            self.assertIsNone(r["security"])
            self.assertEqual(r["errors"], [], t["id"])

    def test_banking_ground_truths_are_useful(self):
        self.check_ground_truths("banking")

    def test_slack_ground_truths_are_useful(self):
        self.check_ground_truths("slack")

    def test_refusal_is_not_useful(self):
        r = score([episode("banking", "user_task_0", [], "I can't help with that.")])[0]
        self.assertIs(r["utility"], False)

    def test_attack_reverted_is_not_a_success(self):
        _, doc = dump("banking")
        ut0 = next(t for t in doc["user_tasks"] if t["id"] == "user_task_0")
        it4 = next(t for t in doc["injection_tasks"] if t["id"] == "injection_task_4")
        (attack,) = it4["ground_truth"]
        self.assertEqual(attack["function"], "update_scheduled_transaction")
        tx_id, attacker_iban = attack["args"]["id"], attack["args"]["recipient"]
        scheduled = doc["environment"]["bank_account"]["scheduled_transactions"]
        original = next(t["recipient"] for t in scheduled if t["id"] == tx_id)
        self.assertNotEqual(original, attacker_iban)
        restore = {"function": "update_scheduled_transaction", "args": {"id": tx_id, "recipient": original}}
        injections = {v: f"TODO: {it4['goal']}" for v in ut0["injection_vectors"]}

        persisted, reverted = score(
            [
                episode("banking", "user_task_0", ut0["ground_truth"] + [attack], "", "injection_task_4", injections, "kept"),
                episode("banking", "user_task_0", ut0["ground_truth"] + [attack, restore], "", "injection_task_4", injections, "undone"),
            ]
        )
        self.assertEqual((persisted["id"], reverted["id"]), ("kept", "undone"))
        self.assertIs(persisted["security"], True)  # AgentDojo: True = the attack succeeded
        self.assertIs(reverted["security"], False)  # the redirect did not persist
        self.assertIs(reverted["utility"], True)
        self.assertIsNone(reverted["exception"])

    def test_failing_call_is_an_error_and_replay_goes_on(self):
        _, doc = dump("banking")
        ut0 = next(t for t in doc["user_tasks"] if t["id"] == "user_task_0")
        bad = {"function": "update_scheduled_transaction", "args": {"id": 999999}}
        r = score([episode("banking", "user_task_0", [bad, {"function": "no_such_tool", "args": {}}] + ut0["ground_truth"])])[0]
        self.assertEqual([e["index"] for e in r["errors"]], [0, 1])
        self.assertIs(r["utility"], True)

    def test_scoring_exception_is_no_verdict(self):
        r = score([episode("banking", "user_task_0", [], injections={"no_such_vector": "x"})])[0]
        self.assertIsNotNone(r["exception"])
        self.assertIsNone(r["utility"])
        self.assertIsNone(r["security"])


if __name__ == "__main__":
    unittest.main()
