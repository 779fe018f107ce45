#!/usr/bin/env bash
# Run ansible-test sanity on a copy of the collection: ansible-test needs the tree under
# ansible_collections/dockerlab/ecommerce/ as real files, not behind a symlink.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/dockerlab/ecommerce"
mkdir -p "$dest"
# The files git knows about (tracked or new), without the self-link under collections/.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' \
  | xargs -0 tar -cf - --no-recursion) | tar -C "$dest" -xf -
# ansible-test fetches its pip bootstrap script from a host that is unreachable offline;
# where it is not cached yet, put our stand-in (ensurepip + PyPI) in its place.
pip_version="$(python - <<'PY'
import pathlib, re, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp "$repo/tests/sanity/get_pip_offline.py" "$cache"
  echo "sanity: using tests/sanity/get_pip_offline.py as ansible-test's pip bootstrap (its download host is unreachable)"
fi
cd "$dest"
git init -q && git add -A
ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
