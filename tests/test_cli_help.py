"""Every subcommand of both commands explains itself and shows an example that parses; --version; python -m."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

import pytest

import labelrefine
from labelrefine.cli import build_parser as labelrefine_parser


def _recipe_parser():
    pytest.importorskip("yaml")
    from labelrefine.recipes.calr.cli import build_parser

    return build_parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("which", ["labelrefine", "labelrefine-calr"])
def test_every_subcommand_has_a_description_and_an_example_that_parses(which):
    factory = labelrefine_parser if which == "labelrefine" else _recipe_parser()
    commands = _subcommands(factory())
    assert len(commands) >= 3
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description and sub.description in text, f"{which} {name}: no description"
        assert "example:\n" in text, f"{which} {name}: no example"
        example = text.split("example:\n", 1)[1].splitlines()[0].strip()
        argv = shlex.split(example)
        assert argv[:2] == [which, name], f"{which} {name}: the example runs {argv[:2]}"
        factory().parse_args(argv[1:])  # exits (fails the test) if the example does not parse


@pytest.mark.parametrize("module", ["labelrefine", "labelrefine.recipes.calr"])
def test_version_and_python_m(module):
    if module != "labelrefine":
        pytest.importorskip("yaml")
    proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(labelrefine.__version__)
