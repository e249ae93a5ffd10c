"""Containers, as most users meet the project (marker `containers`), on both engines:
the images of a registry or of tools/offline_images.py, run through testcontainers
and compose.

- The live suite again with its engines in containers (a pytest of its own with
  RERANK_ENGINES=containers); a missing image falls back to a local node saying why,
  or in CI stops the run with one failure naming it.
- The images as users run them: healthy (Docker's own verdict) on the port their
  command line gives, unprivileged, draining on SIGTERM; the CPU server without torch
  and under 1 GB, scoring as the torch server does; the torch server with a mounted
  listwise model.
- Clusters of three nodes: an index of 3 shards and 1 replica reranks as a single
  node's index; the soak of bench/soak.py --containers (one of two scoring servers
  killed, both restarted in turn, an engine node killed) fails no request and loses no
  hit the engine does not report.
- docker/compose.yaml answers a reranked search through the bridge.

The junit report names each engine's version, node count and image (record_property).
Where no Docker engine answers or an image is missing these tests skip saying why
(in CI they fail); .ci/run installs and starts Docker where it can.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from offline_images import PROJECT_IMAGES, SOURCE_LABEL, image_label, source_digest
from testcontainers.core.network import Network

from rerank_bridge.bridge.config import BridgeConfig
from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.devtools.engine_containers import (
    Cluster,
    cluster,
    exited,
    get_json,
    host_port,
    image_for,
    project_container,
    single_node,
    wait_for_health,
    wait_for_index,
    why_no_containers,
)
from rerank_bridge.search import RerankClient
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import ServerConfig
from support.bridge_runner import RunningBridge
from support.live_fixtures import Engine, EngineAt, indexed_corpus, unavailable
from support.raw_http import send
from support.server_process import wait_serving

pytestmark = [pytest.mark.containers, pytest.mark.slow]

# The live modules whose engines can be any container of the release (the fault tests
# pause a local node of their own; the OpenSearch-native suite needs the neural release).
LIVE_SUITES = (
    "tests/search/test_live_search.py",
    "tests/bridge/test_bridge_live.py",
    "tests/bridge/test_bridge_clients.py",
    "tests/bridge/test_bridge_bad_input.py",
    "tests/bridge/test_bridge_boundary_live.py",
    "tests/evaluation/test_eval.py",
    "tests/search/test_engine_quirks.py",
    "tests/wiring/test_wiring.py",
)
MISSING_IMAGE = "rerank-bridge-test/missing:0"
DOCS = [("a", "the river runs through the old city"), ("b", "mountains and snow"), ("c", "a city by a river")]


def engine_images() -> list[str]:
    return [image_for(local_engines.release_for(kind)) for kind in local_engines.KINDS]


@pytest.fixture(scope="session")
def containers_here() -> None:
    """Docker answers and every image these tests start is here (or can be pulled)."""
    images = [*engine_images(), PROJECT_IMAGES["server-cpu"], PROJECT_IMAGES["bridge"]]
    if (why := why_no_containers(images)) is not None:
        unavailable(why)
    source = source_digest()
    for image in PROJECT_IMAGES.values():
        built_from = image_label(image, SOURCE_LABEL)
        if built_from and built_from != source:  # unlabelled: built some other way, taken as it is
            unavailable(
                f"{image} holds other code than this checkout: build it again (tools/offline_images.py)"
            )


def pytest_run(report: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("ES_URL", "OS_URL")}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *arguments],
        cwd=checkout.root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def junit(report: Path) -> tuple[ElementTree.Element, dict[str, str]]:
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    properties = {prop.get("name", ""): prop.get("value", "") for prop in suite.iter("property")}
    return suite, properties


def test_the_live_suite_passes_with_its_engines_in_containers(
    containers_here: None, tmp_path: Path, record_property: Any
) -> None:
    report = tmp_path / "containers.xml"
    run = pytest_run(report, *LIVE_SUITES, RERANK_ENGINES="containers", CI="true")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    suite, properties = junit(report)
    assert suite.get("skipped") == suite.get("failures") == suite.get("errors") == "0"
    cases = [(case.get("classname", ""), case.get("name", "")) for case in suite.iter("testcase")]
    for module in LIVE_SUITES:
        assert any(classname == module[:-3].replace("/", ".") for classname, _ in cases), module
    for kind in local_engines.KINDS:
        release = local_engines.release_for(kind)
        assert sum(f"[{kind}" in name for _, name in cases) >= 20, kind
        assert properties[f"{kind}_origin"] == image_for(release), properties
        assert properties[f"{kind}_version"] == release.version, properties
        assert properties[f"{kind}_nodes"] == "1", properties
        for name in ("origin", "version", "nodes"):
            record_property(f"{kind}_{name}", properties[f"{kind}_{name}"])
    record_property("live_tests_in_containers", len(cases))


ONE_LIVE_TEST = "tests/search/test_live_search.py::test_the_client_major_matches_the_engines[elasticsearch]"


def test_a_missing_image_falls_back_to_a_local_node_and_says_why(
    containers_here: None, tmp_path: Path
) -> None:
    report = tmp_path / "fallback.xml"
    run = pytest_run(
        report, ONE_LIVE_TEST, RERANK_ELASTICSEARCH_IMAGE=MISSING_IMAGE, RERANK_ENGINES="auto", CI="false"
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    said = run.stdout + run.stderr
    assert f"image {MISSING_IMAGE} is not here and cannot be pulled" in said
    assert f"using a local {local_engines.release_for('elasticsearch').name} node instead" in said
    _, properties = junit(report)
    assert properties["elasticsearch_origin"].startswith("local node elasticsearch-"), properties


def test_in_ci_a_missing_image_stops_the_run_with_one_failure_naming_it(
    containers_here: None, tmp_path: Path
) -> None:
    run = pytest_run(
        tmp_path / "ci.xml",
        ONE_LIVE_TEST,
        RERANK_ELASTICSEARCH_IMAGE=MISSING_IMAGE,
        RERANK_ENGINES="auto",
        CI="true",
    )
    said = run.stdout + run.stderr
    assert run.returncode == 3, said[-4000:]
    assert said.count(f"a Docker engine answers, but image {MISSING_IMAGE} is not here") == 1, said[-4000:]
    assert " passed" not in said and " error" not in said


def docker_exec(container: Any, *command: str) -> tuple[int, str]:
    result = container.get_wrapped_container().exec_run(list(command))
    return int(result.exit_code), result.output.decode(errors="replace")


def image_size_mb(container: Any) -> float:
    return round(int(container.get_wrapped_container().image.attrs["Size"]) / 1e6, 1)


def test_the_cpu_server_image_runs_without_torch_unprivileged_and_scores_as_torch_does(
    containers_here: None, record_property: Any
) -> None:
    with (
        Network() as network,
        project_container(PROJECT_IMAGES["server-cpu"], [], network, "server", (50051,)) as server,
    ):
        address = f"127.0.0.1:{host_port(server, 50051)}"
        wait_serving(address)
        assert docker_exec(server, "id", "-u") == (0, "10001\n")
        code, said = docker_exec(server, "python", "-c", "import torch")
        assert code != 0 and "No module named 'torch'" in said
        with RerankClient(address, timeout=60) as client:
            info = client.model_info()
            ranked = client.rerank("where does the river run", DOCS)
        served = (info.model_id, info.runtime, info.dtype)
        assert served == ("multilingual-e5-small", "onnxruntime", "float32")
        assert info.embed_dimensions == 384
        # torch in fp32, in the test's process: the image's precision (auto on a CPU
        # with native bf16 would be bf16, whose scores move by more than 1e-4).
        torch_fp32 = ServerConfig(port=0, dtype="float32", embed_model="none")
        with BackgroundServer(torch_fp32) as local, RerankClient(local.address, timeout=60) as client:
            expected = client.rerank("where does the river run", DOCS)
        assert [d.id for d in ranked.documents] == [d.id for d in expected.documents]
        for got, want in zip(ranked.documents, expected.documents, strict=True):
            assert abs(got.score - want.score) < 1e-4
        wait_for_health(server)
        size = image_size_mb(server)
        record_property("server_cpu_image_mb", size)
        assert size < 1000, f"the CPU server image is {size} MB"


def test_the_torch_server_image_serves_a_mounted_listwise_model(
    containers_here: None, listwise_dir: Path, tmp_path: Path, record_property: Any
) -> None:
    if (why := why_no_containers([PROJECT_IMAGES["server"]])) is not None:
        unavailable(why)
    from rerank_bridge.server.backends.base import run_plan
    from rerank_bridge.server.backends.listwise import ListwiseBackend
    from rerank_bridge.server.devices import resolve_placement
    from rerank_bridge.server.domain import Document, RerankRequest

    model = tmp_path / "model"
    shutil.copytree(listwise_dir, model)
    for path in [model, *model.rglob("*")]:  # the image runs as an unprivileged user
        path.chmod(0o755 if path.is_dir() else 0o644)
    tmp_path.chmod(0o755)
    with (
        Network() as network,
        project_container(
            PROJECT_IMAGES["server"],
            ["--model", "/model", "--embed-model", "none"],
            network,
            "listwise",
            (50051,),
            volumes=((str(model), "/model"),),
        ) as server,
    ):
        address = f"127.0.0.1:{host_port(server, 50051)}"
        wait_serving(address, timeout=300)
        with RerankClient(address, timeout=120) as client:
            ranked = client.rerank("where does the river run", DOCS)
        request = RerankRequest(
            query="where does the river run",
            documents=tuple(Document(i, t) for i, t in DOCS),
            top_n=None,
            instruction="",
            max_query_tokens=512,
            max_document_tokens=2048,
        )
        # The image picks its precision from the same CPU, as resolve_placement does here.
        backend = ListwiseBackend(listwise_dir, "model", resolve_placement("cpu"), 512, 2048)
        expected = {d.id: d.score for d in run_plan(backend, backend.plan_rerank(request)).scored}
        for document in ranked.documents:
            assert abs(document.score - expected[document.id]) < 1e-4
        assert docker_exec(server, "id", "-u") == (0, "10001\n")
        record_property("server_torch_image_mb", image_size_mb(server))


def post_json(port: int, target: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A JSON POST to a bridge on loopback (raw_http.send): its status and JSON answer."""
    answer = send(port, "POST", target, {"Content-Type": "application/json"}, json.dumps(body).encode())
    return answer.status, answer.json()


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # reported by the test's assertion
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_images_are_healthy_on_the_port_they_are_given_and_drain_on_sigterm(containers_here: None) -> None:
    """The server on --port 52051 and the bridge on --port 18080: the images' HEALTHCHECK
    reads those (unhealthy while the model loads), and SIGTERM lets a call in flight
    (a 2 s forward pass) finish before each exits 0."""
    release = local_engines.release_for("elasticsearch")
    slow = "fake?warmup_s=15&forward_s=2"
    with Network() as network, single_node(release, network, "engine") as engine_url:
        client = DIALECTS["elasticsearch"].client(engine_url)
        client.index(index="docs", id="1", document={"text": "the river runs through the old city"})
        client.index(index="docs", id="2", document={"text": "a city by a river"}, refresh=True)
        with (
            tempfile.TemporaryDirectory() as folder,
            project_container(
                PROJECT_IMAGES["server-cpu"],
                ["--model", slow, "--port", "52051"],
                network,
                "server",
                (52051,),
            ) as server,
        ):
            said, deadline = "", time.monotonic() + 60
            while "answers" not in said and time.monotonic() < deadline:  # until its port is bound
                code, said = docker_exec(server, "rerank-bridge", "healthcheck")
            assert code == 1 and "answers NOT_SERVING" in said, said  # still warming up
            Path(folder).chmod(0o755)
            config = {
                "engine": {"url": "http://engine:9200", "kind": "elasticsearch"},
                "reranker": {"address": "server:52051", "timeout": 30},
                "listen": {"host": "0.0.0.0", "port": 8080},
            }
            (Path(folder) / "bridge.json").write_text(json.dumps(config))
            (Path(folder) / "bridge.json").chmod(0o644)
            with project_container(
                PROJECT_IMAGES["bridge"],
                ["--config", "/etc/rerank-bridge/bridge.json", "--port", "18080"],
                network,
                "bridge",
                (18080,),
                volumes=((folder, "/etc/rerank-bridge"),),
            ) as bridge:
                wait_for_health(server)
                wait_for_health(bridge)
                assert docker_exec(bridge, "id", "-u") == (0, "10001\n")
                search = {
                    "query": {"match": {"text": "river city"}},
                    "ext": {"rerank_bridge": {"rerank": {"fields": ["text"]}}},
                }
                port = host_port(bridge, 18080)
                thread, answer = in_background(lambda: post_json(port, "/docs/_search", search))
                time.sleep(0.7)
                bridge.get_wrapped_container().stop(timeout=30)
                thread.join()
                status, body = answer[0]
                assert status == 200 and body["rerank"]["reranked"] is True, body
                bridge.get_wrapped_container().reload()
                assert bridge.get_wrapped_container().attrs["State"]["ExitCode"] == 0

            address = f"127.0.0.1:{host_port(server, 52051)}"
            with RerankClient(address, timeout=30) as reranker:
                thread, ranked = in_background(lambda: reranker.rerank("river city", DOCS))
                time.sleep(0.7)
                server.get_wrapped_container().stop(timeout=30)
                thread.join()
            # The fake model scores word overlap: a and c tie and keep their order.
            assert [d.id for d in ranked[0].documents] == ["a", "c", "b"], ranked
            server.get_wrapped_container().reload()
            assert server.get_wrapped_container().attrs["State"]["ExitCode"] == 0


