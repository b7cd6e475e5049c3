"""The environment is the lock: set-up installs requirements.lock, and what is installed is what it pins."""

import re
from pathlib import Path

from bnlab.provenance import installed_packages

ROOT = Path(__file__).resolve().parents[1]
# what pip freeze leaves out of a lock (the installer's own tools) and bnlab itself (installed editable)
NOT_LOCKED = {"pip", "setuptools", "wheel", "bnlab"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[normalise(name)] = version
    return pins


def test_the_installed_packages_are_the_lock():
    installed = {normalise(name): v for name, v in installed_packages() if normalise(name) not in NOT_LOCKED}
    pins = lock()
    extra = sorted(f"{n}=={v}" for n, v in installed.items() if n not in pins)
    missing = sorted(f"{n}=={v}" for n, v in pins.items() if n not in installed)
    other = sorted(f"{n}: installed {installed[n]}, locked {v}" for n, v in pins.items()
                   if n in installed and installed[n] != v)
    assert not (extra or missing or other), (
        f"the environment differs from requirements.lock (re-run ./setup.sh, or regenerate the lock as the "
        f"README says): not locked {extra}; not installed {missing}; other versions {other}")


def test_the_lock_holds_every_requirement_at_its_pinned_version():
    pins = lock()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            name = normalise(name.split("[")[0])
            assert pins.get(name) == version, (name, version, pins.get(name))
    assert pins["weasyprint"] == "70.0"  # 66.0 is inside CVE-2026-55073


# ------------------------------------------------------------------ the conda environment (--sdm conda)
def conda_env_files() -> set[Path]:
    """The environment files the rules name (`conda:` directives, relative to rules/)."""
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    return {(ROOT / "rules" / path).resolve() for path in re.findall(r'conda:\s*\n\s*"([^"]+)"', text)}


def test_every_conda_environment_gets_bnlab_from_its_post_deploy_script():
    envs = conda_env_files()
    assert envs == {ROOT / "envs" / "bnlab.yaml"}
    for env in envs:
        # Snakemake runs <env>.post-deploy.sh after creating the environment of <env>.yaml
        assert env.with_suffix(".post-deploy.sh").exists()
        # a relative path in the file would be read from .snakemake/conda/, where Snakemake copies it
        assert not re.search(r"^\s*-\s*-e\s", env.read_text(), re.M)


def test_the_post_deploy_script_makes_the_checkouts_bnlab_importable(tmp_path):
    """Run as Snakemake runs it: inside the new environment (here a bare venv: no bnlab, no site-packages
    of ours), from Snakemake's working directory."""
    import os
    import subprocess
    import sys

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    inside = {**os.environ, "PATH": f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    inside.pop("PYTHONPATH", None)
    python = str(env / "bin" / "python")
    script = str(ROOT / "envs" / "bnlab.post-deploy.sh")
    assert subprocess.run([python, "-c", "import bnlab"], cwd=tmp_path, env=inside).returncode != 0

    elsewhere = subprocess.run(["bash", script], cwd=tmp_path, env=inside, capture_output=True, text=True)
    assert elsewhere.returncode != 0 and "run snakemake from the bnlab checkout" in elsewhere.stderr

    deployed = subprocess.run(["bash", script], cwd=ROOT, env=inside, capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stderr
    found = subprocess.run([python, "-c", "import bnlab; print(bnlab.__file__)"], cwd=tmp_path, env=inside,
                           capture_output=True, text=True)
    assert found.stdout.strip() == str(ROOT / "bnlab" / "__init__.py"), found.stderr
