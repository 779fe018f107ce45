# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The topology_report module, run in-process (patch_module_args) against a fake Docker API."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dockerlab.ecommerce.plugins.modules import topology_report
from test_topology_precheck import module_side, warning_texts  # noqa: F401  pylint: disable=unused-import

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'module_utils'))
from fake_docker import FakeDockerAPI  # noqa: E402
from test_report import FLOWS, NETWORKS, VOLUMES, raw_stack, topology  # noqa: E402


class FakeAPI(FakeDockerAPI):
    """The list and inspect calls topology_report makes, on ``raw`` (test_report.raw_stack()); exec from FakeDockerAPI."""

    def __init__(self, raw):
        super().__init__()
        self.raw = raw
        self.calls = []

    def networks(self, names=None, filters=None):
        self.calls.append(('networks', names, filters))
        return [{'Id': n['Id'], 'Name': n['Name']} for n in self.raw['networks']]

    def inspect_network(self, ident):
        return copy.deepcopy(next(n for n in self.raw['networks'] if n['Id'] == ident))

    def containers(self, all=False, filters=None):  # noqa: A002 - the SDK's name  pylint: disable=redefined-builtin
        return [{'Id': c['Id']} for c in self.raw['containers']]

    def inspect_container(self, ident):
        for container in self.raw['containers']:
            if ident in (container['Id'], container['Name'].lstrip('/')):
                return copy.deepcopy(container)
        error = Exception(f'No such container: {ident}')
        error.response = type('R', (), {'status_code': 404})()
        raise error

    def volumes(self, filters=None):
        return {'Volumes': copy.deepcopy(self.raw['volumes'])}

    def inspect_volume(self, name):
        error = Exception(f'No such volume: {name}')
        error.response = type('R', (), {'status_code': 404})()
        raise error


class FakeClient:
    def __init__(self, raw):
        self.api = FakeAPI(raw)

    def close(self):
        pass


@pytest.fixture
def fake_docker(monkeypatch):
    monkeypatch.setattr(topology_report, 'HAS_DOCKER_SDK', True)
    client = FakeClient(raw_stack())
    monkeypatch.setattr(topology_report, 'get_client', lambda *args: (client, None))
    return client


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        topology_report.main()
    return exit_info.value.code != 0, json.loads(capsys.readouterr().out)


def base_args(tmp_path, **extra):
    args = {'stack_name': 'shop', 'topology': topology(), 'networks': NETWORKS, 'volumes': VOLUMES, 'flows': FLOWS,
            'secrets_dir': '/srv/shop/secrets',
            'json_path': str(tmp_path / 'r.json'), 'markdown_path': str(tmp_path / 'r.md'),
            'mermaid_path': str(tmp_path / 'r.mmd'), 'dot_path': str(tmp_path / 'r.dot')}
    args.update(extra)
    return args


def test_writes_files_then_nothing_changes(capsys, tmp_path, fake_docker):
    failed, result = run_module(capsys, base_args(tmp_path))
    assert not failed and result['changed'] is True
    assert {k: v['changed'] for k, v in result['files'].items()} == {'json': True, 'markdown': True, 'mermaid': True,
                                                                     'dot': True}
    assert json.loads((tmp_path / 'r.json').read_text()) == result['report']
    assert result['report']['schema_version'] == 1
    assert ('port_bound_to_all_interfaces', 'web') in {(v['kind'], v['subject']) for v in result['violations']}
    assert '`/srv/shop/secrets`' in (tmp_path / 'r.md').read_text()
    assert ('networks', None, {'label': 'dockerlab.stack=shop'}) in fake_docker.api.calls

    failed, again = run_module(capsys, base_args(tmp_path))
    assert not failed and again['changed'] is False
    assert not any(v['changed'] for v in again['files'].values())


