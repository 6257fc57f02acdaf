"""A small self-contained HTML page of one search: the query's frame strip, then each hit's strip and distance."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from reid.data.records import Manifest

STRIP_FRAMES = 6
MATCH_COLOURS = {"yes": "#d9f2d9", "same camera": "#eeeeee"}  # a match from another camera; one from the query's


def strip(manifest: Manifest, index: int, height: int = 96) -> str:
    """<img> tags of up to STRIP_FRAMES evenly spaced frames of one record (base64 JPEG)."""
    from PIL import Image

    from reid.data.decode import Decoder, read_frames

    rec = manifest.records[index]
    idx = np.unique(np.linspace(0, rec.num_frames - 1, min(STRIP_FRAMES, rec.num_frames)).round().astype(int))
    decoder = Decoder(timeout_s=None)
    try:
        frames = read_frames(manifest, rec, idx, decoder)
    finally:
        decoder.close()
    tags = []
    for f in frames:
        im = Image.fromarray(f)
        im = im.resize((max(1, round(im.width * height / im.height)), height))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80)
        tags.append(f'<img src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">')
    return "".join(tags)


def write_page(path: Path, query_name: str, query: tuple[Manifest, int], hits: list, reranked: bool, *,
               known: bool = False) -> Path:
    """hits: reid.deploy.search.Hit list; their frames are read from each hit's source manifest. `known`: the
    query's identity is known (a manifest row), so each hit says whether it is a match and the rows are coloured."""
    from reid.data.records import read_manifest
    from reid.deploy.search import match

    manifests: dict[str, Manifest] = {}
    rows = []
    for h in hits:
        if h.source not in manifests:
            manifests[h.source] = read_manifest(h.source)
        mark = match(query[0].records[query[1]], h) if known else ""
        colour = f" style='background:{MATCH_COLOURS[mark]}'" if mark else ""
        rows.append(f"<tr{colour}><td>{h.rank}</td><td>{h.distance:.4f}</td><td>{html.escape(h.tracklet_id)}<br>"
                    f"pid {h.pid} cam {h.camid}{'<br>match: ' + mark if mark else ''}</td>"
                    f"<td>{strip(manifests[h.source], h.record)}</td></tr>")
    title = f"reid search: {html.escape(query_name)}"
    body = (f"<h1>{title}</h1><h2>query</h2><div>{strip(*query)}</div>"
            f"<h2>top {len(hits)}{' (re-ranked)' if reranked else ''}</h2>"
            "<table><tr><th>rank</th><th>distance</th><th>tracklet</th><th>frames</th></tr>" + "".join(rows)
            + "</table>")
    style = "body{font-family:sans-serif}img{margin-right:2px}td{padding:4px;vertical-align:middle}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}"
                    f"</style></head><body>{body}</body></html>")
    return path
