"""The layers' one-way imports (t2iguard/__init__.py), and a serving core free of training frameworks.

Every `import` of every module counts, at module level or inside a function: a lazy import is still a
dependency. Every Triton python stub imports the serving core, so heavy frameworks there multiply across
stubs: torch alone took 1.3 s per stub (launch-to-ready went from about 15 s to 46 s when the profile
module came to import it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> layer (package) name
FOLDERS = {"t2iguard/contract": "contract", "t2iguard/runtime": "runtime", "t2iguard/triton": "triton",
           "t2iguard/cli": "cli", "client": "client", "export": "export", "training": "training",
           "evaluation": "evaluation", "model_repository": "model_repository"}
#: layer -> the layers it may import (itself included)
ALLOWED = {
    "contract": {"contract"},
    "runtime": {"contract", "runtime"},
    "triton": {"contract", "runtime", "triton"},
    "client": {"contract", "runtime", "client"},
    "model_repository": {"contract", "runtime", "triton"},
    "export": {"contract", "runtime", "export"},
    "training": {"contract", "runtime", "export", "training"},
    "evaluation": {"contract", "runtime", "client", "export", "training", "evaluation"},
    "cli": {"contract", "runtime", "triton", "client", "export", "training", "evaluation", "cli"},
}


def layer_of(module: str) -> str | None:
    """'t2iguard.runtime.text' -> 'runtime'; None for modules outside t2iguard's layers."""
    parts = module.split(".")
    if parts[0] != "t2iguard" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ALLOWED else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported t2iguard module) for every import statement in the file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.lineno, f"{node.module}.{a.name}" if node.module == "t2iguard" else node.module)
                    for a in node.names]
    return [(line, m) for line, m in out if m.startswith("t2iguard")]


def test_every_layer_imports_only_the_layers_below_it():
    broken = []
    for folder, layer in FOLDERS.items():
        files = sorted((ROOT / folder).rglob("*.py"))
        assert files, f"no sources under {folder}"
        for path in files:
            for line, module in imports_of(path):
                target = layer_of(module)
                if module == "t2iguard" or target is None:
                    broken.append(f"{path.relative_to(ROOT)}:{line} imports {module} (not a layer)")
                elif target not in ALLOWED[layer]:
                    broken.append(f"{path.relative_to(ROOT)}:{line}: {layer} imports {module}")
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


def test_the_rule_sees_lazy_imports(tmp_path):
    """The checker itself: an import inside a function counts."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from t2iguard.export.build import build_repository\n")
    assert imports_of(src) == [(2, "t2iguard.export.build")]
    assert layer_of("t2iguard.export.build") == "export" not in ALLOWED["runtime"]


def test_serving_core_imports_no_training_framework():
    """What `t2iguard/triton/backend.py` and the python models import (the stub's own
    `triton_python_backend_utils` aside, which only a stub has) pulls in no training framework."""
    served = [ROOT / "t2iguard/triton/backend.py", *sorted((ROOT / "model_repository").rglob("model.py"))]
    core = sorted({m for path in served for _, m in imports_of(path)} - {"t2iguard.triton.backend"})
    assert "t2iguard.runtime.pipeline" in core
    code = (f"import sys\nfor m in {core!r}: __import__(m)\n"
            "print(','.join(sorted({'torch', 'transformers', 'diffusers', 't2iguard.export', 't2iguard.training', "
            "'t2iguard.evaluation'} & set(sys.modules))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the serving core imports {out.stdout.strip()}"


def test_every_python_model_ships_in_the_wheel():
    """pyproject.toml lists packages one by one: a model_repository/ folder left out of the list would be missing
    from an installed (non-editable) package, and `build` would fail to copy its model.py."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {f"t2iguard.model_repository.{p.parent.name}" for p in (ROOT / "model_repository").glob("*/model.py")}
    assert folders and folders <= listed, sorted(folders - listed)
