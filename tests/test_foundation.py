"""errors, config and plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from huntbook import config, errors
from huntbook.plugins import Registry


def test_errors_name_where_and_hint() -> None:
    err = errors.ParameterError("bad value", where="process.host_processes:host_name", hint="pass a string")
    assert str(err) == "process.host_processes:host_name: bad value (pass a string)"
    assert isinstance(err, errors.QueryError) and isinstance(err, ValueError)
    missing = errors.MissingExtraError("driver 'splunk'", "splunk", missing="splunklib")
    assert isinstance(missing, ImportError) and isinstance(missing, errors.PluginError)
    assert "pip install 'huntbook[splunk]'" in str(missing)
    nf = errors.QueryNotFoundError("no query 'x'", hint="see list_queries()")
    assert str(nf) == "no query 'x' (see list_queries())"


def test_every_error_is_documented_in_the_tree() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, f"{name} missing from the documented tree"
        assert issubclass(getattr(errors, name), errors.HuntbookError)


def test_config_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUNTBOOK_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    cfg = config.load()
    assert cfg == config.Config()
    assert cfg.connection("splunk") == {}


def test_config_file_in_working_folder_with_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "huntbook.yaml").write_text(
        "store: cases/42\n"
        "query_paths: [team-queries]\n"
        "connections:\n  splunk:\n    host: splunk.example\n    token: env:HB_TEST_TOKEN\n"
        "providers:\n  vt:\n    api_key: file:secret.txt\n"
    )
    (tmp_path / "secret.txt").write_text("s3cret-file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUNTBOOK_CONFIG", raising=False)
    monkeypatch.setenv("HB_TEST_TOKEN", "s3cret-env")
    cfg = config.load()
    assert cfg.store == tmp_path / "cases" / "42"
    assert cfg.query_paths == (tmp_path / "team-queries",)
    token = cfg.connection("splunk")["token"]
    assert isinstance(token, config.Secret)
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(token)
    assert token.reveal() == "s3cret-env"
    resolved = config.resolve_secrets(cfg.connection("splunk"))
    assert resolved == {"host": "splunk.example", "token": "s3cret-env"}
    os.chdir(tmp_path / "..")
    assert config.Secret(f"file:{tmp_path / 'secret.txt'}").reveal() == "s3cret-file"


def test_config_errors_name_the_file_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "huntbook.yaml"
    bad.write_text("store: [unclosed\n")
    with pytest.raises(errors.ConfigError, match=r"huntbook.yaml:\d+: invalid YAML"):
        config.load(bad)
    bad.write_text("stor: x\n")
    with pytest.raises(errors.ConfigError, match="unknown setting.*stor.*known settings"):
        config.load(bad)
    with pytest.raises(errors.ConfigError, match="HB_NOT_SET.*export HB_NOT_SET"):
        config.Secret("env:HB_NOT_SET").reveal()
    with pytest.raises(errors.ConfigError, match="unknown secret scheme"):
        config.Secret("vault:x").reveal()


def test_keyring_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        store: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        keyring.set_password("huntbook", "vt", "from-keyring")
        assert config.Secret("keyring:huntbook/vt").reveal() == "from-keyring"
        with pytest.raises(errors.ConfigError, match="no such keyring entry"):
            config.Secret("keyring:huntbook/missing").reveal()
    finally:
        keyring.set_keyring(previous)


def test_registry_isolates_broken_plugins_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    eps = {
        "good": EntryPoint("good", "huntbook.schema:columns", "huntbook.test"),
        "needs_extra": EntryPoint("needs_extra", "huntbook_missing_module:Driver [splunk]", "huntbook.test"),
        "broken": EntryPoint("broken", "huntbook_missing_module2:Driver", "huntbook.test"),
    }
    reg = Registry("huntbook.test")
    monkeypatch.setattr(reg, "_entry_points", lambda: eps)
    assert reg.names() == ["broken", "good", "needs_extra"]
    assert reg.infos()["needs_extra"].extras == ("splunk",)
    with pytest.raises(errors.MissingExtraError, match=r"pip install 'huntbook\[splunk\]'"):
        reg.load("needs_extra")
    with pytest.raises(errors.PluginError, match="failed to import"):
        reg.load("broken")
    from huntbook.schema import columns

    assert reg.load("good") is columns  # the others' failures did not affect it
    with pytest.raises(errors.PluginError, match="available: broken, good, needs_extra"):
        reg.load("nope")
    reg.register("mine", object)
    assert reg.load("mine") is object and "mine" in reg.names()
