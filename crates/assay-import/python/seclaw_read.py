"""Reads SeClaw-Bench task directories without running any of their code.

Usage: python3 -I - TASK_DIR... < this file

Writes one JSON document to stdout: {"tasks": [ {...}, ... ]}. Every Python
file of a task (MCP servers, mock services, grader) is parsed with `ast` and
only its literal parts are read: tool definitions, the HTTP route each tool
calls, which routes change the service's state, and the grader's criteria.
YAML files are passed through as text (the caller parses them). Nothing of
the benchmark is imported or executed.
"""

import ast
import json
import os
import sys

try:
    import yaml  # PyYAML, when installed: only its safe loader is used.
except ImportError:
    yaml = None

TEXT_LIMIT = 256 * 1024
LOG_WORDS = ("audit", "log", "history", "calls")


def read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read(TEXT_LIMIT + 1)
    except OSError as e:
        return None, "cannot read: %s" % e
    if len(raw) > TEXT_LIMIT:
        return None, "larger than %d bytes" % TEXT_LIMIT
    if b"\0" in raw:
        return None, "binary"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


def parse(path):
    text, why = read_text(path)
    if text is None:
        return None, why
    try:
        return ast.parse(text, filename=path), None
    except SyntaxError as e:
        return None, "Python syntax error at line %s: %s" % (e.lineno, e.msg)


def literal(node):
    try:
        return ast.literal_eval(node)
    except Exception:
        return None


def const_str(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def path_of(node):
    """The constant path part of a URL expression: f"{BASE}/gmail/send" -> /gmail/send."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        s = node.value
    elif isinstance(node, ast.JoinedStr):
        s = "".join(
            v.value if isinstance(v, ast.Constant) else "{}" for v in node.values
        )
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        right = path_of(node.right)
        return right
    else:
        return None
    if "://" in s:
        s = s.split("://", 1)[1]
        s = "/" + s.split("/", 1)[1] if "/" in s else "/"
    while s.startswith("{}"):
        s = s[2:]
    return s if s.startswith("/") else None


def tool_defs(tree):
    """Tool(name=..., description=..., inputSchema=...) calls and dict literals."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
            if fname != "Tool":
                continue
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            if "name" not in kw:
                continue
            out.append(
                {
                    "name": literal(kw.get("name")),
                    "description": literal(kw.get("description")) if "description" in kw else "",
                    "inputSchema": literal(kw.get("inputSchema")) if "inputSchema" in kw else None,
                    "line": node.lineno,
                }
            )
        elif isinstance(node, ast.Dict):
            keys = [const_str(k) if k is not None else None for k in node.keys]
            if "name" in keys and "inputSchema" in keys:
                d = dict(zip(keys, node.values))
                out.append(
                    {
                        "name": literal(d["name"]),
                        "description": literal(d["description"]) if "description" in d else "",
                        "inputSchema": literal(d["inputSchema"]),
                        "line": node.lineno,
                    }
                )
    return out


def http_calls(nodes):
    """(method, path) of client.get/post/... calls in these nodes, in order."""
    found = []
    for top in nodes:
        for node in ast.walk(top):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "post", "put", "patch", "delete", "request")
                and node.args
            ):
                args = node.args
                method = node.func.attr.upper()
                if node.func.attr == "request" and len(args) >= 2:
                    method = (const_str(args[0]) or "POST").upper()
                    args = args[1:]
                p = path_of(args[0])
                if p is not None:
                    found.append((method, p))
    return found


def endpoints(tree):
    """Tool name -> {method, path} as the MCP server forwards calls."""
    out = {}
    default_method = None
    # A dict literal of tool name -> path (TOOL_ENDPOINTS style).
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and node.keys:
            pairs = []
            for k, v in zip(node.keys, node.values):
                ks = const_str(k) if k is not None else None
                vp = path_of(v) if v is not None else None
                if ks is None or vp is None:
                    pairs = []
                    break
                pairs.append((ks, vp))
            for k, p in pairs:
                out.setdefault(k, {"method": None, "path": p})
    calls = http_calls([tree])
    if calls:
        methods = {m for m, _ in calls}
        default_method = methods.pop() if len(methods) == 1 else None
    for v in out.values():
        v["method"] = default_method
    # Branches `if name == "X":` with an HTTP call inside.
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            if (
                isinstance(t, ast.Compare)
                and len(t.ops) == 1
                and isinstance(t.ops[0], ast.Eq)
                and isinstance(t.left, ast.Name)
                and t.left.id in ("name", "tool_name")
            ):
                s = const_str(t.comparators[0])
                hc = http_calls(node.body)
                if s and hc and s not in out:
                    out[s] = {"method": hc[0][0], "path": hc[0][1]}
    return out


