"""The bridge's small web page (GET /ui): a query box, and the first-stage and
reranked top tens side by side with each hit's rank movement and scores.
GET /ui/compare?index=&q=&fields= gives the page both lists from one first-stage run."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rerank_bridge.bridge.bodies import MediaType
from rerank_bridge.bridge.boundary import index_expression
from rerank_bridge.bridge.exchange import Exchange
from rerank_bridge.bridge.formats import answer
from rerank_bridge.bridge.searches import rerank_search
from rerank_bridge.search.errors import RequestError
from rerank_bridge.search.pipeline import HIT_KEY, SUMMARY_KEY
from rerank_bridge.search.request_forms import parse_request
from rerank_bridge.search.settings import RerankSettings

UI_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rerank-bridge</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d2330; }
  form { display: flex; gap: .5rem; margin-bottom: 1rem; }
  input { padding: .4rem; font-size: 1rem; }
  #q { flex: 1; }
  .lists { display: grid; grid-template-columns: 1fr 1fr; gap: 2rem; }
  ol { padding-left: 1.5rem; }
  li { margin: .35rem 0; }
  .score { color: #68707d; font-size: .85rem; margin-left: .4rem; }
  .up { color: #137333; font-weight: 600; }
  .down { color: #b3261e; font-weight: 600; }
  .same { color: #68707d; }
  #status { color: #68707d; min-height: 1.2rem; }
</style>
</head>
<body>
<h1>rerank-bridge</h1>
<form id="search">
  <input id="index" placeholder="index" value="">
  <input id="fields" placeholder="text fields (comma-separated)" value="title,text">
  <input id="q" placeholder="query">
  <button type="submit">Search</button>
</form>
<div id="status"></div>
<div class="lists">
  <section><h2>First stage</h2><ol id="first"></ol></section>
  <section><h2>Reranked</h2><ol id="reranked"></ol></section>
</div>
<script>
const params = new URLSearchParams(location.search);
for (const id of ["index", "fields", "q"]) {
  if (params.get(id)) document.getElementById(id).value = params.get(id);
}
function item(title, score, movement) {
  const li = document.createElement("li");
  li.append(title);
  const s = document.createElement("span");
  s.className = "score";
  s.textContent = score === null ? "" : score.toFixed(4);
  li.append(s);
  if (movement !== undefined) {
    const m = document.createElement("span");
    m.className = "score " + (movement > 0 ? "up" : movement < 0 ? "down" : "same");
    m.textContent = movement > 0 ? "\\u2191" + movement : movement < 0 ? "\\u2193" + (-movement) : "=";
    m.dataset.movement = movement;
    li.append(m);
  }
  return li;
}
async function run(event) {
  if (event) event.preventDefault();
  const index = document.getElementById("index").value;
  const q = document.getElementById("q").value;
  const fields = document.getElementById("fields").value;
  if (!index || !q) return;
  const status = document.getElementById("status");
  status.textContent = "searching...";
  const url = "/ui/compare?" + new URLSearchParams({index, q, fields});
  const response = await fetch(url);
  const data = await response.json();
  if (!response.ok) { status.textContent = JSON.stringify(data.error || data); return; }
  const first = document.getElementById("first");
  const reranked = document.getElementById("reranked");
  first.replaceChildren(...data.first_stage.map(h => item(h.title, h.score)));
  const moved = (h, i) => item(h.title, h.score, h.first_stage_rank - (i + 1));
  reranked.replaceChildren(...data.reranked.map(moved));
  const summary = data.rerank;
  status.textContent = summary.reranked ? "reranked by " + summary.model : "not reranked: " + summary.error;
  document.body.dataset.ready = "1";
}
document.getElementById("search").addEventListener("submit", run);
run();
</script>
</body>
</html>
"""


async def page(ex: Exchange) -> web.StreamResponse:
    return web.Response(text=UI_PAGE, content_type="text/html")


def _title(hit: dict[str, Any], fields: list[str]) -> str:
    source = hit.get("_source", {})
    return str(next((source[f] for f in fields if source.get(f)), hit["_id"]))[:160]


async def compare(ex: Exchange) -> web.StreamResponse:
    params = ex.target.params
    for name in params:
        if name not in ("index", "q", "fields"):
            raise RequestError(name, "unknown parameter; /ui/compare takes index, q and fields")
    if not params.get("index") or not params.get("q"):
        raise RequestError("q" if params.get("index") else "index", "is required")
    index = await ex.indices(index_expression(params["index"]), None)
    query = params["q"]
    fields = [f for f in params.get("fields", "text").split(",") if f]
    # The whole window in one reranked search: its first ten, and the ten it started from.
    window = 50
    body = {"query": {"multi_match": {"query": query, "fields": fields}}, "size": window}
    settings = RerankSettings(fields=tuple(fields), query_text=query, rank_window_size=window)
    response, _ = await rerank_search(ex, index, parse_request(body, settings), {}, MediaType())
    hits = response["hits"]["hits"]
    reranked = [
        {
            "id": hit["_id"],
            "title": _title(hit, fields),
            "score": hit["_score"],
            "first_stage_rank": hit[HIT_KEY]["first_stage_rank"],
        }
        for hit in hits[:10]
    ]
    by_first_stage = sorted(hits, key=lambda hit: hit[HIT_KEY]["first_stage_rank"])[:10]
    first_stage = [
        {"id": hit["_id"], "title": _title(hit, fields), "score": hit[HIT_KEY]["first_stage_score"]}
        for hit in by_first_stage
    ]
    return answer({"reranked": reranked, "first_stage": first_stage, "rerank": response[SUMMARY_KEY]})
