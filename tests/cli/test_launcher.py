"""The ``dive-pyro`` console script: Ctrl-C during the package import is a one-line message."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

INTERRUPT_IMPORT = """
class Interrupt:  # Ctrl-C arrives while dive_pyro is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "dive_pyro":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
"""
FAKE_CLI = """
import types
package, cli = types.ModuleType("dive_pyro"), types.ModuleType("dive_pyro.cli")
package.__path__, package.cli, cli.main = [], cli, lambda: print("cli ran") or 7
sys.modules.update({"dive_pyro": package, "dive_pyro.cli": cli})
"""


def _launch(prelude: str) -> subprocess.CompletedProcess:
    code = "import sys\n" + prelude + "import dive_pyro_launcher\nsys.exit(dive_pyro_launcher.main())\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_ctrl_c_while_importing_is_a_clean_message():
    done = _launch(INTERRUPT_IMPORT)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "interrupted while starting" in done.stderr


def test_the_launcher_runs_the_cli_and_returns_its_status():
    done = _launch(FAKE_CLI)
    assert done.returncode == 7 and "cli ran" in done.stdout, done.stderr


def test_the_console_script_is_the_launcher():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dive-pyro = "dive_pyro_launcher:main"' in text and '"dive_pyro_launcher"' in text
