# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The results of a run as a JUnit XML document."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET


def junit_xml(results, suite='stack_health'):
    """A JUnit XML document (bytes): one testcase per check, failed checks with their message."""
    failures = sum(1 for r in results if not r['passed'])
    total_ms = sum(r['duration_ms'] for r in results)
    root = ET.Element('testsuites', {'name': suite, 'tests': str(len(results)), 'failures': str(failures),
                                     'time': f'{total_ms / 1000:.3f}'})
    suite_el = ET.SubElement(root, 'testsuite', {'name': suite, 'tests': str(len(results)),
                                                 'failures': str(failures), 'errors': '0', 'skipped': '0',
                                                 'time': f'{total_ms / 1000:.3f}'})
    for result in results:
        case = ET.SubElement(suite_el, 'testcase', {'classname': f"{suite}.{result['kind']}",
                                                    'name': result['name'],
                                                    'time': f"{result['duration_ms'] / 1000:.3f}"})
        if not result['passed']:
            failure = ET.SubElement(case, 'failure', {'message': result['message'], 'type': result['kind']})
            failure.text = json.dumps({'target': result['target'], 'attempts': result['attempts'],
                                       'observed': result['observed']}, indent=2, sort_keys=True, default=str)
        else:
            out = ET.SubElement(case, 'system-out')
            out.text = result['message']
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding='utf-8')
