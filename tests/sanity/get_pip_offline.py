"""Stand-in for pip's get-pip.py bootstrap script.

ansible-test downloads get-pip.py from ci-files.testing.ansible.com, which these machines
cannot reach. This does the same job from what they can reach: the standard library's
ensurepip, then pip itself (at the version ansible-test asks for) from PyPI.
"""

import subprocess
import sys

ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *ARGS])
