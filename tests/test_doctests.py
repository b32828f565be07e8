"""The ``>>>`` examples in the package's docstrings run and print what they show.

Every module under ``src/helpers`` whose source holds a ``>>>`` example is found by reading the
files (nothing is imported to find them) and its doctests are run with the standard ``doctest``
module, so an example that drifts from the code fails here. Examples stay cheap: no model loads
(those are written as plain ``::`` code blocks instead), and the whole file runs in seconds.
"""

import doctest
import importlib
from pathlib import Path

import pytest

import helpers

PACKAGE_DIR = Path(helpers.__file__).parent
# The examples the issue found wrong; they must stay doctests, not drift back into prose.
REQUIRED = {"helpers", "helpers.tasks", "helpers.steering.sae"}


def _module_name(path: Path) -> str:
    parts = ("helpers",) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_with_examples() -> list[str]:
    return sorted(_module_name(path) for path in PACKAGE_DIR.rglob("*.py")
                  if ">>> " in path.read_text(encoding="utf-8"))


def test_the_required_modules_carry_doctests():
    missing = REQUIRED - set(modules_with_examples())
    assert not missing, (f"{sorted(missing)} lost their >>> examples; keep the docstring examples runnable "
                         "(write model-loading code as a '::' block beside them, not instead of them)")


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} mentions '>>> ' but doctest found no example in its docstrings"
    assert result.failed == 0, (f"{result.failed} of {result.attempted} doctest examples in {name} failed "
                                "(the output above shows which); update the example or the code it documents")
