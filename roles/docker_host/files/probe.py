"""Tell, in one run, whether the Docker Engine answers and whether this Python has the
Docker SDK. Prints one JSON object; always exits 0."""

import json
import subprocess

try:
    import docker  # noqa: F401  pylint: disable=unused-import

    SDK = True
except ImportError:
    SDK = False

try:
    PROC = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=30, check=False)
    ENGINE = {"rc": PROC.returncode, "version": PROC.stdout.strip(), "error": PROC.stderr.strip()}
except (OSError, subprocess.TimeoutExpired) as exc:
    ENGINE = {"rc": 127, "version": "", "error": str(exc)}

print(json.dumps({"sdk": SDK, "engine": ENGINE}))
