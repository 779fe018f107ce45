# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/render: the configuration the roles render (tests/render/render.yml), parsed and
checked without a Docker engine (`make render`). What needs the offline Prometheus image
(promtool, a live Prometheus) is in tests/engine/prometheus."""

from rendering import rendered_offline, rendered_secrets, rendered_upstream  # noqa: F401  pylint: disable=unused-import,import-error  # fixtures, tests/rendering.py
