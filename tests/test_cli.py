"""The console command and the quickstart script, end to end at a tiny size: every refusal is
one line on stderr, status 2, in the command line's own names; plot never averages silently."""

import errno
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jaxprune
from jaxprune import cli
from jaxprune.cells import cell_stats
from jaxprune.plot import phase_diagram
from jaxprune.stats import ci_half_width, grouped_mean_ci

ROOT = Path(__file__).resolve().parents[1]
SPEC = {
    "config": {"dim": 8, "width": 3, "n_train": 6, "n_test": 16, "steps": 4, "log_every": 2},
    "grid": {"prune_frac": [0.0, 0.5], "mu_norm": [1.0, 4.0], "sigma_noise": [0.5, 1.0]},
    "seeds": 2,
}


@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def swept(tmp_path_factory):
    """One tiny sweep from a JSON specification through `jaxprune sweep`, shared by the module:
    prune_frac x mu_norm x sigma_noise x 2 seeds (16 runs)."""
    folder = tmp_path_factory.mktemp("cli")
    spec = folder / "spec.json"
    spec.write_text(json.dumps(SPEC))
    cli.main(["sweep", str(spec), "--out", str(folder / "sweep"), "--chunk-size", "8"])
    assert len(list((folder / "sweep").glob("part-*.parquet"))) == 2  # one per seed
    return folder / "sweep"


def run_cli(argv, capsys) -> str:
    """Run `jaxprune ARGV`, expecting a refusal: status 2 and one line on stderr; returns it."""
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(a) for a in argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


def test_info(capsys):
    cli.main(["info"])
    out = capsys.readouterr().out
    assert f"jaxprune_version: {jaxprune.__version__}" in out and "backend: cpu" in out
    assert "device: " in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"jaxprune {jaxprune.__version__}\n"


def test_every_option_has_help_text():
    top = cli.build_parser()
    commands = top._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"jaxprune {name} {action.option_strings or action.dest}"


@pytest.mark.slow  # a subprocess
def test_quickstart_quick_writes_parquet_and_png(tmp_path):
    out = tmp_path / "qs"
    done = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "quickstart.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    frame = jaxprune.load(out)
    last = jaxprune.final(frame)
    assert len(last) == 3 * 2 * 2 and set(last.prune_frac) == {0.0, 0.5, 0.99}
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # progress on stderr, one line per update (not a terminal): done/total, rate, elapsed, ETA
    line = r"\[jaxprune\] 100%\|#{24}\| 12/12 runs +[0-9.]+ runs/s elapsed \d\d:\d\d ETA 00:00"
    # (tqdm pads a rate below 10 to five characters: " 7.67 runs/s")
    assert re.search(line, done.stderr), done.stderr

    cli.main(["plot", str(out), "--value", "train_acc", "--out", str(tmp_path / "t.png")])
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_sweep_from_json_spec(swept):
    last = jaxprune.final(jaxprune.load(swept))
    assert len(last) == 2 * 2 * 2 * 2
    assert set(last.sigma_noise) == {0.5, 1.0} and set(last.seed) == {0, 1}


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_plot_writes_beside_the_data_named_by_its_choices(swept, capsys):
    before = _listing(swept)
    cli.main(["plot", str(swept), "--mean-over", "sigma_noise"])
    figure = swept.parent / "sweep-test_acc-prune_frac-mu_norm-mean-sigma_noise.png"
    assert capsys.readouterr().out == f"wrote {figure}\n"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    part = sorted(swept.glob("part-*.parquet"))[0]
    cli.main(["plot", str(part), "--x", "mu_norm", "--y", "sigma_noise", "--facet", "prune_frac"])
    name = f"sweep-{part.stem}-test_acc-mu_norm-sigma_noise-facet-prune_frac.png"
    assert (swept.parent / name).stat().st_size > 10_000

    choices = ["--facet", "sigma_noise", "--log1mp", "--contours", "benign_score=1,2"]
    cli.main(["plot", str(swept), "--value", "train_loss", *choices, "--vmin", "0", "--vmax", "1"])
    name = (
        "sweep-train_loss-prune_frac-mu_norm-facet-sigma_noise-contour-benign_score-1_2-"
        "vmin-0-vmax-1-log1mp.png"
    )
    assert (swept.parent / name).stat().st_size > 10_000
    assert _listing(swept) == before  # nothing inside the dataset directory
    assert len(pd.read_parquet(swept)) == 16 * 3  # 16 runs x 3 logged steps, still readable


