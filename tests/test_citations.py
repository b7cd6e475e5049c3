"""The report and the code cite what a bnlab user can read: papers, benchmarks and seeds by name.

The background notes the project was built from are not shipped, so no config
(whose reference sources print in the report), no string in bnlab/ and no other
shipped file may point a reader at them.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = "SCIENCE" + ".md"  # spelt in two parts so this file does not match itself
FOLDERS = ("bnlab", "config", "report", "rules", "scripts", "profiles", "bench", "envs", "tests")
TOP_FILES = ("config.yaml", "README.md", "Snakefile", "pyproject.toml", "requirements.txt", "setup.sh")
SKIP_PARTS = {"__pycache__", ".pytest_cache", "bnlab.egg-info"}


def shipped_text_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES if (ROOT / name).is_file()]
    for folder in FOLDERS:
        files += [p for p in sorted((ROOT / folder).rglob("*"))
                  if p.is_file() and not SKIP_PARTS & set(p.relative_to(ROOT).parts)]
    texts = []
    for path in files:
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary (figures, fonts): no citation there
        texts.append(path)
    return texts


def test_config_files_and_bnlab_are_scanned():
    names = {p.relative_to(ROOT).as_posix() for p in shipped_text_files()}
    assert {"config.yaml", "config/full.yaml", "config/smoke.yaml", "config/schema.yaml",
            "bnlab/analyses/architecture/section.py", "bnlab/config.py"} <= names


def test_no_file_cites_the_private_notes():
    lines = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for path in shipped_text_files()
             for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if PRIVATE in line]
    assert not lines, "cite the paper, benchmark or seed instead:\n" + "\n".join(lines)


def test_reference_sources_name_a_readable_source():
    from bnlab.config import build_plan, load_config

    for name in ("config.yaml", "config/full.yaml", "config/smoke.yaml"):
        for study in build_plan(load_config(ROOT / name)).studies.values():
            for ref in study.references:
                assert ref["source"].strip() and PRIVATE not in ref["source"], (name, study.name, ref)
