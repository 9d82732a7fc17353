"""etcd endpoint parsing, the reachability check, and the --start-etcd server (real etcd)."""

from __future__ import annotations

import os
import socket
import time

import pytest
from conftest import have_etcd, require_real_service

from configurators.etcd import (
    EtcdClient,
    EtcdEndpoint,
    EtcdError,
    LocalEtcd,
    check_reachable,
    free_port,
    parse_endpoints,
)
from registry.errors import UsageError


def test_parse_endpoints_accepts_urls_and_bare_host_port():
    assert parse_endpoints("http://10.0.0.5:2379, localhost:2380") == [
        EtcdEndpoint("http", "10.0.0.5", 2379),
        EtcdEndpoint("http", "localhost", 2380),
    ]
    assert parse_endpoints("https://[::1]:2379")[0].url == "https://[::1]:2379"


@pytest.mark.parametrize("text", ["", "http://host", "ftp://host:1", "http://host:notaport", " , "])
def test_parse_endpoints_names_the_flag_and_the_value(text):
    with pytest.raises(UsageError) as caught:
        parse_endpoints(text)
    assert "--etcd-endpoints" in str(caught.value)
    assert "http://HOST:PORT" in str(caught.value)


def test_unreachable_etcd_fails_fast_and_says_where():
    endpoint = EtcdEndpoint("http", "127.0.0.1", free_port())
    start = time.monotonic()
    with pytest.raises(EtcdError) as caught:
        check_reachable([endpoint], timeout=1.0)
    assert time.monotonic() - start < 3
    message = str(caught.value)
    assert endpoint.url in message and "--start-etcd" in message and "--etcd-endpoints" in message
    assert caught.value.exit_code == 2


def test_silent_listener_times_out_instead_of_hanging():
    """A port that accepts but never answers (a wrong service) must not hang the check."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        endpoint = EtcdEndpoint("http", "127.0.0.1", server.getsockname()[1])
        start = time.monotonic()
        with pytest.raises(EtcdError, match="cannot reach etcd"):
            check_reachable([endpoint], timeout=0.5)
        assert time.monotonic() - start < 3


def test_local_etcd_serves_keys_and_cleans_up():
    require_real_service(have_etcd(), "etcd binary not installed")
    server = LocalEtcd()
    with server as endpoint:
        assert endpoint.host == "127.0.0.1"
        assert check_reachable([endpoint]) == endpoint
        client = EtcdClient(endpoint)
        client.put("/modelreg/test/a", '{"x": 1}')
        client.put("/modelreg/test/b", "2")
        client.put("/modelreg/other", "3")
        assert client.get("/modelreg/test/a") == '{"x": 1}'
        client.delete_prefix("/modelreg/test/")
        assert client.get("/modelreg/test/a") is None and client.get("/modelreg/test/b") is None
        assert client.get("/modelreg/other") == "3"
        data_dir = server._data_dir
        assert data_dir and os.path.isdir(data_dir)
    assert not os.path.exists(data_dir)
    with pytest.raises(EtcdError):
        check_reachable([endpoint], timeout=0.5)


def test_local_etcd_stops_on_ctrl_c():
    require_real_service(have_etcd(), "etcd binary not installed")
    server = LocalEtcd()
    with pytest.raises(KeyboardInterrupt), server as endpoint:
        process = server._process
        raise KeyboardInterrupt
    assert process is not None and process.poll() is not None
    with pytest.raises(EtcdError):
        check_reachable([endpoint], timeout=0.5)


def test_wait_for_times_out_with_a_clear_message():
    require_real_service(have_etcd(), "etcd binary not installed")
    with LocalEtcd() as endpoint:
        with pytest.raises(EtcdError, match="no peer published") as caught:
            EtcdClient(endpoint).wait_for("/modelreg/never", timeout=0.3)
        assert "--role" in str(caught.value)


def test_missing_etcd_binary_is_one_clear_error(tmp_path):
    with pytest.raises(EtcdError, match="--start-etcd: no etcd binary"):
        LocalEtcd(binary=str(tmp_path / "etcd")).start()