def test_refusals_carry_their_field_and_render_in_flag_names():
    """Errors as data: the field, the value and the arguments a refusal suggests, written in
    the API's names by str() and in the command line's by render(flags)."""
    from jaxprune.config import InvalidValue, Option

    flags = {**cli.SWEEP_FLAGS, **cli.PLOT_FLAGS}
    error = InvalidValue(
        "chunk_size",
        4,
        "differs from the chunks [[8, 2]]: {0} to resume it, or {1}; choose another {2}.",
        Option("chunk_size", None),
        Option("overwrite", True),
        Option("out"),
    )
    assert isinstance(error, ValueError) and (error.field, error.value) == ("chunk_size", 4)
    assert str(error) == (
        "chunk_size = 4 differs from the chunks [[8, 2]]: pass chunk_size=None to resume it, or "
        "pass overwrite=True; choose another `out`."
    )
    assert error.render(flags) == (
        "--chunk-size 4 differs from the chunks [[8, 2]]: leave out --chunk-size to resume it, "
        "or pass --overwrite; choose another --out."
    )
    field = InvalidValue("out", 3, "is invalid: must be >= 4.", owner="Config")
    assert str(field) == field.render(flags) == "Config.out = 3 is invalid: must be >= 4."
    with pytest.raises(InvalidValue) as refused:
        jaxprune.Config(dim=0)
    assert (refused.value.owner, refused.value.field, refused.value.value) == ("Config", "dim", 0)



def _case(name, argv, *message):
    return pytest.param(argv, message, id=name)