@pytest.fixture(scope="module")
def three_nodes(containers_here: None, engine_url: EngineAt) -> Iterator[Cluster]:
    with cluster(local_engines.release_for(engine_url.kind), nodes=3) as built:
        yield built


def ranked(bridge: RunningBridge, index: str, query: str) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    body = {
        "query": {"match": {"text": query}},
        "size": 10,
        "ext": {"rerank_bridge": {"rerank": {"fields": ["text"], "rank_window_size": 50}}},
    }
    status, answer = post_json(bridge.port, f"/{index}/_search?search_type=dfs_query_then_fetch", body)
    assert status == 200 and answer["rerank"]["reranked"] is True, answer
    return [(hit["_id"], hit["_score"]) for hit in answer["hits"]["hits"]], answer["_shards"]


def test_a_three_shard_index_over_three_nodes_reranks_as_a_single_node_index(
    engine: Engine,
    three_nodes: Cluster,
    scoring_server: BackgroundServer,
    corpus: Any,
    record_property: Any,
) -> None:
    """With the statistics of the whole index (dfs_query_then_fetch), each shard scores a
    passage as one index would, so the window the reranker reads is the same."""
    spread = EngineAt(engine.kind, three_nodes.url, three_nodes.image)
    with indexed_corpus(spread, corpus, shards=3, replicas=1) as clustered:
        health = wait_for_index(clustered.url, clustered.index)
        assert health["number_of_nodes"] == 3 and health["active_shards"] == 6
        # GET / (client.info) is 405 on the integ-test distribution.
        nodes = clustered.client.nodes.info(node_id="_local", metric="_none")["nodes"]
        version = next(iter(nodes.values()))["version"]
        single = BridgeConfig(engine_url=engine.url, engine_kind=engine.kind, reranker=scoring_server.address)
        with RunningBridge(single) as one, RunningBridge(single.replace(engine_url=clustered.url)) as three:
            for query in [str(q["text"]) for q in corpus.queries[:20]]:
                on_one, _ = ranked(one, engine.index, query)
                on_three, shards = ranked(three, clustered.index, query)
                assert shards["total"] == shards["successful"] == 3 and shards["failed"] == 0
                assert [doc for doc, _ in on_three] == [doc for doc, _ in on_one], query
                for (_, got), (_, want) in zip(on_three, on_one, strict=True):
                    assert abs(got - want) < 1e-5
    record_property(f"{engine.kind}_cluster_image", three_nodes.image)
    record_property(f"{engine.kind}_cluster_version", version)
    record_property(f"{engine.kind}_cluster_nodes", 3)


