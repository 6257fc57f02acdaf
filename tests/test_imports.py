"""The layering rules of docs/architecture.md ("Layers"), checked by reading every module's imports with `ast`.

Every `import` / `from ... import` counts, including those inside functions (an import moved into a function
still couples the two modules; it only hides the coupling from a reader) and, for the layers, those under
`if TYPE_CHECKING:`. Importing `a.b.c` from outside the package `a.b` also runs `a/b/__init__.py`, so that edge
counts for cycles too.
The checker is tested on synthetic module graphs and sources, so it is shown to fail on a broken import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reid", "tune", "jobs")

# group -> module prefixes (a module belongs to the group of its longest matching prefix)
GROUPS: dict[str, tuple[str, ...]] = {
    # leaf modules: the contracts (reid.spec and the schemas it uses), errors, storage locations, progress lines
    "leaves": ("reid.errors", "reid.spec", "reid.skeleton", "reid.attribute_schema", "reid.registration",
               "reid.storage", "reid.progress"),
    "config": ("reid.config.schema", "reid.config.errors"),
    "data": ("reid.data",),
    "losses": ("reid.losses",),
    "models": ("reid.models",),
    "evaluation": ("reid.evaluation",),
    "eval_run": ("reid.evaluation.run",),
    "eval_job": ("reid.batch_inference",),
    "pose": ("reid.pose",),
    "registry": ("reid.registry", "reid.config.loader"),
    "factory": ("reid.models.factory",),
    "ray_runtime": ("reid.ray_runtime", "reid.node_paths"),
    "pipeline": ("reid.data.pipeline",),
    "training": ("reid.training",),
    "pose_job": ("reid.pose.estimate",),
    "deploy": ("reid.deploy",),
    "bench": ("reid.bench",),
    "tune": ("tune",),
    "jobs": ("jobs",),
    "commands": ("reid.cli", "reid.commands"),
}
# packages whose __init__ alone has a group (a prefix would claim every module below them)
EXACT: dict[str, str] = {"reid": "package", "reid.config": "registry"}  # reid.config re-exports the loader
LIBRARY = ("leaves", "config", "data", "losses", "models", "evaluation", "pose")
# group -> the groups it may import besides itself. Two "never" rules of DESIGN.md are the gaps: models import
# neither data nor training nor the registry; losses import neither models nor the registry nor data.
ALLOWED: dict[str, frozenset[str]] = {
    "package": frozenset(),  # reid/__init__.py imports nothing; anyone may import it
    "leaves": frozenset(),
    "config": frozenset({"leaves"}),
    "data": frozenset({"leaves", "config"}),
    "losses": frozenset({"leaves"}),
    "models": frozenset({"leaves", "losses"}),
    "evaluation": frozenset({"leaves", "config", "data"}),
    "pose": frozenset({"leaves", "data"}),
    "registry": frozenset({"leaves", "config", "models"}),
    "factory": frozenset({"leaves", "config", "models", "registry"}),
    # evaluating runs needs no trainer: never reid.training (nor Ray: its Ray driver is the eval_job)
    "eval_run": frozenset({"leaves", "config", "data", "evaluation", "models", "registry", "factory"}),
    "eval_job": frozenset({"leaves", "config", "data", "evaluation", "models", "registry", "factory", "eval_run",
                           "ray_runtime"}),
    "ray_runtime": frozenset({"leaves", "config"}),
    "pipeline": frozenset({"leaves", "config", "data", "ray_runtime"}),
    "training": frozenset({*LIBRARY, "registry", "factory", "eval_run", "ray_runtime", "pipeline"}),
    "pose_job": frozenset({"leaves", "config", "data", "pose", "ray_runtime"}),
    "deploy": frozenset({*LIBRARY, "registry", "factory", "eval_run", "eval_job", "ray_runtime", "pipeline",
                         "training"}),
    "bench": frozenset({*LIBRARY, "registry", "factory", "eval_run", "eval_job", "ray_runtime", "pipeline",
                        "training", "deploy"}),
    "tune": frozenset({*LIBRARY, "registry", "factory", "eval_run", "eval_job", "ray_runtime", "pipeline",
                       "training"}),
    "jobs": frozenset({"leaves"}),
    "commands": frozenset({*LIBRARY, "registry", "factory", "eval_run", "eval_job", "ray_runtime", "pipeline", "training",
                           "pose_job", "deploy",
                           "bench", "tune"}),
}
# Ray lives in the pipeline, the training worker / driver, the Ray runtime module, evaluation's batch-inference
# driver (reid.batch_inference), the jobs that run on Ray (pose estimation, serving, benchmarks), tune/ and
# jobs/; never in the library, the registry, the factory nor the evaluation of runs (reid.evaluation.run).
RAY_GROUPS = frozenset({"ray_runtime", "pipeline", "training", "pose_job", "eval_job", "deploy", "bench", "tune",
                        "jobs"})

# Import cycles that remain, each in files this change does not own; the test fails when one disappears too, so
# that the list only shrinks. Each entry: the modules of the cycle (sorted) -> why it is still there.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {
    ("reid.data.decode", "reid.data.jpeg_store"):
        "decode reads JPEG shards through jpeg_store (inside a function) and jpeg_store uses decode's errors",
    ("reid.data.synth.generate", "reid.data.synth.source_domain"):
        "the source-domain set is rendered by generate's helpers and generate writes it (inside a function)",
    ("reid.deploy.graph", "reid.deploy.runs"):
        "runs.load_run sizes the model through graph and graph reads a Run",
    ("reid.evaluation.protocols", "reid.evaluation.two_camera"):
        "protocols dispatches to the two-camera protocol (inside a function), which builds protocols' EvalSplit",
}
# Names of allowed modules that a group still may not use: the data layer (and its Ray pipeline) takes the config's
# `data` section (DataConfig) and the seed, never the whole experiment config (issue 16, item 3).
FORBIDDEN_NAMES: dict[str, frozenset[str]] = {"data": frozenset({"ExperimentConfig"}),
                                              "pipeline": frozenset({"ExperimentConfig"})}
# Layering violations that remain (importer, imported) -> why; the same rule: the list only shrinks.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    ("reid.data.validation", "reid.evaluation.protocols"):
        "the held-out validation split is built as an evaluation EvalSplit",
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str   # a module of PACKAGES, or the top-level name of a third-party package (e.g. "ray")
    line: int
    in_function: bool
    type_only: bool = False  # under `if TYPE_CHECKING:` (not run at import time)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_sources(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[str, bool]]:
    """module -> (source, is_package) for every .py file under root/<package>."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            out[module_name(path, root)] = (path.read_text(), path.name == "__init__.py")
    return out