CLI_REFUSALS = [
    _case(
        "unknown value column",
        ["plot", "{swept}", "--value", "test_accuracy"],
        "jaxprune plot: error: --value test_accuracy is not a measurement in the results: "
        "choose one of train_loss, train_acc, test_loss, test_acc, test_acc_clean,",
    ),
    _case(
        "silent average refused",
        ["plot", "{swept}"],
        "jaxprune plot: error: sigma_noise (2 values) varies in the results but is on no axis, so "
        "each cell would average over it: pass --mean-over sigma_noise to average on purpose, "
        "--facet sigma_noise for one panel per value, or put it on an axis.",
    ),
    _case(
        "two fields averaged",
        ["plot", "{swept}", "--y", "sigma_init"],
        "jaxprune plot: error: mu_norm (2 values) and sigma_noise (2 values) vary in the results "
        "but are on no axis, so each cell would average over them: pass --mean-over "
        "mu_norm,sigma_noise to average on purpose, --facet mu_norm (with --mean-over "
        "sigma_noise) for one panel per value, or put them on an axis.",
    ),
    _case(
        "unknown axis",
        ["plot", "{swept}", "--x", "p"],
        "jaxprune plot: error: --x p is not a swept field of the results: choose one of "
        "prune_frac, mu_norm, sigma_noise, sigma_init, lr, label_flip.",
    ),
    _case(
        "same axes",
        ["plot", "{swept}", "--x", "mu_norm"],
        "jaxprune plot: error: --x mu_norm is invalid: it equals --y; the axes must be two fields.",
    ),
    _case(
        "facet on an axis",
        ["plot", "{swept}", "--facet", "mu_norm"],
        "jaxprune plot: error: --facet mu_norm is invalid: mu_norm is drawn already.",
    ),
    _case(
        "unknown mean-over",
        ["plot", "{swept}", "--mean-over", "sigma_noise,seed"],
        "jaxprune plot: error: --mean-over seed is not a swept field of the results",
    ),
    _case(
        "contour without levels",
        ["plot", "{swept}", "--mean-over", "sigma_noise", "--contours", "benign_score"],
        "jaxprune plot: error: --contours benign_score is invalid: give COLUMN=LEVEL[,LEVEL...]",
    ),
    _case(
        "unknown contour column",
        ["plot", "{swept}", "--mean-over", "sigma_noise", "--contours", "snr=1"],
        "jaxprune plot: error: contour column 'snr' is not a measurement in the results",
    ),
    _case(
        "empty colour range",
        ["plot", "{swept}", "--mean-over", "sigma_noise", "--vmin", "1", "--vmax", "0.5"],
        "jaxprune plot: error: --vmin 1.0 is invalid: must be below --vmax (0.5).",
    ),
    _case(
        "log1mp without p",
        ["plot", "{swept}", "--x", "mu_norm", "--y", "sigma_noise", "--mean-over", "prune_frac"]
        + ["--log1mp"],
        "jaxprune plot: error: --log1mp is invalid: prune_frac is on no axis.",
    ),
    _case(
        "figure inside the dataset",
        ["plot", "{swept}", "--mean-over", "sigma_noise", "--out", "{swept}/figs/f.png"],
        "jaxprune plot: error: --out {swept}/figs/f.png is inside the sweep directory {swept}, "
        "where it would break pandas.read_parquet('{swept}'): write the figure elsewhere.",
    ),
    _case(
        "unknown image format",
        ["plot", "{swept}", "--mean-over", "sigma_noise", "--out", "{tmp}/f.yaml"],
        "jaxprune plot: error: --out {tmp}/f.yaml is invalid: its suffix names the image format, "
        "one of ",
    ),
    _case(
        "figure in a missing folder",
        ["plot", "{swept}", "--mean-over", "sigma_noise", "--out", "{tmp}/nope/f.png"],
        "jaxprune plot: error: No such file or directory: {tmp}/nope/f.png",
    ),
    _case(
        "not a number",
        ["plot", "{swept}", "--vmin", "abc"],
        "jaxprune plot: error: argument --vmin: invalid float value: 'abc' "
        "(see jaxprune plot --help)",
    ),
    _case(
        "unknown option",
        ["plot", "{swept}", "--colour", "red"],
        "jaxprune plot: error: unrecognized arguments: --colour red (see jaxprune plot --help)",
    ),
    _case(
        "no results",
        ["plot", "{tmp}/no-such-results"],
        "jaxprune plot: error: no sweep output at {tmp}/no-such-results",
    ),
    _case(
        "not parquet",
        ["plot", "{tmp}/spec.json"],
        "jaxprune plot: error: ",
        "Parquet magic bytes not found in footer.",
    ),
    _case("no command", [], "jaxprune: error: the following arguments are required: command"),
    _case(
        "no such script",
        ["sweep", "{tmp}/no-such-sweep.py"],
        "jaxprune sweep: error: no sweep script or specification at {tmp}/no-such-sweep.py",
    ),
    _case(
        "yaml spec",
        ["sweep", "{tmp}/spec.yaml", "--out", "{tmp}/o"],
        "jaxprune sweep: error: {tmp}/spec.yaml is neither a sweep script (.py) nor a JSON "
        "specification (.json).",
    ),
    _case(
        "spec is a list",
        ["sweep", "{tmp}/list.json", "--out", "{tmp}/o"],
        "jaxprune sweep: error: {tmp}/list.json holds a JSON list: a sweep specification is a "
        "JSON object with keys preset, config, params, grid, derived, seeds.",
    ),
    _case(
        "config is a list",
        ["sweep", "{tmp}/config-list.json", "--out", "{tmp}/o"],
        'jaxprune sweep: error: "config": [1, 2] is invalid: must be a JSON object of Config '
        "fields and their values.",
    ),
    _case(
        "unknown spec key",
        ["sweep", "{tmp}/unknown-key.json", "--out", "{tmp}/o"],
        "jaxprune sweep: error: sweep specification has unknown keys ['gird']: allowed are "
        "preset, config, params, grid, derived, seeds.",
    ),
    _case(
        "unknown Config field",
        ["sweep", "{tmp}/dimm.json", "--out", "{tmp}/o"],
        "jaxprune sweep: error: Config has no field 'dimm'",
    ),
    _case(
        "invalid value in spec",
        ["sweep", "{tmp}/bad-p.json", "--out", "{tmp}/o"],
        "jaxprune sweep: error: Params.prune_frac = 1.5 is invalid: must lie in [0, 1)",
    ),
    _case(
        "broken JSON",
        ["sweep", "{tmp}/broken.json", "--out", "{tmp}/o"],
        "jaxprune sweep: error: {tmp}/broken.json is not valid JSON: Expecting value: line 1",
    ),
    _case(
        "equal in float32",
        ["sweep", "{tmp}/float32.json", "--out", "{tmp}/o"],
        "jaxprune sweep: error: grid['prune_frac'] holds 0.1 and 0.100000000001, the same "
        "float32 (0.1), the precision runs compute in: values must be distinct in float32.",
    ),
    _case(
        "spec without out",
        ["sweep", "{tmp}/spec.json"],
        "jaxprune sweep: error: --out is required for a sweep specification.",
    ),
    _case(
        "script arguments to a spec",
        ["sweep", "{tmp}/spec.json", "--out", "{tmp}/o", "--quick"],
        "jaxprune sweep: error: unrecognized arguments for a specification: --quick",
    ),
    _case(
        "unwritable out",
        ["sweep", "{tmp}/spec.json", "--out", "{tmp}/spec.json/o"],
        "jaxprune sweep: error: Not a directory: {tmp}/spec.json/o",
    ),
    _case(
        "memory budget",
        ["sweep", "{tmp}/spec.json", "--out", "{tmp}/o", "--memory-budget", "-1"],
        "jaxprune sweep: error: --memory-budget -1.0 is invalid: must be a number > 0 (GiB).",
    ),
    _case(
        "memory budget too small",
        ["sweep", "{tmp}/spec.json", "--out", "{tmp}/o", "--memory-budget", "1e-9"],
        "jaxprune sweep: error: --memory-budget 1e-09 is too small:",
        "Raise --memory-budget, or reduce",
    ),
    _case(
        "chunk size",
        ["sweep", "{tmp}/spec.json", "--out", "{tmp}/o", "--chunk-size", "0"],
        "jaxprune sweep: error: --chunk-size 0 is invalid: must be an int >= 1",
    ),
    _case(
        "seeds",
        ["sweep", "{tmp}/spec.json", "--out", "{tmp}/o", "--seeds", "0"],
        "jaxprune sweep: error: --seeds 0 is invalid:",
    ),
    _case(
        "different sweep at out",
        ["sweep", "{tmp}/spec.json", "--out", "{swept}", "--seeds", "3"],
        "jaxprune sweep: error: --out {swept} holds a different sweep",
        "--overwrite",
    ),
    _case(
        "other chunks at out",
        ["sweep", "{tmp}/spec.json", "--out", "{swept}", "--chunk-size", "1"],
        "jaxprune sweep: error: --chunk-size 1 differs from the chunks",
        "leave out --chunk-size to resume it, or pass --overwrite",
    ),
]