def test_check_mode_writes_nothing(capsys, tmp_path, fake_docker):
    (tmp_path / 'r.md').write_text('old\n')
    failed, result = run_module(capsys, base_args(tmp_path, _ansible_check_mode=True))
    assert not failed and result['changed'] is True and result['files']['markdown']['changed'] is True
    assert (tmp_path / 'r.md').read_text() == 'old\n'
    assert not (tmp_path / 'r.json').exists()


def test_svg_without_graphviz_warns(capsys, tmp_path, fake_docker, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: None)
    failed, result = run_module(capsys, {'stack_name': 'shop', 'topology': topology(), 'networks': NETWORKS,
                                         'svg_path': str(tmp_path / 'r.svg')})
    assert not failed and result['changed'] is False and 'svg' not in result['files']
    assert any("Graphviz's dot is not installed" in w for w in warning_texts(result))


def test_svg_with_graphviz(capsys, tmp_path, fake_docker, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: '/usr/bin/dot')

    def fake_dot(self, args, data=None, binary_data=False, encoding='utf-8', **kwargs):
        assert args == ['/usr/bin/dot', '-Tsvg'] and data.startswith('digraph "shop"')
        return 0, b'<svg/>', b''
    monkeypatch.setattr(AnsibleModule, 'run_command', fake_dot)
    failed, result = run_module(capsys, {'stack_name': 'shop', 'topology': topology(), 'networks': NETWORKS,
                                         'svg_path': str(tmp_path / 'r.svg')})
    assert not failed and result['files']['svg'] == {'path': str(tmp_path / 'r.svg'), 'changed': True}
    assert (tmp_path / 'r.svg').read_bytes() == b'<svg/>'


def test_fail_on_violation(capsys, tmp_path, fake_docker):
    failed, result = run_module(capsys, base_args(tmp_path, fail_on_violation=True))
    assert failed
    lines = result['msg'].splitlines()
    assert lines[0] == f"The stack has {len(result['violations'])} violation(s):"
    assert 'port_bound_to_all_interfaces: container web publishes 8080/tcp on 0.0.0.0: bound to all interfaces, ' \
           'should be local (declared bind_address 127.0.0.1)' in lines
    assert (tmp_path / 'r.md').exists()   # the files are written before failing


def test_missing_directory_and_no_engine(capsys, tmp_path, fake_docker, monkeypatch):
    failed, result = run_module(capsys, base_args(tmp_path, markdown_path=str(tmp_path / 'no' / 'r.md')))
    assert failed and result['msg'] == (f"Cannot write {tmp_path / 'no' / 'r.md'}: the directory {tmp_path / 'no'} "
                                        'does not exist; create it first')
    monkeypatch.setattr(topology_report, 'get_client', lambda *args: (None, 'No Docker engine answered at x'))
    failed, result = run_module(capsys, base_args(tmp_path))
    assert failed and result['msg'] == 'No Docker engine answered at x'


def test_reachability_through_docker_exec(capsys, tmp_path, fake_docker):
    """probe_reachability runs one exec per running declared container through the client."""
    answered = []

    def answer(container, environment):
        answered.append(container)
        return 0, ''.join(f'{target} closed\n' for target in environment['DL_TARGETS'].split()).encode(), b''
    fake_docker.api.answer = answer
    failed, result = run_module(capsys, base_args(tmp_path, probe_reachability=True))
    assert not failed, result
    assert sorted(answered) == ['db', 'web']
    found = {(v['kind'], v['subject']): v['message'] for v in result['violations']}
    assert found[('unreachable_allowed', 'web -> api:3000')] == (
        'flow web -> api:3000 is allowed by stack_flows but unreachable (api is not running)')
    assert result['report']['reachability']['skipped'][0] == {
        'container': 'api', 'reason': 'missing, so no connection was tried from it'}


def test_topology_must_be_resolved(capsys, tmp_path, fake_docker):
    failed, result = run_module(capsys, base_args(tmp_path, topology={'data_services': {}}))
    assert failed and result['msg'] == ('topology is not a resolved topology (it has no containers list); pass the '
                                        'result of the dockerlab.ecommerce.stack_model filter')
