"""Build the science report (a markdown file and its PNG figures) from the sweep results.

    python analysis/report.py [--size full|quick|smoke] [--kou DIR] [--claims DIR]
                              [--regime DIR] [--boundary DIR] [--out DIR] [--n-boot N]

Reads the results of `sweeps/kou2023_heatmap.py`, `sweeps/paper_claims.py` and, when present,
`sweeps/regime_boundary.py` (the regime section, E0-E2 of report/plan.md) and
`sweeps/theory_regime.py` (the superseded regime section) (default results/NAME, with -quick or
-smoke appended for those sizes) and writes OUT/report.md with its figures: OUT is report/ at full
size and report/quick or report/smoke otherwise, so a smaller report never overwrites the committed
full one. Each section has `compute(results) -> result` (numbers and verdicts, in one place)
and `render(result, figures_dir) -> markdown`, in one module of `analysis` (or two, NAME and
NAME_render, where one would pass ~400 lines: the regime sections); this script runs them,
puts the restated verdicts in one table and records the sizes, commands, wall times and
hardware from the scripts' run.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

from analysis import (
    boundary,
    boundary_render,
    dynamics,
    kou,
    mild,
    overprune,
    phase,
    regime,
    regime_render,
)
from analysis.stats import Verdict
from jaxprune.experiment import invocation_table

SCRIPTS = {
    "kou2023_heatmap": "sweeps/kou2023_heatmap.py",
    "paper_claims": "sweeps/paper_claims.py",
    "theory_regime": "sweeps/theory_regime.py",
    "regime_boundary": "sweeps/regime_boundary.py",
}
N_BOOT = {"full": 2000, "quick": 1000, "smoke": 50}
# the full-size E0-E2 results are committed (docs/regime_boundary.md#the-committed-results)
BOUNDARY_RESULTS = {"full": "report/data/regime_boundary"}
SUPERSEDED = (
    "**Stale: superseded by the E0-E2 section above.** These runs hold sigma_0 sigma sqrt(d) = "
    "0.1 at every d, above the Kou-type condition sqrt(n/d) once d > 100 n (n = 8: d > 800)."
)


@dataclasses.dataclass(frozen=True)
class Report:
    """The computed sections (None where their results are absent) and the run records."""

    size: str
    records: dict
    kou: kou.KouResult | None
    mild: mild.MildResult | None
    over: overprune.OverResult | None
    phase: phase.PhaseResult | None
    dynamics: dynamics.DynamicsResult | None
    settings: mild.MildResult | None
    regime: regime.RegimeResult | None  # superseded by `boundary` where both are present
    regime_dir: Path
    boundary: boundary.BoundaryResult | None
    notes: list[str]  # sections left out, and why

    def verdicts(self) -> list[Verdict]:
        out = []
        for section in (self.kou, self.mild, self.over, self.phase, self.settings):
            out += section.verdicts if section is not None else []
        out += self.boundary.verdicts if self.boundary is not None else []
        return out + regime_verdicts(self.regime)


def regime_verdicts(result) -> list[Verdict]:
    """The in-regime claims of `analysis.regime` as summary rows (new claims: no old verdict)."""
    if result is None:
        return []
    figures = regime.FIGURES
    return [
        Verdict(
            "In regime: mild pruning raises test accuracy",
            "-",
            result.mild_status,
            "paired by seed against p = 0 and dense at sigma_0 sqrt(1-p)",
            result.mild_text,
            figures["mild"],
        ),
        Verdict(
            "In regime: over-pruning fits the training set at chance",
            "-",
            result.over_status,
            "per class, by its realised live signal neurons; p = 0 classes",
            result.over_text,
            figures["threshold"],
        ),
    ]


def run_record(directory: Path) -> dict:
    path = Path(directory) / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def compute(
    kou_dir: Path,
    claims_dir: Path,
    regime_dir: Path,
    size: str,
    n_boot: int,
    boundary_dir: Path | None = None,
) -> Report:
    """Every section whose results exist; raises FileNotFoundError when none do."""
    present = {name: Path(d).exists() for name, d in (("kou", kou_dir), ("claims", claims_dir))}
    if not any(present.values()):
        flag = "" if size == "full" else f" --{size}"
        raise FileNotFoundError(
            f"no results at {kou_dir} or {claims_dir}: run `python sweeps/kou2023_heatmap.py"
            f"{flag}` and `python sweeps/paper_claims.py{flag}` first (or pass --kou/--claims)."
        )
    claims = Path(claims_dir)
    regime_result, notes = None, []
    if Path(regime_dir).exists():
        try:
            regime_result = regime.compute(regime_dir)
        except (FileNotFoundError, ValueError) as error:  # an unfinished theory_regime sweep
            notes.append(
                f"The theory_regime section is left out ({type(error).__name__}: {error})."
            )
    return Report(
        size=size,
        records={
            name: run_record(d)
            for name, d in (
                ("kou2023_heatmap", kou_dir),
                ("paper_claims", claims_dir),
                ("theory_regime", regime_dir),
                ("regime_boundary", boundary_dir),
            )
            if d is not None and Path(d).exists()
        },
        kou=kou.compute(kou_dir, n_boot=n_boot) if present["kou"] else None,
        mild=mild.compute(claims) if (claims / "mild").exists() else None,
        over=overprune.compute(claims) if (claims / "overprune").exists() else None,
        phase=phase.compute(claims, n_boot=n_boot) if (claims / "phase_mu").exists() else None,
        dynamics=dynamics.compute(claims) if (claims / "dynamics").exists() else None,
        settings=mild.compute_settings(claims) if present["claims"] else None,
        regime=regime_result,
        regime_dir=Path(regime_dir),
        boundary=boundary.compute(boundary_dir, n_boot)
        if boundary_dir is not None and (Path(boundary_dir) / "run.json").exists()
        else None,
        notes=notes,
    )


def provenance(report: Report) -> str:
    """The size, commands, wall times and hardware of the runs behind the report."""
    lines = [f"**Result size: {report.size}.**"]
    if report.size != "full":
        lines.append(
            f"These are the **{report.size}-size** runs (coarse grids, fewer seeds), not the "
            "full-size grids the claims ask for; see 'Reproduce' for the full-size commands."
        )
    tables = []
    for name, record in report.records.items():
        if record.get("invocations"):
            table = invocation_table(record)
            table.insert(0, "script", name)
            tables.append(table)
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(rows):
        lines += ["", rows.to_markdown(index=False)]
    lines += [
        "",
        "A wall time includes compilation (one per static configuration); a re-run that "
        "resumed finished chunks is listed as its own row. Runs trained: those the invocation "
        "trained, not those it resumed from disk (records made before that count was kept "
        "give every run of their sweeps, resumed ones and the class pass's two rows per run "
        "included).",
    ]
    return "\n".join(lines)


def summary(report: Report) -> str:
    """The restated verdicts as one table, and the paragraph a theorist can quote."""
    verdicts = report.verdicts()
    table = pd.DataFrame(
        [
            {
                "claim": v.claim,
                "old verdict": v.old,
                "new verdict": v.new,
                "what explains it / control": v.control,
                "figure": f"[{v.figure}]({v.figure})" if v.figure.endswith(".png") else v.figure,
            }
            for v in verdicts
        ]
    )
    return "\n".join(
        [
            "## Summary of verdicts",
            "",
            "Each old verdict (report/report.md before issue 13) restated with matched "
            "controls and family-wise statistics: *retracted* where it does not survive them. "
            "The numbers behind each row are in its section.",
            "",
            table.apply(lambda c: c.str.replace("|", "\\|", regex=False)).to_markdown(index=False)
            if len(table)
            else "No verdicts: no results.",
            "",
            theorist_paragraph(report),
        ]
    )


def theorist_paragraph(report: Report) -> str:
    """One paragraph from the computed verdicts' fields (never parsed back from text)."""
    parts = []
    if report.boundary is not None:
        parts.append(boundary_render.theorist_paragraph(report.boundary))
    if report.regime is not None:
        parts.append(regime_render.summary(report.regime))
    if report.mild is not None:
        regime = report.mild.regime
        outside = "fraction in_regime" in regime and not regime["fraction in_regime"].any()
        parts.append(
            "In the paper's model at the old report's size"
            + (
                " (outside the theorems' regime: d/n^2 < 1, and eta sigma^2 d > 1)"
                if outside
                else ""
            )
            + ": "
            + "; ".join(
                f"{v.claim}: {v.new}" + (f" ({v.control})" if v.control != "-" else "")
                for v in report.mild.verdicts
            )
            + "."
        )
    for section in (report.over, report.phase, report.kou):
        if section is not None:
            parts += [f"{v.claim}: {v.new}." for v in section.verdicts]
    return "**For a theorist.** " + " ".join(parts) if parts else ""


