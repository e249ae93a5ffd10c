"""gRPC over TLS, and mutual TLS: a client without a certificate signed by the
configured CA is turned away. Certificates are made here with openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from rerank_bridge.search.client import RerankClient, Tls
from support.in_process import start_server

DOCS = [("a", "the river"), ("b", "a city by the river")]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    root = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(root / "ca.key"),
        "-out",
        str(root / "ca.pem"),
    )
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(root / f"{name}.key"),
            "-out",
            str(root / f"{name}.csr"),
        )
        openssl(
            "x509",
            "-req",
            "-in",
            str(root / f"{name}.csr"),
            "-CA",
            str(root / "ca.pem"),
            "-CAkey",
            str(root / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(root / "san.ext"),
            "-out",
            str(root / f"{name}.pem"),
        )
    return root


def test_tls_serves_clients_that_trust_the_ca(pki: Path) -> None:
    server = start_server(model="fake", tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"))
    try:
        with RerankClient(server.address, tls=Tls(ca=str(pki / "ca.pem"))) as client:
            assert [d.id for d in client.rerank("river city", DOCS).documents] == ["b", "a"]
        with RerankClient(server.address, timeout=3) as plaintext, pytest.raises(grpc.RpcError):
            plaintext.rerank("river city", DOCS)
    finally:
        server.stop()


def test_mutual_tls_requires_a_client_certificate(pki: Path) -> None:
    server = start_server(
        model="fake",
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem"),
    )
    try:
        mutual = Tls(ca=str(pki / "ca.pem"), cert=str(pki / "client.pem"), key=str(pki / "client.key"))
        with RerankClient(server.address, tls=mutual) as client:
            assert len(client.rerank("river", DOCS).documents) == 2
        with RerankClient(server.address, timeout=3, tls=Tls(ca=str(pki / "ca.pem"))) as anonymous:
            with pytest.raises(grpc.RpcError) as raised:
                anonymous.rerank("river", DOCS)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_the_health_check_reads_tls_from_the_command_line_and_needs_no_client_certificate(
    pki: Path, tmp_path: Path
) -> None:
    """`rerank-bridge healthcheck` on a mutual-TLS server and a TLS bridge: a handshake (the
    probe has no client certificate) and GET /metrics over TLS; a plaintext port fails it."""
    import json

    from rerank_bridge.bridge.config import BridgeConfig
    from rerank_bridge.cli.healthcheck import check
    from support.bridge_runner import RunningBridge

    cert, key = str(pki / "server.pem"), str(pki / "server.key")
    server = start_server(model="fake", tls_cert=cert, tls_key=key, tls_client_ca=str(pki / "ca.pem"))
    try:
        serve = ["serve", "--port", str(server.port), "--tls-cert", cert, "--tls-key", key]
        assert check(serve, {}) == f"TLS handshake with 127.0.0.1:{server.port}"
    finally:
        server.stop()
    config = {"engine": {"url": "http://127.0.0.1:9", "kind": "elasticsearch"}}
    config["listen"] = {"host": "127.0.0.1", "port": 0, "tls_cert": cert, "tls_key": key}
    (tmp_path / "bridge.json").write_text(json.dumps(config))
    bridge_config = BridgeConfig(engine_url="http://127.0.0.1:9", engine_kind="elasticsearch")
    with RunningBridge(bridge_config.replace(tls_cert=cert, tls_key=key)) as bridge:
        proxy = ["proxy", "--config", str(tmp_path / "bridge.json"), "--port", str(bridge.port)]
        assert check(proxy, {}) == f"GET https://127.0.0.1:{bridge.port}/metrics answers 200"
        plaintext = ["proxy", "--port", str(bridge.port)]
        with pytest.raises(OSError):  # the bridge speaks TLS there
            check(plaintext, {})
