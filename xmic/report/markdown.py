"""Render run summaries as one Markdown file, with a confusion-matrix PNG per run (a panel per dataset) beside it.

Figures go to ``<report stem>_files/`` next to the Markdown and are linked relatively, so the folder can be
moved or committed as a whole.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xmic.report.plots import MISSING_MATPLOTLIB, save_confusion_png
from xmic.report.summary import RunSummary


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.2f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than "-" and "_" dropped, spaces to "-"."""
    return re.sub(r"[^a-z0-9_ -]", "", heading.lower()).replace(" ", "-")


def config_lines(s: RunSummary) -> list[str]:
    """The run's identity as a two-column table."""
    c, meta = s.config, s.meta
    store = meta.get("store", {})
    encoders = ", ".join(
        f"{n} ({e.get('model_id', '?')}, D={e.get('dim', '?')})" for n, e in meta.get("encoders", {}).items()
    )
    optimiser = f"lr {c['lr']}, betas {tuple(c['betas'])}, wd {c['weight_decay']}, warm-up {c['warmup_epochs']}"
    trained_on = meta.get("train_dataset", c["dataset"])
    data = f"{meta.get('train_rows', '?')} clips, {len(meta.get('vocab', []))} classes"
    where = f"{store.get('path', '?')} · T={store.get('num_frames', '?')} · {store.get('sampling', '?')}"
    rows = [
        ("method", c["method"]),
        ("target", c["target"]),
        ("preset", f"{c['preset']} ({optimiser})"),
        ("epochs · batch · frames", f"{c['epochs']} · {c['batch_size']} · {c['frames']}"),
        ("seed", c["seed"]),
        ("trained on", f"{trained_on} ({data})"),
        ("encoders", encoders or "–"),
        ("views", f"conditioning {c['views']}, classified {c['classified_view']}, template {c['template']!r}"),
        ("store", f"{where} · hands {store.get('hands', '?')}"),
    ]
    return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def training_lines(s: RunSummary) -> list[str]:
    e, nan = s.last_epoch, float("nan")
    if not e:
        return ["No training (the method has no trainable parameters)."]
    return [
        "| epoch | loss | train top-1 | lr | seconds | clips/s |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {e.get('epoch', '–')} | {e.get('loss', nan):.4f} | {_pct(e.get('train_top1'))} | "
        f"{e.get('lr', nan):.2e} | {e.get('seconds', nan):.2f} | {e.get('clips_per_s', nan):.0f} |",
    ]


def evaluation_lines(s: RunSummary) -> list[str]:
    ev = s.evaluation
    lines = [
        f"Source: {s.evaluation_source}. Top-1 in percent.",
        "",
        "| dataset | kind | classes | n | top-1 | class-mean | shared | novel | hm |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in ev.get("datasets", {}).items():
        shared = _pct(r["shared"].get("top1")) if "shared" in r else ""
        novel = _pct(r["novel"].get("top1")) if "novel" in r else ""
        hm = ev.get("hm", {}).get(name)
        lines.append(
            f"| {name} | {r.get('kind', '?')} | {r.get('classes', '?')} | {r.get('n', '?')} | {_pct(r.get('top1'))} | "
            f"{_pct(r.get('class_mean_top1'))} | {shared} | {novel} | {'' if hm is None else _pct(hm)} |"
        )
    return lines


def per_class_lines(s: RunSummary, figure_link: str | None) -> list[str]:
    lines: list[str] = []
    for p in s.predictions:
        lines += [
            "",
            f"#### Per-class accuracy · {p.dataset} ({p.kind}; splits {', '.join(p.splits)}; "
            f"{p.n} clips, top-1 {_pct(p.top1)})",
            "",
            "| class | n | correct | top-1 | most confused with |",
            "|---|---:|---:|---:|---|",
        ]
        for c in p.per_class():
            lines.append(f"| {c.name} | {c.n} | {c.correct} | {_pct(c.top1)} | {c.confused_with or ''} |")
    fig = next(iter(s.figures.values()), None)
    if fig is not None and figure_link is not None:
        lines += ["", f"![confusion matrices of {s.name}]({figure_link}/{fig.name})"]
    return lines


def render_report(
    summaries: Sequence[RunSummary], out: str | Path, *, plots: bool = True, title: str = "xmic run report"
) -> tuple[Path, list[Path], list[str]]:
    """Write the Markdown report (and its PNGs) for ``summaries``.

    Args:
        summaries: One per run, in the order to show.
        out: The Markdown file; figures go to ``<stem>_files/`` beside it.
        plots: Draw the confusion matrices (needs matplotlib; skipped with a note when it is missing).
        title: The report's heading.

    Returns:
        ``(markdown path, figure paths, notes)``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig_dir = out.parent / f"{out.stem}_files"
    figures: list[Path] = []
    notes: list[str] = []
    for stale in fig_dir.glob("*-confusion.png") if fig_dir.is_dir() else []:
        stale.unlink()  # from an earlier report into the same file
    for s in summaries if plots else []:
        s.figures = {}
        if not s.predictions:
            continue
        panels = [(p.confusion(), p.classes, f"{p.dataset} ({p.kind}, n={p.n})") for p in s.predictions]
        title_ = f"{s.config['method']} · {s.config['target']}s · trained on {s.meta.get('train_dataset')}"
        saved = save_confusion_png(panels, fig_dir / f"{_slug(s.name)}-confusion.png", title_)
        if saved is None:
            notes.append(MISSING_MATPLOTLIB)
            break
        s.figures = {p.dataset: saved for p in s.predictions}
        figures.append(saved)
    link = os.path.relpath(fig_dir, out.parent).replace(os.sep, "/")
    lines = [f"# {title}", "", f"{len(summaries)} run(s)."]
    lines += [f"> {n}" for n in notes]
    lines += ["", "| run | method | target | trained on | " + "evaluation |", "|---|---|---|---|---|"]
    for s in summaries:
        ev = s.evaluation.get("datasets", {})
        scores = "; ".join(f"{n} {_pct(r.get('top1'))}" for n, r in ev.items())
        name, c = f"[{s.name}](#{_anchor(s.name)})", s.config
        lines.append(f"| {name} | {c['method']} | {c['target']} | {s.meta.get('train_dataset')} | {scores} |")
    for s in summaries:
        lines += ["", f"## {s.name}", "", f"`{s.run_dir}`", ""]
        lines += config_lines(s)
        lines += ["", "### Training (last epoch)", ""] + training_lines(s)
        lines += ["", "### Evaluation", ""] + evaluation_lines(s)
        lines += per_class_lines(s, link)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, figures, notes