def reproduce(report: Report) -> str:
    """The command sequence for the full-size report (and this size's)."""
    scripts = [SCRIPTS[name] for name in report.records]
    flag = "" if report.size == "full" else f" --{report.size}"
    lines = ["## Reproduce", "", "```bash", "# full size (writes report/)"]
    lines += [f"PYTHONPATH=. python {script}" for script in scripts]
    lines += ["PYTHONPATH=. python analysis/report.py"]
    if flag:
        lines += [f"# this size (writes report/{report.size}/)"]
        lines += [f"PYTHONPATH=. python {script}{flag}" for script in scripts]
        lines += [f"PYTHONPATH=. python analysis/report.py --size {report.size}"]
    return "\n".join([*lines, "```"])


def render(report: Report, out: Path) -> str:
    """The whole report's markdown; figures are written into `out`."""
    sections = [
        (report.kou, kou.render),
        (report.mild, mild.render),
        (report.over, overprune.render),
        (report.phase, phase.render),
        (report.dynamics, dynamics.render),
        (report.settings, mild.render_settings),
    ]
    body = [draw(result, out) for result, draw in sections if result is not None]
    if report.boundary is not None:
        body.append(boundary_render.render(report.boundary, out))
    if report.regime is not None:
        text = regime_render.render(report.regime, out)
        if report.boundary is not None:  # the E0-E2 section supersedes it
            text = text.replace("\n", f"\n\n{SUPERSEDED}\n", 1)
        body.append(text)
    return "\n\n".join(
        [
            "# Pruning at initialization: the claims of Yang et al. against simulation",
            "Built by `analysis/report.py` from the result files; every number and verdict "
            "below is computed from them. Differences between pruning fractions are paired by "
            "seed; CIs are t-based 95% intervals over seeds (`jaxprune.stats`); cell maps are "
            "corrected for multiplicity (Holm); boundaries carry seed-bootstrap CIs.",
            provenance(report),
            *report.notes,
            summary(report),
            *body,
            reproduce(report),
        ]
    )