@pytest.mark.parametrize("kind", local_engines.KINDS)
def test_the_soak_loses_nothing_through_scoring_server_and_engine_node_faults(
    containers_here: None, kind: str, tmp_path: Path, record_property: Any
) -> None:
    """bench/soak.py --containers, short: one of two scoring servers killed and started
    again, both restarted in turn (SIGTERM), then one of three engine nodes killed."""
    out = tmp_path / "soak.json"
    command = [
        sys.executable,
        str(checkout.root() / "bench" / "soak.py"),
        "--containers",
        "--engine",
        kind,
        "--clients",
        "6",
        "--warmup-seconds",
        "3",
        "--fault-seconds",
        "5",
        "--settle-seconds",
        "2",
        "--out",
        str(out),
    ]
    run = subprocess.run(command, cwd=checkout.root(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(out.read_text())
    phases = result["phases"]
    assert list(phases) == [
        "warm-up",
        "steady",
        "reranker-kill",
        "reranker-rolling-restart",
        "engine-node-kill",
    ]
    for name, phase in phases.items():
        assert phase["answers_checked"] > 0 and set(phase["statuses"]) == {"200"}, (name, phase)
        assert "fail_open" not in phase["outcomes"], (name, phase)
    assert result["totals"]["hits_lost"] == 0
    assert result["totals"]["hits_duplicated"] == 0
    assert result["totals"]["hits_foreign"] == 0
    assert result["events"]["rolling_restart_exit_codes"] == [0, 0]
    assert result["events"]["engine_nodes_alive_at_end"] == 2
    record_property(f"{kind}_soak_image", result["setup"]["engine_image"])
    record_property(f"{kind}_soak_nodes", result["setup"]["engine_nodes"])
    record_property(f"{kind}_soak_answers", result["totals"]["answers_checked"])


def compose_command() -> list[str]:
    """Compose v2 where the docker CLI has it, else docker-compose 1.29 (Debian's)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    unavailable("neither `docker compose` nor docker-compose is installed")
    raise AssertionError("unreachable")


def test_the_compose_stack_answers_a_reranked_search_through_the_bridge(
    containers_here: None, record_property: Any
) -> None:
    ports = {
        name: str(local_engines.free_port())
        for name in (
            "RERANK_ES_PORT",
            "RERANK_OS_PORT",
            "RERANK_BRIDGE_PORT",
            "RERANK_SERVER_1_PORT",
            "RERANK_SERVER_2_PORT",
            "RERANK_SERVER_1_METRICS_PORT",
            "RERANK_SERVER_2_METRICS_PORT",
        )
    }
    project = f"rerank-bridge-test-{uuid.uuid4().hex[:8]}"
    compose = [*compose_command(), "-f", str(checkout.root() / "docker" / "compose.yaml"), "-p", project]
    env = {**os.environ, **ports}
    up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=900)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        bridge = f"http://127.0.0.1:{ports['RERANK_BRIDGE_PORT']}"
        elasticsearch = f"http://127.0.0.1:{ports['RERANK_ES_PORT']}"
        opensearch = f"http://127.0.0.1:{ports['RERANK_OS_PORT']}"
        local_engines.wait_until_healthy(elasticsearch, 300, nodes=3)
        local_engines.wait_until_healthy(opensearch, 300, nodes=3)
        deadline = time.monotonic() + 300
        while True:  # compose starts the bridge once the engine and both servers are healthy
            try:
                get_json(f"{bridge}/_cluster/health", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the compose bridge never answered"
                time.sleep(2)
        client = DIALECTS["elasticsearch"].client(elasticsearch)
        for doc_id, text in DOCS:
            client.index(index="docs-compose", id=doc_id, document={"text": text})
        client.indices.refresh(index="docs-compose")
        bridge_port = int(ports["RERANK_BRIDGE_PORT"])
        search = {"query": {"match": {"text": "river city"}}}
        status, answer = post_json(bridge_port, "/docs-compose/_search", search)
        assert status == 200 and answer["rerank"]["reranked"] is True, answer
        servers = [f"127.0.0.1:{ports[f'RERANK_SERVER_{n}_PORT']}" for n in (1, 2)]
        with RerankClient(servers, timeout=60) as reranker:
            expected = reranker.rerank("river city", [(d, t) for d, t in DOCS if d != "b"])
        assert [hit["_id"] for hit in answer["hits"]["hits"]] == [d.id for d in expected.documents]
        nodes = {
            name: len(get_json(f"{url}/_cat/nodes?format=json"))
            for name, url in (("elasticsearch", elasticsearch), ("opensearch", opensearch))
        }
        assert nodes == {"elasticsearch": 3, "opensearch": 3}
        for name, count in nodes.items():
            record_property(f"compose_{name}_nodes", count)
    except BaseException:
        logs = subprocess.run([*compose, "logs", "--tail", "30"], env=env, capture_output=True, text=True)
        print(logs.stdout[-8000:])  # shown with the failure
        raise
    finally:
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"], env=env, capture_output=True, timeout=300
        )


def test_a_cluster_node_that_dies_is_seen_as_exited(containers_here: None) -> None:
    """The helpers' own oracle can fail: a killed node reads as exited, a live one not."""
    with cluster(local_engines.release_for("opensearch"), nodes=2, name="oracle-check") as built:
        assert built.alive() == [0, 1] and exited(built.nodes[1]) is None
        built.kill(1)
        time.sleep(1)
        assert built.alive() == [0] and "exited" in (exited(built.nodes[1]) or "")
