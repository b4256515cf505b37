"""The self-contained HTML page: inline CSS, inline SVG histograms, base64 JPEG thumbnails.

The page needs no network. A small inline script records script errors and images that
failed to decode into ``<body data-js-errors=... data-broken-images=...>`` and the
``#page-errors`` list, so a headless browser's dumped DOM shows them.
"""

from __future__ import annotations

import html
import math
from typing import Callable, Optional, Sequence

from contract.tasks import TaskKind
from review.collect import Review, SCORE_NAMES, TaskView
from review.draw import PALETTE, PRED_COLOUR, TRUTH_COLOUR, hex_colour

_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px}h2{font-size:17px;margin:24px 0 4px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
.task{border-top:2px solid #888;margin-top:18px}.meta{font-size:13px;color:#555}
.grid{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}.card{background:#fff;border:1px solid #ddd;padding:4px;font-size:12px;margin:0}
svg{display:block;margin:4px 0}
.card img{display:block;max-width:100%}.bad{color:#c00}.legend span{display:inline-block;margin-right:10px}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #333;vertical-align:middle;margin-right:3px}
.note{font-size:13px;color:#555}
"""
_SCRIPT = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); });
window.addEventListener('load', function () {
  var broken = Array.prototype.filter.call(document.images, function (i) { return !i.complete || i.naturalWidth === 0; });
  document.body.setAttribute('data-broken-images', String(broken.length));
  document.body.setAttribute('data-js-errors', String(window.__errors.length));
  var list = document.getElementById('page-errors');
  window.__errors.forEach(function (m) { var li = document.createElement('li'); li.textContent = m; list.appendChild(li); });
  document.body.setAttribute('data-ready', '1');
});
"""


def histogram_svg(values: Sequence[float], unit_range: bool, bins: int = 10, width: int = 260, height: int = 90) -> str:
    """Inline SVG bar chart of the values' distribution ([0, 1] for unit scores, else [0, max])."""
    if not values:
        return ""
    top = 1.0 if unit_range else max(max(values), 1e-9)
    low = min(0.0, min(values)) if unit_range else 0.0
    counts = [0] * bins
    for v in values:
        k = int((v - low) / (top - low) * bins) if top > low else 0
        counts[min(max(k, 0), bins - 1)] += 1
    peak, bar, plot_h = max(counts), width / bins, height - 18
    rects = []
    for k, c in enumerate(counts):
        h = plot_h * c / peak if peak else 0
        rects.append(f'<rect x="{k * bar + 1:.1f}" y="{plot_h - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                     f'fill="#4a7fc1"><title>{low + (top - low) * k / bins:.3g}-{low + (top - low) * (k + 1) / bins:.3g}: {c}</title></rect>')
    axis = (f'<text x="0" y="{height - 4}" font-size="10">{low:.3g}</text>'
            f'<text x="{width}" y="{height - 4}" font-size="10" text-anchor="end">{top:.3g}</text>'
            f'<text x="{width / 2}" y="{height - 4}" font-size="10" text-anchor="middle">n={len(values)}, max bin {peak}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="histogram">{"".join(rects)}{axis}</svg>')


def _legend(view: TaskView) -> str:
    parts = []
    if view.kind is TaskKind.SEGMENTATION:
        parts = [f'<span><i class="sw" style="background:{hex_colour(PALETTE[(c - 1) % len(PALETTE)])}"></i>class {c}</span>'
                 for c in range(1, view.num_classes)]
    elif view.kind is not TaskKind.CLASSIFICATION:
        parts = [f'<span><i class="sw" style="background:{hex_colour(PRED_COLOUR)}"></i>prediction'
                 f'{" (numbered dots)" if view.kind is TaskKind.REGRESSION else ""}</span>',
                 f'<span><i class="sw" style="background:{hex_colour(TRUTH_COLOUR)}"></i>truth'
                 f'{" (numbered crosses)" if view.kind is TaskKind.REGRESSION else ""}</span>']
    return f'<div class="legend meta">{"".join(parts)}</div>' if parts else ""


def _card(uri: str, item, score_name: str) -> str:
    e = html.escape
    caption = [f"<b>{e(item.row.image_path.rsplit('/', 1)[-1])}</b>"]
    if item.kind is TaskKind.CLASSIFICATION and item.prediction is not None:
        cls, probs = item.prediction.get("predicted_class"), item.prediction.get("predicted_probs") or []
        p = f" (p={probs[cls]:.2f})" if isinstance(cls, int) and 0 <= cls < len(probs) else ""
        caption.append(f"pred class {e(str(cls))}{p}")
    if item.score is not None:
        caption.append(f"{e(score_name)} {item.score:.3f}" + (f" &middot; {e(item.detail)}" if item.detail else ""))
    if item.problem:
        caption.append(f'<span class="bad">{e(item.problem)}</span>')
    return (f'<figure class="card" data-row="{e(item.row.where)}"><img alt="{e(item.row.image_path)}" src="{uri}">'
            f'<figcaption>{"<br>".join(caption)}</figcaption></figure>')


def _section(view: TaskView, thumbs: Callable, cap: int) -> str:
    e = html.escape
    ordered = view.ordered()
    shown, left_out = ordered[:cap], max(0, len(ordered) - cap)
    scores = [i.score for i in view.items if i.score is not None]
    name, higher = SCORE_NAMES[view.kind]
    mean = f"mean {name} {sum(scores) / len(scores):.4f} over {len(scores)} scored" if scores else "no per-image scores (no labels)"
    order = "worst first" if scores else "CSV order"
    head = (f'<section class="task" id="task-{e(view.task_id)}" data-task="{e(view.task_id)}">'
            f'<h2>{e(view.task_id)} <span class="meta">({e(view.kind.value)}, {view.num_classes} '
            f'{"points" if view.kind is TaskKind.REGRESSION else "classes"})</span></h2>'
            f'<div class="meta">{len(view.items)} rows &middot; {mean} &middot; shown: {len(shown)}, {order}'
            f'{f", <b>{left_out} left out</b> (--max-per-task {cap})" if left_out else ""}</div>{_legend(view)}')
    plot = histogram_svg(scores, unit_range=higher) if scores else ""
    cards = "".join(_card(thumbs(item), item, name) for item in shown)
    return f'{head}{plot}<div class="grid">{cards}</div></section>'


def _failures(review: Review) -> str:
    e = html.escape
    if not review.failures:
        return '<h2 id="failures">Failures</h2><p class="meta">none</p>'
    rows = "".join(f"<tr><td>{e(f.where)}</td><td>{e(f.reason)}</td><td>{e(f.source)}</td></tr>" for f in review.failures)
    return (f'<h2 id="failures">Failures ({len(review.failures)})</h2>'
            f"<table><tr><th>row</th><th>reason</th><th>from</th></tr>{rows}</table>")


def build_page(review: Review, thumbs: Callable, cap: int, scores_table: Optional[str] = None) -> str:
    """The whole HTML document; ``thumbs(item)`` returns the data: URI of an item's thumbnail."""
    e = html.escape
    toc = "".join(f'<tr><td><a href="#task-{e(v.task_id)}">{e(v.task_id)}</a></td><td>{e(v.kind.value)}</td>'
                  f'<td>{len(v.items)}</td><td>{_mean(v)}</td></tr>' for v in review.tasks)
    notes = "".join(f'<li>{e(n)}</li>' for n in review.notes)
    body = (f'<h1>Review of {e(str(review.output_dir))}</h1>'
            f'<p class="meta">input {e(str(review.input_dir))} &middot; '
            f'{"labels shown, scores are per image (official definitions)" if review.labelled else "no labels"}</p>'
            f'<ul class="note">{notes}</ul>'
            f'<table><tr><th>task</th><th>kind</th><th>rows</th><th>mean per-image score</th></tr>{toc}</table>'
            f'{scores_table or ""}{_failures(review)}'
            + "".join(_section(v, thumbs, cap) for v in review.tasks)
            + '<ul id="page-errors"></ul>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>FMC_UIA review</title>'
            f'<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>{body}</body></html>\n')


def _mean(view: TaskView) -> str:
    scores = [i.score for i in view.items if i.score is not None]
    if not scores:
        return "n/a"
    value = sum(scores) / len(scores)
    return f"{SCORE_NAMES[view.kind][0]} {value:.4f}" if math.isfinite(value) else "n/a"
