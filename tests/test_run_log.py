"""A production log explains itself (issue 17): with mode ``logging`` the main log file starts with
the version and request file, then the resolved settings and the plan (log files only: the console
stays short), tells each output written, and ends with a summary line (counts, wall time)."""
from __future__ import annotations

import re

from fault_helpers import request
from s1tiling import __version__, cli


def test_log_file_starts_with_the_request_and_ends_with_a_summary(two_slice_pass, tmp_path, monkeypatch, capfd):
    root, _, _, geoid, _ = two_slice_pass
    monkeypatch.chdir(tmp_path)
    cfg = request(tmp_path, "out", geoid, s1_images=root / "slices", Paths={"dem_dir": root / "dem"},
                  Processing={"mode": "logging"})
    assert cli.main([str(cfg)]) == 0
    console = capfd.readouterr().out
    lines = (tmp_path / "S1Processor-main.log").read_text().splitlines()
    messages = [line.split(" - ", 3)[-1] for line in lines]
    first = next(i for i, m in enumerate(messages) if m.startswith("s1tiling "))
    assert messages[first] == f"s1tiling {__version__}, request file {cfg}"
    text = "\n".join(lines)
    settings_at, plan_at = text.index("Resolved settings:"), text.index("Plan:")
    assert settings_at < plan_at and "Request file     : " in text and "Calibration      : " in text
    written = [m for m in messages if ": wrote " in m]
    assert written, text[-2000:]
    summary = [m for m in messages if m.startswith("Summary: ")]
    assert len(summary) == 1 and re.fullmatch(
        r"Summary: \d+ file\(s\) written, \d+ task\(s\) done, 0 failed, 0 skipped; wall time \d+\.\d s", summary[0])
    assert int(summary[0].split()[1]) >= 4  # VV and VH images, their masks and quicklooks
    assert "Resolved settings:" not in console and "Plan:" not in console
    assert "Summary: " in console