def _resolve(name: str, modules: set[str]) -> str:
    """`a.b.c` (a module, or a name inside a module) -> the longest module prefix; third party -> top-level name."""
    probe = name
    while probe:
        if probe in modules:
            return probe
        probe = probe.rpartition(".")[0]
    return name.split(".")[0]


def parse_imports(sources: dict[str, tuple[str, bool]]) -> list[Import]:
    """Every import of every module (module level, in functions, under TYPE_CHECKING), resolved to modules."""
    modules = set(sources)
    found = []
    for mod, (text, is_package) in sources.items():
        tree = ast.parse(text)
        in_function: set[int] = set()
        type_only: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        package = mod.split(".") if is_package else mod.split(".")[:-1]
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names]
            for name in names:
                target = _resolve(name, modules)
                if target != mod:
                    found.append(Import(mod, target, node.lineno, id(node) in in_function, id(node) in type_only))
    return found


def group_of(module: str) -> str | None:
    if module in EXACT:
        return EXACT[module]
    best, best_len = None, -1
    for group, prefixes in GROUPS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = group, len(p)
    return best


def layer_violations(imports: list[Import], modules: set[str]) -> list[str]:
    out = []
    for imp in imports:
        src = group_of(imp.importer)
        where = f"{imp.importer}:{imp.line}{' (inside a function)' if imp.in_function else ''}"
        if imp.target == "ray":
            if src not in RAY_GROUPS:
                out.append(f"{where} imports ray; Ray lives only in {sorted(RAY_GROUPS)}")
            continue
        if imp.target not in modules:
            continue
        dst = group_of(imp.target)
        if src is None or dst is None:
            out.append(f"{where}: module without a layer ({imp.importer} or {imp.target}); add it to GROUPS")
        elif dst not in (src, "package") and dst not in ALLOWED[src] and (imp.importer, imp.target) not in KNOWN_VIOLATIONS:
            out.append(f"{where} imports {imp.target}: layer '{src}' may not import layer '{dst}'")
    return list(dict.fromkeys(out))  # `from m import a, b` is one problem, not two


