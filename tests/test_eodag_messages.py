"""What a user sees when searching fails (issue 17): the example file's placeholder credentials are
refused before any network call; a search that fails on every configured provider says so in one
line per provider (what failed, how to fix it), never tries a provider the user did not configure,
and EODAG's own messages stay off the console, in the log file at DEBUG level.

The providers are real EODAG STAC providers pointed at loopback ports where nothing listens (real
refused connections); the socket guard of download_fixtures refuses and records any other host.
"""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

import yaml

from download_fixtures import eodag_env, no_internet, provider_conf  # noqa: F401 (autouse fixtures)
from s1tiling import cli
from s1tiling.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent


def _request(tmp_path: Path, eodag_yml: Path, mode: str = "Normal") -> Path:
    cfg = tmp_path / "S1Processor.cfg"
    cfg.write_text(f"""
[Paths]
s1_images : {tmp_path / 's1_images'}
output : {tmp_path / 'output'}
tmp : {tmp_path / 'tmp'}
dem_dir : {tmp_path / 'dem'}

[DataSource]
download : True
eodag_config : {eodag_yml}
roi_by_tiles : 32UNA
first_date : 2015-02-22
last_date : 2015-02-23
polarisation : VV
nb_max_search_retries : 0

[Processing]
tiles : 32UNA
mode : {mode}
""")
    return cfg


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: connections to it are refused


def test_example_placeholders_refused_before_any_network_call(tmp_path, capfd, caplog, no_internet):  # noqa: F811
    example = tmp_path / "eodag.yml"
    shutil.copy(REPO / "config" / "eodag.yml.example", example)
    assert cli.main([str(_request(tmp_path, example))]) == ExitCode.CONFIG_ERROR
    told = capfd.readouterr().out + caplog.text
    assert str(example) in told and "placeholders" in told
    for provider in ("cop_dataspace", "geodes", "creodias", "earth_search"):
        assert provider in told
    assert no_internet == []  # nothing was even looked up


def test_each_configured_provider_failure_told_once(tmp_path, capfd, caplog, monkeypatch):
    monkeypatch.delenv("EODAG_PROVIDERS_WHITELIST")  # the user's file alone says which providers to use
    providers = {}
    for name, priority in (("first_mirror", 2), ("second_mirror", 1)):
        conf = provider_conf(f"http://127.0.0.1:{_closed_port()}", "assets", "pw")
        ((_, settings),) = conf.items()
        providers[name] = {**settings, "priority": priority}
    eodag_yml = tmp_path / "eodag.yml"
    eodag_yml.write_text(yaml.safe_dump(providers))
    monkeypatch.chdir(tmp_path)  # the log files of mode logging
    assert cli.main([str(_request(tmp_path, eodag_yml, mode="logging"))]) == ExitCode.DOWNLOAD_ERROR
    console = capfd.readouterr().out
    lines = [line for line in console.splitlines() if line.strip()]
    for name in providers:
        told = [line for line in lines if f"- {name}:" in line]
        assert len(told) == 1 and "cannot reach the provider" in told[0], console
    assert "Traceback" not in console and "Retrying" not in console and len(lines) < 40, console
    for unconfigured in ("cop_dataspace", "peps", "creodias", "planetary_computer", "earth_search"):
        assert unconfigured not in console and unconfigured not in caplog.text
    log = (tmp_path / "S1Processor-main.log").read_text()
    assert "- first_mirror:" in log
    eodag_lines = [line for line in log.splitlines() if " - eodag." in line]
    assert eodag_lines and all(" - DEBUG - eodag." in line for line in eodag_lines)
    assert "eodag." not in (tmp_path / "S1Processor-main.warning.log").read_text()