def build(
    kou_dir, claims_dir, regime_dir, out, size: str = "full", n_boot=None, boundary_dir=None
) -> Path:
    """Compute every section, render them into out/report.md; returns its path."""
    out = Path(out)
    report = compute(
        Path(kou_dir),
        Path(claims_dir),
        Path(regime_dir),
        size,
        n_boot or N_BOOT[size],
        Path(boundary_dir) if boundary_dir else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text(render(report, out) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["full", "quick", "smoke"], default="full")
    parser.add_argument("--kou", default=None, help="results of sweeps/kou2023_heatmap.py")
    parser.add_argument("--claims", default=None, help="results of sweeps/paper_claims.py")
    parser.add_argument("--regime", default=None, help="results of sweeps/theory_regime.py")
    parser.add_argument("--boundary", default=None, help="results of sweeps/regime_boundary.py")
    parser.add_argument("--out", default=None, help="report directory (default by --size)")
    parser.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples")
    args = parser.parse_args(argv)
    suffix = "" if args.size == "full" else f"-{args.size}"
    out = args.out or ("report" if args.size == "full" else f"report/{args.size}")
    try:
        path = build(
            args.kou or f"results/kou2023_heatmap{suffix}",
            args.claims or f"results/paper_claims{suffix}",
            args.regime or f"results/theory_regime{suffix}",
            out,
            args.size,
            args.n_boot,
            args.boundary or BOUNDARY_RESULTS.get(args.size, f"results/regime_boundary{suffix}"),
        )
    except (FileNotFoundError, ValueError) as error:  # missing or incomplete results
        sys.exit(f"analysis/report.py: {error}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