@pytest.fixture
def bad_inputs(tmp_path):
    """The files the refusals read, in tmp_path."""
    files = {
        "spec.json": json.dumps(SPEC),
        "spec.yaml": "grid: {prune_frac: [0.1]}\n",
        "list.json": "[1, 2, 3]",
        "config-list.json": json.dumps({"config": [1, 2]}),
        "unknown-key.json": json.dumps({"gird": {"prune_frac": [0.1]}}),
        "dimm.json": json.dumps({"config": {"dimm": 10}}),
        "bad-p.json": json.dumps({**SPEC, "grid": {"prune_frac": [1.5]}}),
        "broken.json": "",
        "float32.json": json.dumps(SPEC).replace("[0.0, 0.5]", "[0.1, 0.100000000001]"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("argv,message", CLI_REFUSALS)
def test_command_line_refusals_are_one_line(argv, message, swept, bad_inputs, capsys):
    def fill(text):
        return text.format(swept=swept, tmp=bad_inputs)

    before = _listing(swept)
    line = run_cli([fill(a) for a in argv], capsys)
    assert line.startswith(fill(message[0])), line
    for part in message[1:]:
        assert fill(part) in line, line
    for api_name in ("overwrite=True", "memory_budget_gb", "chunk_size", "out = ", "mean_over"):
        assert api_name not in line
    assert _listing(swept) == before


def test_read_only_out_is_one_line(tmp_path, bad_inputs, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anyway: the file system refuses as it would a user

        def refuse(path, *args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(Path, "mkdir", refuse)
    line = run_cli(["sweep", bad_inputs / "spec.json", "--out", locked / "o"], capsys)
    assert line == f"jaxprune sweep: error: Permission denied: {locked / 'o'}"


@pytest.mark.slow  # a subprocess
def test_a_refusal_from_the_console_is_one_line_without_traceback(swept):
    """The real process: status 2, one line on stderr and nothing else (no warning either)."""
    done = subprocess.run(
        [sys.executable, "-m", "jaxprune.cli", "plot", str(swept), "--value", "test_accuracy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("jaxprune plot: error: --value test_accuracy is not a")


def test_phase_diagram_draws_the_cell_means_on_numeric_axes(swept):
    """The drawn cells are the seed-means of the per-seed average over sigma_noise, at the
    grid values' coordinates; the caption gives seeds per cell and the largest CI half-width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = jaxprune.load(swept)
    ax = phase_diagram(frame, mean_over="sigma_noise", log1mp=True)
    last = jaxprune.final(frame)
    per_seed = last.groupby(["mu_norm", "prune_frac", "seed"]).test_acc.mean()
    cells = per_seed.groupby(level=["mu_norm", "prune_frac"])
    expected = cells.mean().unstack("prune_frac").to_numpy()  # rows mu_norm 1, 4
    mesh = ax.collections[0]
    np.testing.assert_allclose(mesh.get_array().reshape(2, 2), expected, rtol=1e-12)
    x_edges = -np.log10(1 - np.array([0.0, 0.5]))  # log(1 - p) coordinates of p = 0, 0.5
    half = x_edges[1] / 2
    coords = mesh.get_coordinates()  # (rows + 1, cols + 1, 2) cell corners
    np.testing.assert_allclose(coords[0, :, 0], [-half, half, x_edges[1] + half])
    np.testing.assert_allclose(coords[:, 0, 1], [-0.5, 2.5, 5.5])  # mu_norm 1, 4: linear
    ci = max(float(ci_half_width(v.to_numpy())) for _, v in cells)
    assert ax.get_title().endswith(
        f"2 seeds per cell, each the mean over 2 sigma_noise; largest 95% CI half-width of a "
        f"cell mean: {ci:.3f}"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.5"]
    stats = cell_stats(last, "prune_frac", "mu_norm", "test_acc").sort_index()
    reference = grouped_mean_ci(per_seed, ["mu_norm", "prune_frac"])  # the per-group CI
    assert (stats.n == 2).all() and len(stats) == 4
    np.testing.assert_allclose(stats["mean"], reference["mean"], rtol=1e-6)  # float32 data
    np.testing.assert_allclose(stats.half_width, reference.half_width, rtol=1e-6)
    plt.close(ax.figure)


def test_a_facet_of_too_many_values_is_refused(swept):
    frame = jaxprune.load(swept)
    frame = frame.assign(lr=0.01 * (1 + np.arange(len(frame))))  # 48 distinct values
    with pytest.raises(ValueError, match="it takes 48 values, more panels than 30"):
        phase_diagram(frame, facet="lr", mean_over="sigma_noise")


def test_partial_results_say_so_in_the_caption(swept):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = jaxprune.load(swept)
    gone = (frame.prune_frac == 0.5) & (frame.mu_norm == 4.0) & (frame.sigma_noise == 1.0)
    frame = frame[~gone]  # one cell's 2 runs missing, as from an interrupted sweep
    frame.attrs.update(runs_present=14, runs_total=16)
    grid = phase_diagram(frame, facet="sigma_noise")
    text = grid.figure.get_suptitle()
    assert "\nPARTIAL: 14 of 16 runs; 2 seeds per cell; largest 95% CI" in text
    assert text.endswith("; 1 of 8 cells empty")
    assert len(grid.axes.flat) == 2
    empty = grid.axes.flat[1].collections[0].get_array()  # sigma_noise = 1: (mu_norm, p) cells
    assert np.ma.getmaskarray(empty).reshape(2, 2).tolist() == [[False, False], [False, True]]
    plt.close(grid.figure)


@pytest.mark.skipif(
    "partial" not in inspect.signature(jaxprune.load).parameters,
    reason="jaxprune.load(path, partial=...) comes with the runner's branch",
)
def test_plot_of_an_incomplete_sweep_needs_partial_and_says_so(swept, tmp_path, capsys):
    import matplotlib.pyplot as plt

    cut = tmp_path / "cut"
    shutil.copytree(swept, cut)
    sorted(cut.glob("part-*.parquet"))[-1].unlink()  # seed 1's chunk lost, as by a kill
    line = run_cli(["plot", cut, "--mean-over", "sigma_noise"], capsys)
    assert line.startswith(f"jaxprune plot: error: {cut} holds 8 of 16 runs"), line
    assert "--partial" in line and "partial=True" not in line

    cli.main(["plot", str(cut), "--mean-over", "sigma_noise", "--partial"])
    out, err = capsys.readouterr()
    figure = tmp_path / "cut-test_acc-prune_frac-mu_norm-mean-sigma_noise-partial.png"
    assert out == f"wrote {figure}\n" and figure.stat().st_size > 10_000
    assert err.startswith(f"jaxprune plot: warning: {cut} holds 8 of 16 runs")
    assert err.count("\n") == 1

    with pytest.warns(UserWarning, match="8 of 16 runs"):
        frame = jaxprune.load(cut, partial=True)
    ax = phase_diagram(frame, mean_over="sigma_noise")
    assert "\nPARTIAL: 8 of 16 runs; 1 seed per cell, each the mean over 2 sigma_noise; no CI" in (
        ax.get_title()
    )
    plt.close(ax.figure)


def test_cell_labels_fit_their_cells_on_a_log1mp_axis():
    """The quickstart's grid on a log(1 - p) axis: every cell's value is written inside its own
    cell (p = 0 and 0.2 are narrow there; they overlapped as '1.001.00'), at >= 5 points."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99]
    mu = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]
    rows = [
        {"run": i, "seed": s, "step": 300, "prune_frac": a, "mu_norm": b, "test_acc": 1.0}
        for i, (a, b, s) in enumerate(itertools.product(p, mu, range(2)))
    ]
    ax = phase_diagram(pd.DataFrame(rows), log1mp=True, title="quickstart grid")
    ax.figure.set_dpi(150)  # as save_phase_diagram writes it (text is hinted per resolution)
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    x_edges = -np.log10(1 - np.array(p))
    x_edges = np.concatenate([[-x_edges[1] / 2], (x_edges[1:] + x_edges[:-1]) / 2,
                              [x_edges[-1] + (x_edges[-1] - x_edges[-2]) / 2]])  # fmt: skip
    y_edges = np.concatenate([[0.25], (np.array(mu[1:]) + mu[:-1]) / 2, [9.0]])
    assert len(ax.texts) == len(p) * len(mu)
    for text in ax.texts:
        x, y = text.get_position()
        i, j = np.searchsorted(x_edges, x) - 1, np.searchsorted(y_edges, y) - 1
        (left, bottom), (right, top) = ax.transData.transform(
            [(x_edges[i], y_edges[j]), (x_edges[i + 1], y_edges[j + 1])]
        )
        box = text.get_window_extent(renderer)
        assert left <= box.x0 and box.x1 <= right and bottom <= box.y0 and box.y1 <= top, (
            p[i],
            mu[j],
        )
        assert text.get_fontsize() >= 5
    plt.close(ax.figure)
