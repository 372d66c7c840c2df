"""The Docker and HPC files (issue 17): what can be checked without docker, apptainer or PBS here.

Docker cannot be built on the test machine: the Dockerfile, .dockerignore and constraints file are
checked as text (stages, user, pins, build context). The job array scripts are run for real with
bash, with a stand-in ``s1tiling`` (or ``apptainer``) program that records its arguments and
environment, as a batch system would start them (SLURM_ARRAY_TASK_ID / PBS_ARRAY_INDEX).
"""
from __future__ import annotations

import fnmatch
import re
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()


def _stages() -> dict[str, str]:
    """Dockerfile stage name -> its text."""
    parts = re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[1:]
    return {re.match(r"\S+ AS (\S+)", part).group(1): part for part in parts}


def _ignored(path: str) -> bool:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = Path(path).parts
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(parts[0], p) or
               (p.startswith("**/") and any(fnmatch.fnmatch(part, p[3:]) for part in parts)) for p in patterns)


def test_dockerignore_keeps_the_context_small_and_what_the_image_needs():
    for heavy in (".venv", ".git", "demo", "build", "s1tiling/geometry/__pycache__/x.nbi"):
        assert _ignored(heavy), heavy
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, flags=re.MULTILINE)
    sources = [source for line in copied for source in line.split()]
    assert "s1tiling" in sources and "docker/constraints.txt" in sources
    for source in sources:
        assert (REPO / source).exists() and not _ignored(source), source


def test_images_run_as_a_user_and_one_has_no_otb():
    stages = _stages()
    assert set(stages) >= {"venv", "otb-build", "native", "full"}
    assert list(stages)[-1] == "full"  # docker build without --target: the full image
    for name in ("native", "full"):
        users = re.findall(r"^USER (\S+)", stages[name], flags=re.MULTILINE)
        assert users and users[-1] not in ("root", "0"), name
    assert "otb" not in stages["native"].lower().replace("otb-build", "")
    assert "--from=otb-build" not in stages["native"] and "FROM native AS full" in DOCKERFILE


def test_the_image_installs_pinned_versions():
    assert re.search(r"pip install[^\n]*\\\n?\s*-c /src/docker/constraints.txt /src", DOCKERFILE)
    pins = {}
    for line in (REPO / "docker" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    pyproject = (REPO / "pyproject.toml").read_text()
    block = pyproject[pyproject.index("\ndependencies = ["):]
    dependencies = re.findall(r'^\s+"([^"]+)",', block[:block.index("\n]")], flags=re.MULTILINE)
    assert len(dependencies) >= 5
    for requirement in dependencies:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in pins and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", pins[name]), name


def test_apptainer_example_binds_the_request_file_every_folder_and_a_writable_tmp():
    text = (REPO / "docker" / "README.md").read_text()
    section = text[text.index("Apptainer"):]
    command = section[section.index("apptainer run"):section.index("s1tiling.sif /data/S1Processor.cfg")]
    binds = {spec.split(":")[1] for spec in re.findall(r"-B (\S+)", command.replace("\\\n", " "))
             for spec in spec.split(",")}
    ini = text[text.index("[Paths]"):text.index("[DataSource]")]
    folders = {line.split(":")[1].strip() for line in ini.splitlines()
               if ":" in line and not line.startswith("#")}
    assert folders <= binds and "/data/tmp" in folders, (folders, binds)
    assert "/data/S1Processor.cfg" in binds


def _stand_in(folder: Path, name: str) -> Path:
    """A program ``name`` in ``folder`` that prints its arguments and the S1TILING_* variables."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f'#!/bin/sh\necho "{name} $*"\nenv | grep ^S1TILING_ | sort\n')
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return program


def _run_array_script(script: str, env: dict[str, str], args: list[str], cwd: Path):
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TMPDIR": str(cwd)}
    return subprocess.run(["bash", str(REPO / "examples" / script), *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", ["slurm_array.sh", "pbs_array.sh"])
def test_array_scripts_find_s1tiling_and_pass_the_tiles(tmp_path, script):
    (tmp_path / "tiles.txt").write_text("33NWB\n33NWC\n")
    config = tmp_path / "S1Processor.cfg"
    config.write_text("[Paths]\n")
    if script == "slurm_array.sh":
        env, args = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_CPUS_PER_TASK": "4", "SLURM_MEM_PER_NODE": "8000"}, \
            ["tiles", str(config), str(tmp_path / "tiles.txt")]
    else:
        env, args = {"PBS_ARRAY_INDEX": "2", "NCPUS": "4", "MEM_MB": "8000", "SPLIT": "tiles", "CONFIG": str(config),
                     "LIST": str(tmp_path / "tiles.txt")}, []
    # not on the PATH: told, exit 77
    missing = _run_array_script(script, env, args, tmp_path)
    assert missing.returncode == 77 and "S1TILING_VENV" in missing.stderr, missing.stderr
    # in a virtual environment
    venv = tmp_path / "venv"
    _stand_in(venv / "bin", "s1tiling")
    (venv / "bin" / "activate").write_text(f'PATH="{venv / "bin"}:$PATH"\n')
    done = _run_array_script(script, {**env, "S1TILING_VENV": str(venv)}, args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"s1tiling {config}" in done.stdout and "S1TILING_TILES=33NWC" in done.stdout
    assert "S1TILING_NB_PROCESSES=4" in done.stdout
    # in an Apptainer image, with its binds
    tools = tmp_path / "tools"
    _stand_in(tools, "apptainer")
    binds = "/p/s1:/data/s1,/p/tmp:/data/tmp"
    done = _run_array_script(script, {**env, "PATH": f"{tools}:/usr/bin:/bin", "S1TILING_SIF": "/p/s1tiling.sif",
                                      "S1TILING_BINDS": binds}, args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"apptainer run -B {binds} /p/s1tiling.sif {config}" in done.stdout
    assert "S1TILING_TILES=33NWC" in done.stdout


def test_pbs_examples_pass_the_campaign_variables():
    """PBS passes no environment by default: every qsub of pbs_array.sh lists S1TILING_TILES in -v."""
    texts = [(REPO / "docs" / "cluster.md").read_text(), (REPO / "examples" / "pbs_array.sh").read_text()]
    commands = [re.sub(r"\\\n#?\s*", "", match) for text in texts
                for match in re.findall(r"qsub[^\n]*(?:\\\n[^\n]*)*pbs_array\.sh", text)]
    assert commands
    for command in commands:
        assert "S1TILING_TILES" in command and "S1TILING_VENV" in command, command


def test_job_scripts_say_how_s1tiling_gets_on_the_path():
    for script in ("slurm_array.sh", "pbs_array.sh", "slurm_driver.sh", "pbs_driver.sh"):
        text = (REPO / "examples" / script).read_text()
        assert "S1TILING_VENV" in text and "PATH" in text, script

