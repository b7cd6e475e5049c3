"""Run-folder writers: files get the mode of any other output (0o666 less the umask), not mkstemp's 0600."""

import os
import stat

import pandas as pd
import pytest

from bnlab import runfolder


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one is restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    runfolder.write_json(tmp_path / "run" / runfolder.METRICS, {"status": "ok", "loss": float("nan")})
    runfolder.write_parquet(tmp_path / "run" / runfolder.PROBES, pd.DataFrame({"step": [1, 2], "beta": [0.5, 1.0]}))
    for name in (runfolder.METRICS, runfolder.PROBES):
        assert stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode) == mode, name
    # atomic: no temp file left beside the results, and what was written reads back
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted([runfolder.METRICS, runfolder.PROBES])
    assert runfolder.read_json(tmp_path / "run" / runfolder.METRICS) == {"status": "ok", "loss": None}
    assert pd.read_parquet(tmp_path / "run" / runfolder.PROBES).beta.tolist() == [0.5, 1.0]


def test_overwrite_takes_the_current_umask_and_a_failed_write_leaves_nothing(tmp_path, umask):
    path = tmp_path / runfolder.CONFIG
    umask(0o077)
    runfolder.write_json(path, {"a": 1})
    umask(0o022)
    runfolder.write_json(path, {"a": 2})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644 and runfolder.read_json(path) == {"a": 2}
    with pytest.raises(TypeError):
        runfolder.write_json(path, {"a": object()})  # not JSON: the old file stays, no temp file is left
    assert runfolder.read_json(path) == {"a": 2} and [p.name for p in tmp_path.iterdir()] == [runfolder.CONFIG]
