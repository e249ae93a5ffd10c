"""`rerank-bridge wire`: runs the wiring for one cluster and prints what it did."""

from __future__ import annotations

import argparse
import os
import sys

from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.wiring import elasticsearch, opensearch
from rerank_bridge.wiring.endpoints import Bridge
from rerank_bridge.wiring.engine_http import EngineHttp, WiringError


def run(args: argparse.Namespace) -> None:
    if args.engine == "elasticsearch" and (args.no_rerank or args.hybrid != "none"):
        sys.exit("rerank-bridge wire: --hybrid and --no-rerank are OpenSearch pipeline options")
    if not 0 <= args.keyword_weight <= 1:
        sys.exit("rerank-bridge wire: --keyword-weight must be between 0 and 1")
    auth = (args.engine_user, os.environ.get(args.engine_password_env, "")) if args.engine_user else None
    client = DIALECTS[args.engine].client(args.engine_url, auth=auth, ca_certs=args.engine_ca_certs or None)
    http = EngineHttp(args.engine, client)
    bridge = Bridge(args.bridge_url, os.environ.get(args.api_key_env, ""), args.model)
    try:
        if args.engine == "elasticsearch":
            report = elasticsearch.wire(http, bridge, args.name)
            usage = f'retriever.text_similarity_reranker.inference_id: "{args.name}"'
        else:
            plan = opensearch.OpenSearchPlan(
                name=args.name,
                document_fields=tuple(field.strip() for field in args.fields.split(",") if field.strip()),
                rerank=not args.no_rerank,
                ignore_failure=args.ignore_failure,
                hybrid="" if args.hybrid == "none" else args.hybrid,
                keyword_weight=args.keyword_weight,
                rank_constant=args.rank_constant,
            )
            report = opensearch.wire(http, bridge, plan, apply_settings=args.apply_settings)
            usage = f"?search_pipeline={args.name}" + (
                ", with ext.rerank.query_context.query_text" if plan.rerank else ""
            )
    except WiringError as error:
        sys.exit(f"rerank-bridge wire: {error}")
    finally:
        client.close()
    print("\n".join(report.lines))
    print(f"ready: search with {usage}")
