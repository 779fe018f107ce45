# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The load_test module, run in-process (patch_module_args) against the fake lab of
tests/unit/plugins/module_utils/test_load_runner.py; no Docker engine (stats sampling is off, or
pointed at a socket that does not exist)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dockerlab.ecommerce.plugins.modules import load_test
from test_topology_precheck import module_side  # noqa: F401  pylint: disable=unused-import

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'module_utils'))
from test_load_runner import lab  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        load_test.main()
    return exit_info.value.code != 0, json.loads(capsys.readouterr().out)


def test_a_short_run(capsys, lab):
    failed, result = run_module(capsys, {'url': lab.url, 'concurrency': 3, 'duration': 30, 'max_requests': 40,
                                         'sample_stats': False})
    assert not failed, result.get('msg')
    assert result['changed'] is False
    assert result['sent'] == 40 and result['failed'] == 0 and result['stopped_by'] == 'max_requests'
    assert result['setup']['users'] == 5 and set(result['by_request']) == {'get_user', 'front_page', 'create_order',
                                                                           'get_order'}
    assert result['summary'] == '\n'.join(result['summary_lines'])
    assert result['summary_lines'][1].startswith('Requests: 40 sent, 40 ok, 0 failed')
    assert 'stats' not in result and 'stats_error' not in result


def test_check_mode_sends_nothing(capsys, lab):
    failed, result = run_module(capsys, {'url': lab.url, 'sample_stats': True, '_ansible_check_mode': True})
    assert not failed
    assert lab.requests == []
    assert result['changed'] is False and result['skipped'] is True
    assert result['msg'] == f'Check mode: no load was sent to {lab.url}.'
    assert result['sent'] == 0 and result['summary_lines'] == [result['msg']]


def test_check_mode_still_checks_the_options(capsys):
    failed, result = run_module(capsys, {'url': 'http://10.1.2.3:8080', '_ansible_check_mode': True})
    assert failed and 'allow_remote' in result['msg']


def test_max_failed_exceeded_fails_with_the_result(capsys, lab):
    mix = [{'name': 'down', 'method': 'POST', 'path': '/api/fail/', 'body': {}, 'idempotency_key': True},
           {'name': 'page', 'path': '/', 'weight': 0}]
    failed, result = run_module(capsys, {'url': lab.url, 'mix': mix, 'max_requests': 6, 'concurrency': 2,
                                         'sample_stats': False, 'max_failed': 2})
    assert failed
    assert result['msg'] == '6 of 6 requests failed, more than max_failed=2; most frequent: status_503 6'
    assert result['errors'] == {'status_503': 6} and result['sent'] == 6
    assert result['summary_lines'] and result['by_request']['page']['sent'] == 0
    assert len(lab.seen('POST', '/api/fail/')) == 6


def test_max_failed_not_exceeded(capsys, lab):
    failed, result = run_module(capsys, {'url': lab.url, 'mix': [{'path': '/flaky'}], 'max_requests': 9,
                                         'concurrency': 1, 'sample_stats': False, 'max_failed': 3})
    assert not failed, result['msg']
    assert result['errors'] == {'status_502': 3}


def test_stats_without_an_engine_do_not_fail_the_run(capsys, lab, tmp_path):
    failed, result = run_module(capsys, {'url': lab.url, 'mix': [{'path': '/'}], 'max_requests': 5,
                                         'docker_host': f"unix://{tmp_path / 'no-docker.sock'}", 'api_timeout': 2})
    assert not failed, result.get('msg')
    assert result['sent'] == 5 and result['stats'] == {}
    assert result['stats_error'] and 'Traceback' not in result['stats_error']
    assert result['summary_lines'][-1].startswith('Container stats: not sampled (')


@pytest.mark.parametrize('args, message', [
    ({'url': 'ftp://127.0.0.1/'}, 'url must start with http://'),
    ({'url': 'not a url'}, 'url must start with http://'),
    ({'url': 'http://192.0.2.10:8080'}, 'allow_remote: true'),
    ({'duration': 3600}, 'duration must be at most 600 seconds'),
    ({'duration': 0, 'max_requests': 0}, 'give the load test a bound'),
    ({'concurrency': 1000}, 'concurrency must be between 1 and 256'),
    ({'stats_interval': 0}, 'stats_interval must be more than 0'),
    ({'mix': [{'path': '/api/users/{user_id}'}], 'setup_users': 0}, 'set setup_users to 1 or more'),
    ({'mix': [{'path': '/', 'body': 5}]}, 'body must be a JSON object'),
])
def test_argument_errors(capsys, args, message):
    failed, result = run_module(capsys, {'sample_stats': False, **args})
    assert failed and message in result['msg'], result['msg']
    assert 'exception' not in result


def test_setup_failure_is_a_message(capsys, closed_port):
    failed, result = run_module(capsys, {'url': f'http://127.0.0.1:{closed_port}', 'sample_stats': False,
                                         'max_requests': 5})
    assert failed
    assert result['msg'].startswith(f'setup: POST http://127.0.0.1:{closed_port}/api/users/ (to create users) failed: '
                                    'connect_refused')
