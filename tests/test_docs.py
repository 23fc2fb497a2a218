"""The documentation cannot rot: the site builds with --strict (no broken link, no missing
reference), every public name has an API reference entry, the JSON specification's table of
defaults is the code's, and the tutorial notebook runs."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jaxprune

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_every_public_name_has_a_reference_entry():
    reference = (DOCS / "reference.md").read_text()
    entries = set(re.findall(r"^::: jaxprune\.(\w+)$", reference, flags=re.M))
    assert set(jaxprune.__all__) <= entries, sorted(set(jaxprune.__all__) - entries)


def test_the_json_spec_defaults_table_is_the_code_defaults():
    """docs/cli.md's table gives every Config and Params field with its default, as JSON."""
    import json

    text = (DOCS / "cli.md").read_text()
    table = text.split("| Config field | default |")[1].split("\n\n")[0]
    documented = {}
    for row in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name, value in ((cells[0], cells[1]), (cells[3], cells[4])):
            if name:
                value = value.split(" (")[0].strip("`")  # `null` (full batch) -> null
                documented[name.strip("`")] = json.loads(value)
    defaults = {
        f.name: getattr(obj, f.name)
        for obj in (jaxprune.Config(), jaxprune.Params())
        for f in dataclasses.fields(obj)
    }
    assert documented == defaults


@pytest.mark.slow  # a subprocess that imports every module for the reference
def test_site_builds_strict(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    reference = (tmp_path / "reference" / "index.html").read_text()
    for name in jaxprune.__all__:  # each rendered, not only named
        assert f'id="jaxprune.{name}"' in reference, name


@pytest.mark.slow  # a kernel that compiles and trains 120 runs
def test_tutorial_notebook_runs(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    notebook = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert any("image/png" in out.get("data", {}) for out in outputs)  # the phase diagram
    text = "".join(out.get("text", "") for out in outputs)
    assert re.search(r"p = 0\.5 minus p = 0 at \|\|mu\|\| = 2: [+-]\d\.\d{3} \(95% CI", text)
