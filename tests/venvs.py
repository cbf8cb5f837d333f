"""Fresh virtual environments with wheels of seqgen and plugins, for tests of what users install.

The venv gets the wheels installed --no-deps --no-index (no network). Their dependencies
(torch, ...) come from the outer environment through a .pth *path* entry: a plain
directory on sys.path, whose own .pth files (the editable install's import hook) are not
run, so `import seqgen` can only find the installed wheel.
"""
from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sh(*args, env=None, cwd=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    """Run a command; with check, a non-zero exit fails with its output."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                            cwd=cwd, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def build_wheels(projects, wheels: Path) -> list[Path]:
    """`pip wheel --no-deps --no-build-isolation` each project folder into `wheels`."""
    for project in projects:
        sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
           "-w", wheels, project)
    return sorted(wheels.glob("*.whl"))


def build_venv(root: Path, projects) -> Path:
    """A venv under `root`/venv with a wheel of each project folder installed; its path.

    Python is venv/bin/python, console scripts in venv/bin."""
    wheels = build_wheels(projects, root / "wheels")
    env_dir = root / "venv"
    sh(sys.executable, "-m", "venv", env_dir)
    py = env_dir / "bin" / "python"
    purelib = sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    purelib = purelib.stdout.strip()
    Path(purelib, "outer_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    sh(py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", *wheels)
    return env_dir
