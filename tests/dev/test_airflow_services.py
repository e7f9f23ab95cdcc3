"""The local Airflow services' pieces that need no running Airflow: the UI login, `.local/stack.env`,
finding the services of `make airflow`, and the services' settings."""

from __future__ import annotations

import json
import os
import stat

from dev import airflow_services
from dev.local_aws import config, stack


def _private(path) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_ui_password_is_generated_once_into_a_private_file(tmp_path, monkeypatch):
    monkeypatch.setattr(airflow_services, "LOCAL", tmp_path)
    monkeypatch.setattr(airflow_services, "PASSWORDS_FILE", tmp_path / "passwords.json")
    password = airflow_services.ui_password()
    assert len(password) >= 12
    assert airflow_services.ui_password() == password
    # SimpleAuthManager's format: user name to password.
    assert json.loads((tmp_path / "passwords.json").read_text()) == {airflow_services.UI_USER: password}
    assert _private(tmp_path / "passwords.json")


def test_the_ui_login_is_added_to_stack_env_kept_by_make_up_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "LOCAL", tmp_path)
    monkeypatch.setattr(config, "ENV_FILE", tmp_path / "stack.env")
    stack.write_env_file({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    login = airflow_services.UiLogin("http://127.0.0.1:2", "admin", "p'ss word", reused=False)

    airflow_services._write_ui_env(login)
    written = stack.read_env_file(config.ENV_FILE)
    assert written == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AIRFLOW_UI_URL": "http://127.0.0.1:2",
        "AIRFLOW_UI_USER": "admin",
        "AIRFLOW_UI_PASSWORD": "p'ss word",
    }
    assert _private(config.ENV_FILE)
    # `make up` rewrites the file: the UI's entries stay while the services run.
    assert stack._airflow_ui_entries() == {key: written[key] for key in airflow_services.UI_ENV_KEYS}

    airflow_services._write_ui_env(None)
    assert stack.read_env_file(config.ENV_FILE) == {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    assert _private(config.ENV_FILE)


def test_only_a_running_supervisor_counts_as_make_airflow(tmp_path, monkeypatch):
    monkeypatch.setattr(airflow_services, "STATE_FILE", tmp_path / "state.json")
    assert airflow_services.shared_services({}) is None
    # A live process that is not the supervisor (a recycled pid), and a backfill's own services.
    for mode in ("ui", "backfill"):
        (tmp_path / "state.json").write_text(json.dumps(
            {"mode": mode, "owner": os.getpid(), "pids": {}, "port": 1, "started_at": "2026-01-01T00:00:00+00:00"}
        ))
        assert airflow_services.shared_services({}) is None


def test_only_make_airflow_follows_the_schedule(tmp_path, monkeypatch):
    monkeypatch.setattr(airflow_services, "LOCAL", tmp_path)
    monkeypatch.setattr(airflow_services, "JWT_SECRET_FILE", tmp_path / "jwt")
    monkeypatch.setattr(airflow_services, "PASSWORDS_FILE", tmp_path / "passwords.json")
    backfill = airflow_services.services_env({}, 8793, 2)
    ui = airflow_services.services_env({}, 8793, 2, scheduled=True)
    assert backfill["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    assert ui["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "True"
    for env in (backfill, ui):
        assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(tmp_path / "passwords.json")
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
