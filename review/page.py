"""The HTML page: inline CSS, inline SVG histograms, base64 JPEG thumbnails, each linking to its
full-size overlay PNG in the folder beside the page.

Order, top to bottom: the missing and skipped rows; the summary per kind (``review.summary``);
one section per task, in the summary's order, its missing and skipped rows first, then its
images worst first. The page needs no network; without its folder of overlays the thumbnails
still show (only the links to the full-size images break). A small inline script records
script errors and images that failed to decode into ``<body data-js-errors=...
data-broken-images=...>`` and the ``#page-errors`` list, so a headless browser's dumped DOM
shows them.
"""

from __future__ import annotations

import html
from typing import Callable, Optional, Sequence

from contract.kinds import spec_of
from evaluation.report import Report, plural
from review.collect import Item, Review, SCORE_NAMES, TaskView
from review.draw import KIND_DRAWING, hex_colour
from review.summary import colour, flagged_rows, kind_summary, ordered_tasks

#: Fewer per-image scores than this get no histogram (a chart of two values says nothing).
HISTOGRAM_MIN = 10

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
h3{font-size:15px;margin:14px 0 2px}.num{text-align:right;font-variant-numeric:tabular-nums}
.why{font-size:11px;color:#555}.undefined{background:#e4e4e4}.mean td{font-weight:bold}
.flag{color:#a00;font-weight:bold}.alert{border:2px solid #c00;padding:4px 10px;background:#fff4f4}
.card.flagged{border:2px solid #c00}.card .tag{color:#fff;background:#c00;padding:0 4px;font-weight:bold}
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
    parts = [f'<span><i class="sw" style="background:{hex_colour(rgb)}"></i>{html.escape(text)}</span>'
             for rgb, text in KIND_DRAWING[view.kind].legend(view.num_classes)]
    return f'<div class="legend meta">{"".join(parts)}</div>' if parts else ""


def _card(uri: str, item: Item, score_name: str, href: Optional[str]) -> str:
    e = html.escape
    caption = [f"<b>{e(item.row.image_path.rsplit('/', 1)[-1])}</b>"]
    if item.flag:
        caption.insert(0, f'<span class="tag">{e(item.flag)}</span>')
    text = KIND_DRAWING[item.kind].caption(item)
    if text:
        caption.append(e(text))
    if item.score is not None:
        caption.append(f"{e(score_name)} {item.score:.3f}" + (f" &middot; {e(item.detail)}" if item.detail else ""))
    for problem in (item.problem, item.label_problem):
        if problem:
            caption.append(f'<span class="bad">{e(problem)}</span>')
    background = colour(item.score, "dice" if SCORE_NAMES[item.kind][1] else "mre")
    style = f' style="border-left:6px solid {background}"' if background and not item.flag else ""
    image = f'<img alt="{e(item.row.image_path)}" src="{uri}">'
    if href:
        image = f'<a href="{e(href)}" title="full size">{image}</a>'
    flag = f' data-flag="{item.flag}"' if item.flag else ""
    return (f'<figure class="card{" flagged" if item.flag else ""}" data-row="{e(item.row.where)}"{flag}{style}>'
            f'{image}<figcaption>{"<br>".join(caption)}</figcaption></figure>')


def _section(view: TaskView, thumbs: Callable[[Item], str], cap: int, link: Optional[Callable[[Item], str]]) -> str:
    e = html.escape
    ordered = view.ordered()
    shown, left_out = ordered[:cap], max(0, len(ordered) - cap)
    scores = view.scores()
    name, higher = SCORE_NAMES[view.kind]
    mean = (f"mean {name} {sum(scores) / len(scores):.4f} over {len(scores)} scored" if scores
            else "no per-image scores (no labels)")
    order = "worst first" if scores else "CSV order"
    flagged = f' &middot; <span class="flag">{plural(view.flagged, "row")} missing or skipped, shown first</span>' \
        if view.flagged else ""
    unit = plural(view.num_classes, spec_of(view.kind).count_noun)
    head = (f'<section class="task" id="task-{e(view.task_id)}" data-task="{e(view.task_id)}">'
            f'<h2>{e(view.task_id)} <span class="meta">({e(view.kind.value)}, {unit})</span></h2>'
            f'<div class="meta">{plural(len(view.items), "row")} &middot; {mean}{flagged} &middot; shown: {len(shown)}, {order}'
            f'{f", <b>{left_out} left out</b> (--max-per-task {cap})" if left_out else ""}</div>{_legend(view)}')
    plot = histogram_svg(scores, unit_range=higher) if len(scores) >= HISTOGRAM_MIN else ""
    cards = "".join(_card(thumbs(item), item, name, link(item) if link else None) for item in shown)
    return f'{head}{plot}<div class="grid">{cards}</div></section>'


def build_page(review: Review, thumbs: Callable[[Item], str], cap: int, report: Optional[Report] = None,
               link: Optional[Callable[[Item], str]] = None) -> str:
    """The whole HTML document; ``thumbs(item)`` is an item's thumbnail data: URI, ``link(item)`` its full-size image."""
    e = html.escape
    shown_beside = [n for n in (report.notes if report else []) if "official AUC is 0" in n]  # in the summary
    notes = "".join(f'<li>{e(n)}</li>' for n in review.notes + (report.notes if report else []) if n not in shown_beside)
    sections = "".join(_section(v, thumbs, cap, link) for v in ordered_tasks(review, report))
    body = (f'<h1>Review of {e(str(review.output_dir))}</h1>'
            f'<p class="meta">input {e(str(review.input_dir))} &middot; '
            f'{"labels shown, scores are per image (official definitions)" if review.labelled else "no labels"}'
            f' &middot; click a thumbnail for the full-size overlay</p>'
            f'{flagged_rows(review)}{kind_summary(review, report)}<ul class="note">{notes}</ul>'
            f'{sections}<ul id="page-errors"></ul>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>FMC_UIA review</title>'
            f'<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>{body}</body></html>\n')
