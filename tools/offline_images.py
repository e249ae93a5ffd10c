"""Builds, where no image registry answers, every image the tests and docker/compose.yaml use.

    python tools/offline_images.py              # the bases and engines that are missing, the project's images
    python tools/offline_images.py --rebuild    # every one again
    python tools/offline_images.py --list       # their names, one a line

1. local/debian:bookworm: a debootstrap (minbase, with ca-certificates and curl) from
   the mirror the host's apt already uses, carrying the host's apt sources and its extra
   CA certificates, so apt and pip inside builds reach what the host reaches.
2. local/python:3.11: Debian bookworm's Python 3.11 with venv, standing in for
   python:3.11-slim (docker/offline/python.Dockerfile).
3. The project's images from docker/Dockerfile on that base: the bridge, the torch-free
   CPU server (the default multilingual-e5-small exported to ONNX at build time) and the torch server.
4. Elasticsearch and OpenSearch under their official names and versions (the releases
   the installed clients talk to), from the artifacts tools/local_engines.py fetches
   from Maven Central, with a Java runtime jlinked from the host's JDK
   (docker/offline/*.Dockerfile).

The project's images are built every time (from the build cache: seconds when the code has
not changed) and labelled with a digest of the source they hold, which the container tests
compare with the checkout's, so they never run an image of other code. Users with a
registry never need this tool: `docker build` and `docker compose` pull the
official bases. It runs as root (debootstrap, chroot) next to a Docker engine, with
Debian's docker CLI for BuildKit (`$DOCKER` names another). Nothing it makes leaves this
machine. Prints one JSON document: each image, its size and how long it took.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.server import __version__

ROOT = checkout.root()
OFFLINE = ROOT / "docker" / "offline"
DEBIAN = "local/debian:bookworm"
PYTHON = "local/python:3.11"
# docker/Dockerfile's targets and the names the compose file and the tests use.
PROJECT_IMAGES = {
    "bridge": f"rerank-bridge-proxy:{__version__}",
    "server-cpu": f"rerank-bridge-server:{__version__}-cpu",
    "server": f"rerank-bridge-server:{__version__}",
}
# The engine releases the images are built for: those the installed clients talk to.
ENGINES = ("elasticsearch", "opensearch")
# Where the extra CA certificates of a Debian host live (update-ca-certificates reads them).
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
# Environment the base image carries so pip and requests trust the system bundle, which
# then holds the host's extra CAs (pip reads certifi's bundle otherwise).
CA_ENVIRONMENT = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Java modules the engines never load (tools, debuggers, shells): left out of their runtime.
JDK_TOOLS = re.compile(
    r"^jdk\.(jshell|jpackage|jlink|javadoc|jconsole|hotspot\.agent|jdeps|jstatd|jcmd|jdi|jdwp\.agent"
    r"|internal\.(ed|le|opt|jvmstat))$"
)


SOURCE_LABEL = "rerank-bridge.source-digest"


def source_files() -> list[str]:
    """What the project's wheel, and so its images, is built from: pyproject.toml, the
    README it names, and the package under each of its roots."""
    return [
        "pyproject.toml",
        "README.md",
        *(f"{root}/{checkout.PACKAGE}" for root in checkout.package_roots()),
    ]


def source_digest() -> str:
    """A digest of the files the project's images hold (tracked or not, unless ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *source_files()],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    digest = hashlib.sha256()
    for name in sorted(set(listed)):
        path = ROOT / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_label(image: str, label: str) -> str:
    out = subprocess.run(
        [docker_cli(), "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', image],
        capture_output=True,
        text=True,
    ).stdout
    return out.strip()


def engine_images() -> dict[str, str]:
    return {kind: local_engines.release_for(kind).image for kind in ENGINES}


def every_image() -> list[str]:
    return [DEBIAN, PYTHON, *PROJECT_IMAGES.values(), *engine_images().values()]


def work_folder() -> Path:
    return Path(os.environ.get("RERANK_IMAGE_WORK", "/var/tmp/rerank-bridge/images"))


def docker_cli() -> str:
    """Debian's docker CLI builds with BuildKit without a buildx plugin; another CLI
    on the PATH may have no buildx (and fall back to the legacy builder)."""
    if configured := os.environ.get("DOCKER"):
        return configured
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def docker(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """A docker command; what it prints goes to stderr unless captured (stdout is this tool's JSON)."""
    if "capture_output" not in kwargs:
        kwargs["stdout"] = sys.stderr
    return subprocess.run(
        [docker_cli(), *args],
        check=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        **kwargs,  # type: ignore[call-overload]
    )


def exists(image: str) -> bool:
    inspected = subprocess.run([docker_cli(), "image", "inspect", image], capture_output=True)
    return inspected.returncode == 0


def size_mb(image: str) -> float:
    out = docker("image", "inspect", "--format", "{{.Size}}", image, capture_output=True).stdout
    return round(int(out.strip()) / 1e6, 1)


def apt_mirror() -> str:
    """The Debian mirror the host's apt uses (deb822 .sources or a sources.list)."""
    stanzas = [
        stanza
        for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
        for stanza in path.read_text().split("\n\n")
    ]
    for stanza in stanzas:
        suite = re.search(r"^Suites:.*\bbookworm\b", stanza, re.MULTILINE)
        if suite and (uri := re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)):
            return uri.group(1)
    listing = Path("/etc/apt/sources.list")
    text = listing.read_text() if listing.exists() else ""
    if line := re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.MULTILINE):
        return line.group(1)
    raise RuntimeError("no bookworm mirror in the host's apt sources: this tool needs a Debian 12 host")


