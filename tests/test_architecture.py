"""The package's layers: interfaces -> studies -> domains -> core, imports downward only."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "helpers"


def test_packages_import_downward_only():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, \
        f"import-linter found an upward import:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"


def test_no_module_imports_after_its_first_definition():
    late = []
    for path in sorted(PACKAGE.rglob("*.py")):
        body = ast.parse(path.read_text()).body
        defined = False
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined = True
            elif defined and isinstance(node, (ast.Import, ast.ImportFrom)):
                late.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not late, f"module-level imports below a definition (a cycle dodged?): {late}"


def test_every_package_folder_is_a_regular_package():
    missing = [str(d.relative_to(ROOT)) for d in PACKAGE.rglob("*") if d.is_dir() and any(d.glob("*.py"))
               and not (d / "__init__.py").exists()]
    assert not missing, f"folders of modules without __init__.py: {missing}"
