"""Local services and checks in the data dir: digest file names, old hex names still load (and
move to their digest name), atomic writes, and the limits guard on API registrations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from agent.config import load_config
from agent.limits import MAX_IDENTIFIER_BYTES
from agent.local import LocalState
from agent.services import ServiceError
from agent.state.fsm import FSM
from agent.state.store import Store
from tests.harness.twins import LocalHostTwin, MemoryWriter


def fake_agent(data_dir: Path | None) -> LocalHostTwin:
    """A server's host for LocalState, persisting under `data_dir` (None: memory only)."""
    fsm = FSM(Store())
    config = load_config(["-dev"], environ={})
    return LocalHostTwin(
        config=config, data_dir=data_dir, writer=MemoryWriter(fsm), store=fsm.store
    )


def digest(ident: str) -> str:
    return hashlib.sha256(ident.encode()).hexdigest()


def restarted(data_dir: Path) -> LocalState:
    local = LocalState(fake_agent(data_dir))
    local.load()
    return local


def test_70kb_service_id_round_trips(tmp_path: Path) -> None:
    long_id = "s" * 70_000
    local = LocalState(fake_agent(tmp_path))
    local.add_service({"ID": long_id, "Name": "web", "Port": 80, "Check": {"TTL": "30s"}})
    names = sorted(p.name for p in (tmp_path / "services").iterdir())
    assert names == [digest(long_id)]  # fixed length, whatever the ID

    again = restarted(tmp_path)
    assert list(again.services) == [long_id]
    assert again.services[long_id].service["Port"] == 80
    assert f"service:{long_id}" in again.checks


def test_check_ids_with_slashes_and_long_names_persist(tmp_path: Path) -> None:
    local = LocalState(fake_agent(tmp_path))
    cid = "a/b:c/" + "x" * 5000
    local.add_check({"CheckID": cid, "Name": "n", "TTL": "10s"})
    assert [p.name for p in (tmp_path / "checks").iterdir()] == [digest(cid)]
    assert cid in restarted(tmp_path).checks


def test_removal_deletes_the_file(tmp_path: Path) -> None:
    local = LocalState(fake_agent(tmp_path))
    local.add_service({"ID": "gone", "Name": "web"})
    assert local.remove_service("gone")
    assert list((tmp_path / "services").iterdir()) == []
    assert restarted(tmp_path).services == {}


def test_old_hex_names_load_and_move_to_digest_names(tmp_path: Path) -> None:
    services, checks = tmp_path / "services", tmp_path / "checks"
    services.mkdir()
    checks.mkdir()
    (services / b"api/v1".hex()).write_text(
        json.dumps({"Registration": {"ID": "api/v1", "Name": "api"}})
    )
    (checks / b"disk".hex()).write_text(
        json.dumps(
            {
                "CheckID": "disk",
                "Registration": {"CheckID": "disk", "Name": "disk", "TTL": "10s"},
                "Status": "passing",
                "Output": "ok",
            }
        )
    )
    local = restarted(tmp_path)
    assert "api/v1" in local.services
    assert local.checks["disk"].status == "passing"
    assert local.checks["disk"].output == "ok"
    assert [p.name for p in services.iterdir()] == [digest("api/v1")]
    assert [p.name for p in checks.iterdir()] == [digest("disk")]

    # Moved, so a removal now removes it for good.
    local.remove_service("api/v1")
    local.remove_check("disk")
    again = restarted(tmp_path)
    assert again.services == {} and again.checks == {}


def test_unreadable_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    services = tmp_path / "services"
    services.mkdir()
    (services / "junk").write_text("{not json")
    (services / "nokey").write_text(json.dumps({"Other": 1}))
    (services / digest("ok")).write_text(json.dumps({"Registration": {"ID": "ok", "Name": "w"}}))
    assert list(restarted(tmp_path).services) == ["ok"]


def test_write_leaves_no_tmp_file(tmp_path: Path) -> None:
    local = LocalState(fake_agent(tmp_path))
    local.add_service({"ID": "w", "Name": "web", "Port": 1})
    local.add_service({"ID": "w", "Name": "web", "Port": 2})  # a rewrite replaces in place
    files = list((tmp_path / "services").iterdir())
    assert [p.suffix for p in files] == [""]
    assert json.loads(files[0].read_text())["Registration"]["Port"] == 2


def test_api_registration_beyond_the_bound_is_refused_and_not_stored(tmp_path: Path) -> None:
    local = LocalState(fake_agent(tmp_path))
    with pytest.raises(ServiceError) as refused:
        local.add_service({"ID": "s" * (MAX_IDENTIFIER_BYTES + 1), "Name": "web"})
    assert refused.value.status == 400
    assert "Service ID is too long" in refused.value.message
    assert local.services == {}
    assert not (tmp_path / "services").exists()


def test_api_registration_with_bad_meta_key_is_refused(tmp_path: Path) -> None:
    local = LocalState(fake_agent(tmp_path))
    with pytest.raises(ServiceError) as refused:
        local.add_service({"Name": "web", "Meta": {"bad key": "v"}})
    assert refused.value.message == (
        "Invalid Service Meta: Couldn't load metadata pair ('bad key', 'v'): "
        "Key contains invalid characters"
    )


def test_check_beyond_the_bound_is_refused(tmp_path: Path) -> None:
    local = LocalState(fake_agent(tmp_path))
    with pytest.raises(ServiceError, match="CheckID is too long"):
        local.add_check({"CheckID": "c" * (MAX_IDENTIFIER_BYTES + 1), "Name": "n", "TTL": "1s"})
    assert local.checks == {}


def test_no_data_dir_persists_nothing(tmp_path: Path) -> None:
    local = LocalState(fake_agent(None))  # -dev: memory only
    local.add_service({"ID": "w", "Name": "web"})
    local.load()
    assert "w" in local.services
