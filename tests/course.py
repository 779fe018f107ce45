# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the course prints, as the tests check the lab against it."""

from __future__ import annotations

# The course's address table (ARCHITECTURE.md, "addresses (one host)"): what `docker inspect`
# shows on a lab made with the defaults. The gateway and the services run two replicas by
# default: the first one has the course's addresses, the second a dynamic one (ip_range).
COURSE_ADDRESSES = {
    'load-balancer': {'frontend': '172.20.0.10'},
    'web-server-1': {'frontend': '172.20.0.11'},
    'web-server-2': {'frontend': '172.20.0.12'},
    'api-gateway-1': {'backend': '172.21.0.10', 'frontend': '172.20.0.20'},
    'user-service-1': {'backend': '172.21.0.11', 'database': '172.22.0.21'},
    'order-service-1': {'backend': '172.21.0.12', 'database': '172.22.0.22'},
    'payment-service-1': {'backend': '172.21.0.13', 'database': '172.22.0.23'},
    'mysql-db': {'database': '172.22.0.10'},
    'redis-cache': {'database': '172.22.0.11'},
    'mongodb': {'database': '172.22.0.12'},
    'prometheus': {'monitoring': '172.23.0.10'},
    'grafana': {'monitoring': '172.23.0.11', 'frontend': '172.20.0.30'},
    'cadvisor': {'monitoring': '172.23.0.12'},
    'elasticsearch': {'monitoring': '172.23.0.20'},
    'kibana': {'monitoring': '172.23.0.21'},
    'fluentd': {'monitoring': '172.23.0.22'},
}
