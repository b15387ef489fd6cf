"""Fixtures for the interop tests (Node's `ws` and the `websockets` package as peers)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from interop_peers import NodeEchoServer, NodeSetup, StartNodeServer, TLSFiles, locate_node


@pytest.fixture(scope="session")
def node_setup() -> NodeSetup:
    """Node and the installed `ws` package; fails (never skips) when they are missing."""
    return locate_node()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder: Path = tmp_path_factory.mktemp("tls")
    ca_pem = folder / "ca.pem"
    cert_pem = folder / "cert.pem"
    key_pem = folder / "key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    # The leaf first, then its chain, as servers send it.
    with cert_pem.open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    return TLSFiles(ca_pem, cert_pem, key_pem, server_context, client_context)


@pytest.fixture
async def node_server(node_setup: NodeSetup) -> AsyncIterator[StartNodeServer]:
    """A factory that starts echo_server.js; every server started is killed in teardown."""
    started: list[NodeEchoServer] = []

    async def start(tls: TLSFiles | None = None) -> NodeEchoServer:
        server = await NodeEchoServer.start(node_setup, tls)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
