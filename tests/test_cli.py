"""The s1tiling command: exit codes, messages, --version, --dry-run and logging set-up."""
import logging
import os
import subprocess
import sys

import pytest

from s1tiling import __version__, cli, logs, pipeline
from s1tiling.errors import MissingDEMError
from test_config import WRONG_VALUES, tile_grid, write_request  # noqa: F401  (tile_grid: autouse fixture)


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    logs.reset_logging()


@pytest.mark.parametrize("changes, section, key, value, expected", WRONG_VALUES,
                         ids=[f"{w[1]}.{w[2]}={w[3]}" for w in WRONG_VALUES])
def test_wrong_value_exits_72_with_a_message_naming_it(tmp_path, capsys, changes, section, key, value, expected):
    path = write_request(tmp_path, changes)
    assert cli.main([str(path)]) == 72
    err = capsys.readouterr().out
    assert f"{path}: [{section}] {key} = {value!r}: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize("section, key", [("Paths", "output"), ("DataSource", "first_date"), ("Processing", "tiles")])
def test_missing_key_exits_72(tmp_path, capsys, section, key):
    path = write_request(tmp_path, drop={(section, key)})
    assert cli.main([str(path)]) == 72
    assert f"{path}: [{section}] {key}: mandatory key is missing" in capsys.readouterr().out


def test_several_errors_are_reported_together(tmp_path, capsys):
    path = write_request(tmp_path, {"Processing": {"ram_per_process": "lots", "calibration": "sigma0"},
                                    "DataSource": {"last_date": "2019-12-31"}})
    assert cli.main([str(path)]) == 72
    err = capsys.readouterr().out
    assert "3 errors" in err
    for fragment in ("[Processing] ram_per_process = 'lots'", "[Processing] calibration = 'sigma0'",
                     "[DataSource] last_date = '2019-12-31'"):
        assert f"{path}: {fragment}" in err


def test_unreadable_request_file_exits_72(tmp_path, capsys):
    assert cli.main([str(tmp_path / "missing.cfg")]) == 72
    assert "missing.cfg: cannot read the request file" in capsys.readouterr().out


