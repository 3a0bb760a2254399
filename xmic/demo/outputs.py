"""The demo's last step: results.json, the bar chart, the per-run report, and the comparison lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Echo = Callable[[str], None]
BASELINES = ("ZS CLIP", "CLIP-Adapter")


def write_outputs(
    config: Any,
    manifest: dict[str, Any],
    models: Any,
    extracted: dict[str, Any],
    table: Any,
    reference: dict,
    standing: dict[str, Any],
    echo: Echo,
) -> Any:
    """Assemble results.json's content, draw the plots and write report.md; returns the :class:`DemoResult`.

    Args:
        config: The :class:`~xmic.demo.pipeline.DemoConfig`.
        manifest: The synthetic benchmark's manifest.
        models: The :class:`~xmic.demo.models.ModelsReport`.
        extracted: Per store group, what extraction did.
        table: The :class:`~xmic.evaluate.reproduce.ReproduceReport` of Table 1.
        reference: Zero-shot CLIP on the hand crop, ``{target: {direction: scores}}``.
        standing: Where X-MIC stands against the controls (:func:`xmic.demo.standing.standing_record`).
        echo: Log lines.
    """
    from xmic.demo.pipeline import DemoResult
    from xmic.demo.plots import save_method_bars
    from xmic.demo.results import compare_lines, method_table, training_table, xmic_vector_table
    from xmic.report.plots import MISSING_MATPLOTLIB, pyplot_or_none

    out = Path(config.out)
    methods = method_table(table.results)
    comparison = compare_lines(methods, "X-MIC", BASELINES)
    files = {"table_md": str(table.md_path), "table_json": str(table.json_path), "results": str(out / "results.json")}
    notes: list[str] = []
    if config.plots and pyplot_or_none() is not None:
        from xmic.demo.pipeline import REFERENCE_ROW

        shown = dict(list(methods.items())[:1]) | {REFERENCE_ROW: reference} | dict(list(methods.items())[1:])
        title = f"xmic demo (one seed, {config.seed}; scale {config.scale}; {config.epochs} epochs): top-1 %"
        files["bars"] = str(save_method_bars(shown, out / "plots" / "table1_bars.png", title))
    elif config.plots:
        notes.append(MISSING_MATPLOTLIB)
        echo("  " + MISSING_MATPLOTLIB)
    readers: dict = {}  # one reader per store group for every run read here: each array is read once
    if config.report:
        files["report"] = str(_write_report(out, echo, readers))
    results = {
        "demo": {
            "seed": config.seed,
            "scale": config.scale,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "quick": config.quick,
            "preset": "authors-code",
            "targets": list(config.targets),
            "rows": list(config.rows) if config.rows else None,
            "torch_threads": config.threads,
            "processes": config.jobs,
            "xmic_adapter_hidden": config.adapter_hidden,
        },
        "machine": machine_record(),
        "units": "top-1 accuracy in percent; hm = harmonic mean of within and cross",
        "datasets": {
            name: {"group": f"synth-{name}", "title": info["title"], "counts": info["counts"]}
            for name, info in manifest["datasets"].items()
        },
        "shared_classes": manifest["shared"],
        "encoders": models.to_dict(),
        "extraction": extracted,
        "methods": methods,
        "training_last_epochs": training_table(table.results),
        "xmic_vector": xmic_vector_table(table.results, out / "cache", readers),
        "not_run": table.skipped,
        "reference_zero_shot_hand_crop": reference,
        "comparison": comparison,
        "standing": standing,
        "notes": notes,
        "files": files,
    }
    return DemoResult(out=out, results=results, markdown=table.markdown, files=files)


def machine_record() -> dict[str, Any]:
    """What the numbers were computed on: CPU model, usable cores, torch and the CPU kernels it picked."""
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "system": platform.system(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def _write_report(out: Path, echo: Echo, readers: dict | None = None) -> Path:
    """report.md over every Table 1 run (the hand-crop reference runs are left out): config, training curve,
    per-class accuracy. Without the confusion-matrix PNGs, which would cost the demo's time budget about 7 s;
    ``xmic report <out>/runs/* --out report.md`` draws them."""
    from xmic.report.markdown import render_report
    from xmic.report.summary import summarize_run

    runs = sorted(p for p in (out / "runs").iterdir() if (p / "run.json").is_file() and "zero-shot-hand" not in p.name)
    summaries = [summarize_run(r, out / "cache", readers=readers) for r in runs]
    path, _figures, _notes = render_report(summaries, out / "report.md", plots=False, title="xmic demo: every run")
    echo(f"  report: {path} ({len(summaries)} runs; `xmic report {out / 'runs'}/* --out FILE` adds confusion matrices)")
    return path


def summary_lines(result: Any) -> list[str]:
    """The lines the CLI prints after the table: comparison, reference, training, files and each step's time."""
    from xmic.demo.results import training_lines, xmic_vector_lines

    r = result.results
    lines = ["", "Cross-dataset harmonic mean (hm), X-MIC vs the baselines:"] + list(r["comparison"])
    ref = r.get("reference_zero_shot_hand_crop", {})
    if ref:
        parts = [
            f"{t}s {d}: hm {v['hm']:.1f}"
            for t, ds in sorted(ref.items())
            for d, v in sorted(ds.items())
            if v.get("hm") is not None
        ]
        lines.append(
            "Reference, zero-shot CLIP on the hand crop (X-MIC's classified view, no training): " + "; ".join(parts)
        )
    training = r.get("training_last_epochs", {})
    if training:
        lines.append("Train top-1 % of the last epochs (converged when flat), per training direction:")
        lines += training_lines(training, [m for m in r["methods"] if m in training])
    if r.get("xmic_vector"):
        lines.append("X-MIC's vector a_v after training, on the training clips (classifier l2norm(t_k + 2 a_v)):")
        lines += xmic_vector_lines(r["xmic_vector"])
    lines.append("")
    lines += [f"{k}: {v}" for k, v in r["files"].items()]
    order = ("generate", "models", "extract", "train", "report", "total")
    keys = [k for k in order if k in result.timings] + [k for k in result.timings if k not in order]
    lines.append("wall time: " + ", ".join(f"{k} {result.timings[k]:.1f} s" for k in keys))
    return lines