def mutates(fn):
    """Whether a route handler changes module state other than its call log."""
    globals_declared = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Global):
            globals_declared.update(node.names)
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr
            in ("append", "extend", "insert", "pop", "remove", "update", "clear", "setdefault")
        ):
            base = node.func.value
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            name = base.id if isinstance(base, ast.Name) else ""
            if name and not any(w in name.lower() for w in LOG_WORDS):
                # Changes to a local list built for the answer do not count.
                if name.startswith("_") or name.isupper() or name in globals_declared or name in ("state", "db", "data", "store"):
                    return True
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if isinstance(t, (ast.Subscript, ast.Attribute)):
                    base = t
                    while isinstance(base, (ast.Subscript, ast.Attribute)):
                        base = base.value
                    name = base.id if isinstance(base, ast.Name) else ""
                    if name and not any(w in name.lower() for w in LOG_WORDS) and (
                        name.startswith("_") or name in globals_declared
                    ):
                        return True
                if isinstance(t, ast.Name) and t.id in globals_declared and not any(
                    w in t.id.lower() for w in LOG_WORDS
                ):
                    return True
    return False


def routes(tree):
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                if (
                    isinstance(d, ast.Call)
                    and isinstance(d.func, ast.Attribute)
                    and d.func.attr in ("get", "post", "put", "patch", "delete")
                    and d.args
                ):
                    p = const_str(d.args[0])
                    if p is None:
                        continue
                    out.append(
                        {
                            "method": d.func.attr.upper(),
                            "path": p,
                            "function": node.name,
                            "doc": ast.get_docstring(node) or "",
                            "mutates": mutates(node),
                        }
                    )
    return out


def criteria(tree):
    """Criteria the grader builds: {name: {type, weight}} from literal dicts."""
    out = {}

    def record(name, d):
        keys = [const_str(k) if k is not None else None for k in d.keys]
        if "type" not in keys:
            return
        vals = dict(zip(keys, d.values))
        typ = const_str(vals["type"])
        if typ not in ("must-pass", "weighted-sum"):
            return
        w = literal(vals["weight"]) if "weight" in vals else None
        out.setdefault(name, {"type": typ, "weight": w if isinstance(w, (int, float)) else None})

    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                ks = const_str(k) if k is not None else None
                if ks and isinstance(v, ast.Dict):
                    record(ks, v)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for t in node.targets:
                if isinstance(t, ast.Subscript):
                    ks = const_str(t.slice)
                    if ks:
                        record(ks, node.value)
    return out


def fractional_must_pass(tree):
    """Names of variables a must-pass criterion takes its value from that are
    also assigned a constant strictly between 0 and 1 somewhere."""
    fractional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            v = node.value.value
            if isinstance(v, float) and 0 < v < 1:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        fractional.add(t.id)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [const_str(k) if k is not None else None for k in node.keys]
            vals = dict(zip(keys, node.values))
            if const_str(vals.get("type")) != "must-pass" or "value" not in vals:
                continue
            v = vals["value"]
            if isinstance(v, ast.Constant) and isinstance(v.value, float) and 0 < v.value < 1:
                hits.append(str(v.value))
            for n in ast.walk(v):
                if isinstance(n, ast.Name) and n.id in fractional:
                    hits.append(n.id)
                if isinstance(n, ast.Constant) and isinstance(n.value, float) and 0 < n.value < 1:
                    hits.append(str(n.value))
    return sorted(set(hits))


