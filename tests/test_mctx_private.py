"""The helpers private to mctx (`mctx._src`) that jaxmb calls: present, called as we call them.

`jaxmb.search_variants` mirrors mctx's policies step for step (its uct_depth variants), so it
calls helpers that mctx keeps in `_src` and may move or change in any release. pyproject.toml
pins mctx to the version checked here. Raising the pin: run this file (names and signatures)
and `test_search_variants.py::test_run_policy_with_unreached_uct_depth_equals_mctx` (behaviour:
the mirrored policies must still equal mctx's own).
"""

import ast
import importlib
import inspect
import pathlib

import mctx
import pytest

import jaxmb

#: The mctx release the table below was read from.
CHECKED_VERSION = "0.0.71"

_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD.description
_KEYWORD = inspect.Parameter.KEYWORD_ONLY.description

#: Every `mctx._src` name jaxmb uses, with its parameters (name, kind) in mctx CHECKED_VERSION.
EXPECTED = {
    ("mctx._src.policies", "_add_dirichlet_noise"): [
        ("rng_key", _POSITIONAL),
        ("probs", _POSITIONAL),
        ("dirichlet_alpha", _KEYWORD),
        ("dirichlet_fraction", _KEYWORD),
    ],
    ("mctx._src.policies", "_get_logits_from_probs"): [("probs", _POSITIONAL)],
    ("mctx._src.policies", "_mask_invalid_actions"): [
        ("logits", _POSITIONAL),
        ("invalid_actions", _POSITIONAL),
    ],
    ("mctx._src.policies", "_apply_temperature"): [
        ("logits", _POSITIONAL),
        ("temperature", _POSITIONAL),
    ],
    ("mctx._src.seq_halving", "score_considered"): [
        ("considered_visit", _POSITIONAL),
        ("gumbel", _POSITIONAL),
        ("logits", _POSITIONAL),
        ("normalized_qvalues", _POSITIONAL),
        ("visit_counts", _POSITIONAL),
    ],
    ("mctx._src.action_selection", "masked_argmax"): [
        ("to_argmax", _POSITIONAL),
        ("invalid_actions", _POSITIONAL),
    ],
}


def _what_to_do(checked: str) -> str:
    return (
        f"jaxmb was checked against mctx {CHECKED_VERSION}; this is mctx {mctx.__version__}. "
        f"Find where {checked} went (or copy its code from mctx {CHECKED_VERSION} into jaxmb), "
        "update the caller and EXPECTED in tests/test_mctx_private.py, then rerun "
        "tests/test_search_variants.py::test_run_policy_with_unreached_uct_depth_equals_mctx "
        "before moving the mctx pin in pyproject.toml."
    )


def _private_uses() -> dict[tuple[str, str], list[str]]:
    """`(module, name) -> files` for every `mctx._src` name used in the jaxmb package."""
    package = pathlib.Path(jaxmb.__file__).parent
    uses: dict[tuple[str, str], list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        where = str(path.relative_to(package.parent))
        aliases = {}  # local name -> mctx._src module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mctx._src"):
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    if node.module == "mctx._src" or _is_module(submodule):
                        aliases[alias.asname or alias.name] = submodule
                    else:
                        uses.setdefault((node.module, alias.name), []).append(where)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("mctx._src") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            owner = ast.unparse(node.value)
            if owner in aliases:
                uses.setdefault((aliases[owner], node.attr), []).append(where)
            elif owner.startswith("mctx._src."):
                uses.setdefault((owner, node.attr), []).append(where)
    return uses


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_every_private_use_is_checked():
    unchecked = {use: files for use, files in _private_uses().items() if use not in EXPECTED}
    assert not unchecked, (
        f"jaxmb uses mctx private names that tests/test_mctx_private.py does not check: "
        f"{unchecked}. Add each to EXPECTED with the parameters jaxmb calls it with."
    )


@pytest.mark.parametrize(
    ("module", "name"), sorted(EXPECTED), ids=[f"{m}.{n}" for m, n in sorted(EXPECTED)]
)
def test_private_name_exists_with_the_checked_signature(module, name):
    checked = f"{module}.{name}"
    try:
        owner = importlib.import_module(module)
    except ImportError as error:
        pytest.fail(f"mctx moved {module} ({error}). " + _what_to_do(checked))
    if not hasattr(owner, name):
        pytest.fail(f"mctx removed or renamed {checked}. " + _what_to_do(checked))
    parameters = [
        (parameter.name, parameter.kind.description)
        for parameter in inspect.signature(getattr(owner, name)).parameters.values()
    ]
    expected = EXPECTED[(module, name)]
    assert parameters == expected, (
        f"mctx changed the signature of {checked}: parameters {parameters}, jaxmb calls it "
        f"as {expected}. " + _what_to_do(checked)
    )