def build_debian(work: Path) -> None:
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=ca-certificates,curl",
            "bookworm",
            str(rootfs),
            apt_mirror(),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    apt = rootfs / "etc" / "apt"
    (apt / "sources.list").unlink(missing_ok=True)
    for source in Path("/etc/apt/sources.list.d").glob("*.sources"):
        shutil.copy(source, apt / "sources.list.d" / source.name)
    if Path("/etc/apt/sources.list").exists():
        shutil.copy("/etc/apt/sources.list", apt / "sources.list")
    cas = rootfs / LOCAL_CAS.relative_to("/")
    cas.mkdir(parents=True, exist_ok=True)
    for certificate in LOCAL_CAS.glob("*.crt"):
        shutil.copy(certificate, cas / certificate.name)
    subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, stdout=subprocess.DEVNULL)
    for unused in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        for entry in (rootfs / unused).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    changes = [f"ENV {name}={SYSTEM_BUNDLE}" for name in CA_ENVIRONMENT] + ['CMD ["bash"]']
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    docker("import", *(f"--change={change}" for change in changes), "-", DEBIAN, stdin=tar.stdout)
    if tar.wait() != 0:
        raise RuntimeError("tar of the debootstrap failed")
    shutil.rmtree(rootfs)


def build_python(work: Path) -> None:
    docker("build", "-f", str(OFFLINE / "python.Dockerfile"), "-t", PYTHON, str(OFFLINE))


def project_builder(target: str) -> Callable[[Path], None]:
    def build(work: Path) -> None:
        docker(
            "build",
            "-f",
            str(ROOT / "docker" / "Dockerfile"),
            "--target",
            target,
            "--build-arg",
            f"PYTHON_IMAGE={PYTHON}",
            "--label",
            f"{SOURCE_LABEL}={source_digest()}",
            "-t",
            PROJECT_IMAGES[target],
            str(ROOT),
        )

    return build


def java_runtime(work: Path, minimum: int) -> Path:
    """A runtime jlinked once from the host's JDK: every module but the tools (javac stays,
    for OpenSearch's node class)."""
    home = local_engines.java_home(minimum)
    major = local_engines._java_major(home)
    runtime = work / f"jre-{major}"
    if not (runtime / "bin" / "java").exists():
        shutil.rmtree(runtime, ignore_errors=True)
        listed = subprocess.run(
            [str(home / "bin" / "java"), "--list-modules"], check=True, capture_output=True, text=True
        ).stdout
        modules = [line.split("@")[0] for line in listed.split()]
        kept = ",".join(module for module in modules if not JDK_TOOLS.match(module))
        subprocess.run(
            [
                str(home / "bin" / "jlink"),
                f"--add-modules={kept}",
                "--strip-debug",
                "--no-man-pages",
                "--no-header-files",
                f"--output={runtime}",
            ],
            check=True,
            capture_output=True,
        )
    return runtime


def engine_builder(kind: str) -> Callable[[Path], None]:
    def build(work: Path) -> None:
        release = local_engines.release_for(kind)
        folder = local_engines.fetch(release.name)
        context = work / f"{release.name}-context"
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        # Hard links: the context costs no copy of the distribution or the JDK.
        subprocess.run(["cp", "-al", str(java_runtime(work, release.java)), str(context / "jdk")], check=True)
        if kind == "elasticsearch":
            subprocess.run(["cp", "-al", str(folder), str(context / "engine")], check=True)
            shutil.copy(OFFLINE / "elasticsearch-entrypoint.sh", context)
            arguments: list[str] = []
        else:
            subprocess.run(["cp", "-al", str(folder / "lib"), str(context / "lib")], check=True)
            shutil.copy(OFFLINE / "opensearch-entrypoint.sh", context)
            shutil.copy(OFFLINE / "OpenSearchContainerNode.java", context)
            arguments = ["--build-arg", f"PLUGINS={release.plugin_classes}"]
        dockerfile = OFFLINE / f"{kind}.Dockerfile"
        docker("build", "-f", str(dockerfile), *arguments, "-t", release.image, str(context))
        shutil.rmtree(context)

    return build


def builders() -> dict[str, Callable[[Path], None]]:
    steps: dict[str, Callable[[Path], None]] = {DEBIAN: build_debian, PYTHON: build_python}
    steps.update({image: project_builder(target) for target, image in PROJECT_IMAGES.items()})
    steps.update({image: engine_builder(kind) for kind, image in engine_images().items()})
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rebuild", action="store_true", help="build every image, even those already here")
    parser.add_argument("--list", action="store_true", help="print the images' names and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join(every_image()))
        return
    if os.geteuid() != 0:
        raise SystemExit("offline_images: debootstrap and chroot need root")
    work = work_folder()
    work.mkdir(parents=True, exist_ok=True)
    report = []
    for image, build in builders().items():
        started = time.monotonic()
        built = args.rebuild or image in PROJECT_IMAGES.values() or not exists(image)
        if built:
            print(f"offline_images: building {image}", file=sys.stderr, flush=True)
            build(work)
        report.append(
            {
                "image": image,
                "size_mb": size_mb(image),
                "built": built,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    print(json.dumps({"images": report}, indent=2))


if __name__ == "__main__":
    main()