def test_uncreatable_output_exits_72(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = write_request(tmp_path, {"Paths": {"output": str(blocker / "out")}})
    assert cli.main([str(path)]) == 72
    assert f"[Paths] output = '{blocker / 'out'}': cannot create the directory" in capsys.readouterr().out


def test_unknown_key_is_only_a_warning(tmp_path, capsys):
    path = write_request(tmp_path, {"Mask": {"make_masks": "True"}})
    assert cli.main(["--dry-run", str(path)]) == 0
    err = capsys.readouterr().out
    assert "WARNING" in err and f"{path}: [Mask] make_masks: unknown key" in err


def test_misspelt_key_exits_72_and_strict_makes_unknown_keys_errors(tmp_path, capsys):
    path = write_request(tmp_path, {"Processing": {"output_spatial_resolutoin": "20"}})
    assert cli.main(["--dry-run", str(path)]) == 72
    assert (f"{path}: [Processing] output_spatial_resolutoin: unknown key: did you mean output_spatial_resolution?"
            in capsys.readouterr().out)
    path = write_request(tmp_path, {"Mask": {"make_masks": "True"}})
    assert cli.main(["--dry-run", "--strict", str(path)]) == 72
    assert f"{path}: [Mask] make_masks: unknown key (strict = True)" in capsys.readouterr().out


def test_dry_run_writes_nothing(tmp_path, capsys):
    """Neither the output and tmp folders nor log files (mode = logging) are created by --dry-run."""
    (tmp_path / "raw").mkdir()
    path = write_request(tmp_path, {"Paths": {"tmp": str(tmp_path / "tmp")}, "Processing": {"mode": "logging"}})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.main(["--dry-run", str(path)]) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert f"[Paths] output                 : {tmp_path / 'out'}" in out  # folders listed as absolute paths
    assert f"[Paths] tmp                    : {tmp_path / 'tmp'}" in out


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"s1tiling {__version__}"


def test_help_and_usage_errors(capsys):
    assert cli.main(["--help"]) == 0
    assert "--dry-run" in capsys.readouterr().out
    assert cli.main([]) == 2


def test_dry_run_prints_tiles_and_dates(tmp_path, capsys):
    path = write_request(tmp_path, {"Processing": {"tiles": "33NWB, 31TCH", "calibration": "beta"},
                                    "DataSource": {"orbit_direction": "ASC"}})
    assert cli.main(["--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    for fragment in ("33NWB", "31TCH", "2020-01-01", "2020-01-31", "beta", "ASC", str(tmp_path / "out")):
        assert fragment in out


def test_options_reach_the_pipeline(tmp_path, monkeypatch):
    seen = {}

    def fake_run(settings, *, maps=None, options=None):
        seen.update(tiles=settings.processing.tiles, dry_run=False, cache=settings.processing.cache_before_ortho,
                    maps=maps)
        return 0

    def fake_dry_run(settings, *, maps=None):
        seen.update(tiles=settings.processing.tiles, dry_run=True, cache=settings.processing.cache_before_ortho,
                    maps=maps)
        return "plan"
    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr(pipeline, "dry_run", fake_dry_run)
    assert cli.main([str(write_request(tmp_path)), "--cache-before-ortho"]) == 0
    assert seen == {"tiles": ("33NWB",), "dry_run": False, "cache": True, "maps": None}
    assert cli.lia_main([str(write_request(tmp_path)), "--dry-run"]) == 0
    assert seen == {"tiles": ("33NWB",), "dry_run": True, "cache": False, "maps": "LIA"}


@pytest.mark.parametrize("raised, status", [
    (MissingDEMError("no DEM tile N01E014.hgt in /dem"), 75),
    (KeyboardInterrupt(), 78),
    (RuntimeError("boom"), 78),
])
def test_failures_map_to_exit_codes_without_traceback(tmp_path, monkeypatch, capsys, raised, status):
    def fail(settings, **_):
        raise raised
    monkeypatch.setattr(pipeline, "run", fail)
    assert cli.main([str(write_request(tmp_path))]) == status
    err = capsys.readouterr().out
    assert "Traceback" not in err
    if str(raised):
        assert str(raised) in err


def test_debug_mode_shows_traceback(tmp_path, monkeypatch, capsys):
    def fail(settings, **_):
        raise RuntimeError("boom")
    monkeypatch.setattr(pipeline, "run", fail)
    assert cli.main([str(write_request(tmp_path, {"Processing": {"mode": "debug"}}))]) == 78
    assert "Traceback" in capsys.readouterr().out


def test_logging_mode_writes_log_files(tmp_path, monkeypatch):
    # S1Tiling's default logging.conf.yaml: S1Processor-{kind}{mode}.log and S1Processor-{kind}.warning.log
    # in the current directory
    monkeypatch.chdir(tmp_path)
    path = write_request(tmp_path, {"Processing": {"mode": "Normal, logging"}})
    assert cli.main([str(path)]) == 74  # no product; a --dry-run would write no log file
    logging.getLogger("s1tiling.test").warning("something to keep, password=hunter2")
    logs.reset_logging()  # flush and close
    files = sorted(f.name for f in tmp_path.glob("S1Processor-*.log"))
    assert files == ["S1Processor-main.log", "S1Processor-main.warning.log"]
    text = (tmp_path / "S1Processor-main.warning.log").read_text()
    assert "something to keep" in text and "hunter2" not in text
    # debug mode: S1Processor-main.debug.log (a real run: a dry run writes no file at all)
    assert cli.main([str(write_request(tmp_path, {"Processing": {"mode": "debug logging"}}))]) == 74
    logs.reset_logging()
    assert (tmp_path / "S1Processor-main.debug.log").is_file()


def test_logging_conf_next_to_request_file_wins(tmp_path):
    pytest.importorskip("yaml")
    log_file = tmp_path / "custom.log"
    (tmp_path / "logging.conf.yaml").write_text(f"""
version: 1
disable_existing_loggers: false
handlers:
  custom: {{class: logging.FileHandler, filename: "{log_file}", level: INFO}}
root: {{level: INFO, handlers: [custom]}}
""")
    try:
        assert cli.main([str(write_request(tmp_path))]) == 74  # no product (a --dry-run opens no log file)
        logging.getLogger("s1tiling.test").info("routed by the user configuration")
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "baseFilename", None) == str(log_file):
                root.removeHandler(handler)
                handler.close()
    assert "routed by the user configuration" in log_file.read_text()


def _python_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}


def test_python_m_s1tiling_exit_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "s1tiling", str(tmp_path / "absent.cfg")],
                          capture_output=True, text=True, env=_python_env(), timeout=120)
    assert done.returncode == 72
    assert "absent.cfg" in done.stdout  # S1Tiling logs on stdout


CONSOLE_SCRIPT = '''\
import multiprocessing
import sys

from s1tiling.cli import main  # the first line of the script pip writes for the s1tiling command

HEAVY = ("numba", "rasterio", "distributed", "dask", "pyproj", "s1tiling.pipeline", "s1tiling.config")


def report(queue):
    queue.put([name for name in HEAVY if name in sys.modules])


if __name__ == "__main__":
    import s1tiling.pipeline  # the command's own process imports the chain
    context = multiprocessing.get_context("spawn")  # as dask starts its worker processes
    queue = context.Queue()
    child = context.Process(target=report, args=(queue,))
    child.start()
    print("child imported:", queue.get(timeout=120))
    child.join()
'''


def test_worker_processes_spawned_by_the_command_do_not_import_the_chain(tmp_path):
    # spawn runs the command's script again in each worker (as __mp_main__): importing s1tiling.cli
    # there must not import the whole chain (1.4-1.7 s of every worker's start before the fix)
    script = tmp_path / "s1tiling"
    script.write_text(CONSOLE_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_python_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "child imported: []" in done.stdout, done.stdout


def test_exit_skips_the_last_collection_of_every_object(tmp_path):
    # atexit handlers run last-registered first: this one runs after the package's, and sees the
    # objects that existed at exit frozen (the interpreter's final collection then skips them)
    code = ("import atexit, gc\n"
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n"
            "import s1tiling.pipeline\n"
            "print('frozen before exit:', gc.get_freeze_count())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_python_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    before, at_exit = (int(line.rsplit(":", 1)[1]) for line in done.stdout.splitlines())
    assert before == 0
    assert at_exit > 10_000  # the modules' objects: numba, rasterio, dask ...
