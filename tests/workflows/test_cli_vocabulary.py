import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_command_is_mounted_and_has_help():
    proc = subprocess.run([sys.executable, "workflows/submit.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, check=True)
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"dump", "lint", "register", "submit", "run", "resume", "stop", "promote", "rollback", "status",
                      "serve"}
    for cmd in sorted(listed):
        out = subprocess.run([sys.executable, "workflows/submit.py", cmd, "--help"], cwd=REPO,
                             capture_output=True, text=True)
        assert out.returncode == 0 and "Usage:" in out.stdout, (cmd, out.stderr)