def forbidden_names(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """`module:line uses NAME` wherever a module of a group in FORBIDDEN_NAMES imports one of its forbidden names
    (`from m import NAME`, `import ... as NAME`) or refers to it (`NAME`, `x.NAME`); docstrings do not count."""
    out = []
    for mod, (text, _) in sources.items():
        names = FORBIDDEN_NAMES.get(group_of(mod) or "", frozenset())
        if not names:
            continue
        for node in ast.walk(ast.parse(text)):
            used: list[str] = []
            if isinstance(node, ast.Import | ast.ImportFrom):
                used = [n for a in node.names for n in (a.name.rpartition(".")[2], a.asname) if n]
            elif isinstance(node, ast.Name):
                used = [node.id]
            elif isinstance(node, ast.Attribute):
                used = [node.attr]
            out += [f"{mod}:{node.lineno} uses {n}" for n in used if n in names]
    return list(dict.fromkeys(out))


def import_graph(imports: list[Import], modules: set[str]) -> dict[str, set[str]]:
    """module -> the modules importing it runs: the target, and the target's packages outside the importer's own.
    Imports under `if TYPE_CHECKING:` never run, so they make no cycle (they still obey the layers)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.target not in modules or imp.type_only:
            continue
        graph[imp.importer].add(imp.target)
        parts = imp.target.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            own = imp.importer == parent or imp.importer.startswith(parent + ".")
            if parent in modules and not own:
                graph[imp.importer].add(parent)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(tuple(sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


@pytest.fixture(scope="module")
def project() -> tuple[list[Import], set[str]]:
    sources = read_sources(ROOT)
    return parse_imports(sources), set(sources)


def test_data_layer_takes_its_config_section_not_the_experiment_config():
    assert forbidden_names(read_sources(ROOT, ("reid",))) == []


def test_every_module_has_a_layer(project):
    _, modules = project
    assert [m for m in sorted(modules) if group_of(m) is None] == []


def test_layers_and_ray(project):
    imports, modules = project
    assert layer_violations(imports, modules) == []


def test_known_violations_still_exist(project):
    imports, modules = project
    pairs = {(i.importer, i.target) for i in imports}
    fixed = [v for v in KNOWN_VIOLATIONS if v not in pairs and set(v) <= modules]
    assert fixed == [], "fixed: remove it from KNOWN_VIOLATIONS"


def test_no_import_cycles(project):
    imports, modules = project
    found = cycles(import_graph(imports, modules))
    assert [c for c in found if c not in KNOWN_CYCLES] == []
    fixed = [c for c in KNOWN_CYCLES if c not in found and set(c) <= modules]
    assert fixed == [], "fixed: remove it from KNOWN_CYCLES"


def test_contracts_import_nothing_heavy(project):
    """Contracts and config are imported by the decoding actors' modules: no torch, no Ray when they are imported
    (reid.spec names torch for type checking only)."""
    imports, _ = project
    heavy = [f"{i.importer}:{i.line}" for i in imports if group_of(i.importer) in ("leaves", "config")
             and i.target in ("torch", "ray", "torchvision", "timm") and not i.type_only]
    assert heavy == []


# --- the checker itself, on synthetic modules ------------------------------------------------------------------


def read_sources_of(files: dict[str, str]) -> dict[str, tuple[str, bool]]:
    """`read_sources` of a synthetic tree: path -> source text."""
    return {module_name(Path(path), Path(".")): (text, Path(path).name == "__init__.py")
            for path, text in files.items()}


def _synthetic(files: dict[str, str]) -> tuple[list[Import], set[str]]:
    sources = read_sources_of(files)
    return parse_imports(sources), set(sources)


BASE = {
    "reid/__init__.py": "",
    "reid/spec.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n",
    "reid/data/__init__.py": "",
    "reid/data/pose_maps.py": "from reid.spec import BaseModel\n",
    "reid/models/__init__.py": "from reid.models import baseline\n",
    "reid/models/baseline.py": "from reid.spec import BaseModel\n",
    "reid/losses/__init__.py": "",
    "reid/losses/siamese.py": "from . import objective\n",
    "reid/losses/objective.py": "import torch\n",
    "reid/registry.py": "def get():\n    import reid.models\n",
    "reid/training/__init__.py": "",
    "reid/training/features.py": "import ray\nfrom reid.training.inputs import x\n",
    "reid/training/inputs.py": "",
}


def test_checker_passes_a_clean_synthetic_tree():
    imports, modules = _synthetic(BASE)
    assert layer_violations(imports, modules) == []
    assert cycles(import_graph(imports, modules)) == []
    relative = [i for i in imports if i.importer == "reid.losses.siamese"]
    assert [i.target for i in relative] == ["reid.losses.objective"]
    hidden = [i for i in imports if i.importer == "reid.registry"]
    assert [(i.target, i.in_function) for i in hidden] == [("reid.models", True)]
    typing_only = [i for i in imports if i.importer == "reid.spec" and i.target == "torch"]
    assert [i.type_only for i in typing_only] == [True]


@pytest.mark.parametrize("path, text, expected", [
    ("reid/models/baseline.py", "from reid.data.pose_maps import LIMBS\n", "layer 'models' may not import layer 'data'"),
    ("reid/losses/siamese.py", "def f():\n    from reid.registry import get\n",
     "reid.losses.siamese:2 (inside a function) imports reid.registry: layer 'losses' may not import layer 'registry'"),
    ("reid/models/baseline.py", "import ray.train\n", "imports ray"),
    ("reid/spec.py", "from reid.training import features\n", "layer 'leaves' may not import layer 'training'"),
    ("reid/evaluation/run/evaluate.py", "def f():\n    from reid.training.api import train\n",
     "layer 'eval_run' may not import layer 'training'"),
    ("reid/evaluation/run/evaluate.py", "import ray\n", "imports ray"),
])
def test_checker_fails_on_a_broken_import(path, text, expected):
    imports, modules = _synthetic({**BASE, path: text})
    problems = layer_violations(imports, modules)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("text, line", [
    ("from reid.config.schema import DataConfig, ExperimentConfig\n", 1),
    ("from reid.config import schema\n\n\ndef f(cfg: schema.ExperimentConfig) -> None:\n    pass\n", 4),
    ("from reid.config.schema import ExperimentConfig as Cfg\n", 1),
])
def test_checker_finds_the_experiment_config_in_the_data_layer(text, line):
    clean = {**BASE, "reid/data/pipeline.py": "from reid.config.schema import DataConfig\n"}
    assert forbidden_names(read_sources_of(clean)) == []
    for path in ("reid/data/plan.py", "reid/data/pipeline.py"):
        found = forbidden_names(read_sources_of({**clean, path: text}))
        assert found == [f"{module_name(Path(path), Path('.'))}:{line} uses ExperimentConfig"], found
    assert forbidden_names(read_sources_of({**clean, "reid/training/api.py": text})) == []  # other layers may


def test_checker_finds_a_cycle_hidden_in_a_function():
    broken = {**BASE, "reid/training/inputs.py": "def f():\n    from reid.training.features import y\n"}
    imports, modules = _synthetic(broken)
    assert cycles(import_graph(imports, modules)) == [("reid.training.features", "reid.training.inputs")]


def test_checker_ignores_a_type_checking_import_for_cycles():
    """A type annotation's import never runs: no cycle (the same import outside the guard is one, above)."""
    typed = {**BASE, "reid/training/inputs.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                "    from reid.training.features import y\n"}
    imports, modules = _synthetic(typed)
    assert cycles(import_graph(imports, modules)) == []


def test_checker_counts_the_package_init_an_import_runs():
    """registry -> reid.config.errors runs reid/config/__init__.py, whose loader imports the registry: a loop."""
    broken = {**BASE, "reid/config/__init__.py": "from reid.config.loader import build\n",
              "reid/config/errors.py": "", "reid/config/loader.py": "from reid.registry import get\n",
              "reid/registry.py": "from reid.config.errors import E\n"}
    imports, modules = _synthetic(broken)
    assert cycles(import_graph(imports, modules)) == [("reid.config", "reid.config.loader", "reid.registry")]