def first_match_only(tree):
    """Tool names a grader judges by the first matching call only: a loop
    over calls with `if X == "TOOL":` whose body ends in return or break."""
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.For):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.If):
                continue
            names = [
                const_str(c)
                for c in ast.walk(stmt.test)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
            names = [n for n in names if n and n.replace("_", "").isalnum()]
            has_eq = any(
                isinstance(c, ast.Compare) and any(isinstance(o, ast.Eq) for o in c.ops)
                for c in ast.walk(stmt.test)
            )
            if names and has_eq and stmt.body and isinstance(stmt.body[-1], (ast.Return, ast.Break)):
                # A final return that only continues the search is not an exit.
                out.update(names)
    return sorted(out)


def markers(tree):
    """String lists the grader names as markers: `INJECTION_MARKERS = [...]`."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple, ast.Set)):
            for t in node.targets:
                if isinstance(t, ast.Name) and "marker" in t.id.lower():
                    v = [const_str(e) for e in node.value.elts]
                    if v and all(isinstance(x, str) and x for x in v):
                        out[t.id] = v
    return out


def walk_files(root, prefix, notes):
    files = {}
    if not os.path.isdir(root):
        return files
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full):
                notes.append("%s/%s is a symbolic link; not carried over" % (prefix, rel))
                continue
            text, why = read_text(full)
            if text is None:
                notes.append("%s/%s: %s; not carried over" % (prefix, rel, why))
                continue
            files[prefix + "/" + rel] = text
    return files


def task(d):
    t = {"dir": d, "name": os.path.basename(os.path.normpath(d)), "notes": []}
    for y in ("task.yaml", "metadata.yaml"):
        p = os.path.join(d, y)
        text, why = read_text(p) if os.path.exists(p) else (None, "missing")
        t[y.replace(".", "_")] = text
        if text is None:
            t["notes"].append("%s: %s" % (y, why))
        elif yaml is not None:
            # What SeClaw's own loader (PyYAML safe_load) makes of the file.
            try:
                t[y.replace(".", "_") + "_pyyaml"] = {"ok": True, "value": json.loads(json.dumps(yaml.safe_load(text), default=str))}
            except Exception as e:
                t[y.replace(".", "_") + "_pyyaml"] = {"ok": False, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    fx = os.path.join(d, "fixture")
    t["init_sh"] = read_text(os.path.join(fx, "init.sh"))[0] if os.path.exists(os.path.join(fx, "init.sh")) else None
    # MCP servers.
    servers = []
    mcp = os.path.join(fx, "mcp")
    for svc in sorted(os.listdir(mcp)) if os.path.isdir(mcp) else []:
        p = os.path.join(mcp, svc, "server.py")
        if not os.path.isfile(p):
            continue
        tree, why = parse(p)
        if tree is None:
            servers.append({"name": svc, "error": why, "tools": [], "endpoints": {}})
            continue
        servers.append({"name": svc, "tools": tool_defs(tree), "endpoints": endpoints(tree)})
    t["servers"] = servers
    # Mock services.
    services = []
    ms = os.path.join(fx, "mock_service")
    for svc in sorted(os.listdir(ms)) if os.path.isdir(ms) else []:
        sd = os.path.join(ms, svc)
        if not os.path.isdir(sd):
            continue
        s = {"name": svc, "routes": [], "data": {}, "notes": []}
        p = os.path.join(sd, "server.py")
        if os.path.isfile(p):
            tree, why = parse(p)
            if tree is None:
                s["notes"].append("server.py: %s" % why)
            else:
                s["routes"] = routes(tree)
        dd = os.path.join(sd, "data")
        for fn in sorted(os.listdir(dd)) if os.path.isdir(dd) else []:
            if not fn.endswith(".json"):
                continue
            text, why = read_text(os.path.join(dd, fn))
            if text is None:
                s["notes"].append("data/%s: %s" % (fn, why))
                continue
            try:
                s["data"][fn[:-5]] = json.loads(text)
            except ValueError as e:
                s["notes"].append("data/%s is not JSON: %s" % (fn, e))
        services.append(s)
    t["services"] = services
    # Files the agent can see.
    fnotes = []
    files = {}
    files.update(walk_files(os.path.join(fx, "workspace"), "/home/node/workspace", fnotes))
    files.update(walk_files(os.path.join(fx, "local_files"), "/opt/local_files", fnotes))
    t["files"] = files
    t["notes"].extend(fnotes)
    # Grader.
    g = os.path.join(d, "grader.py")
    if os.path.isfile(g):
        tree, why = parse(g)
        if tree is None:
            t["grader"] = {"error": why}
        else:
            t["grader"] = {
                "criteria": criteria(tree),
                "fractional_must_pass": fractional_must_pass(tree),
                "first_match_only": first_match_only(tree),
                "markers": markers(tree),
                "reads_audit": "audit_data" in ast.dump(tree),
            }
    else:
        t["grader"] = None
    return t


def main():
    tasks = [task(d) for d in sys.argv[1:]]
    json.dump({"tasks": tasks}, sys.stdout)


if __name__ == "__main__":
    main()
