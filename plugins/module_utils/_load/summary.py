# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A load test's result as text a person reads: the figures ``hey`` prints, the spread over
replicas, where failures happened, and a ``docker stats``-like table of the containers."""

from __future__ import annotations

MAX_TIMELINE_ENTRIES = 12


def _ms(value):
    return '-' if value is None else f'{value:.1f}'


def _counts(counts, total=None):
    """``a 3 (75.0%), b 1 (25.0%)`` (with shares when ``total`` is given), largest first."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if total:
        return ', '.join(f'{key} {count} ({100.0 * count / total:.1f}%)' for key, count in ordered)
    return ', '.join(f'{key} {count}' for key, count in ordered)


def _table(header, rows, text_last=False):
    """Lines of a left-aligned first column and right-aligned other columns (the last one left-aligned
    too with ``text_last``)."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    last = len(header) - 1
    lines = []
    for row in [header] + rows:
        cells = [str(cell).ljust(widths[i]) if i == 0 or (text_last and i == last) else str(cell).rjust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append('  ' + '  '.join(cells).rstrip())
    return lines


def top_errors(result, count=3):
    """``kind n, kind n`` of the most frequent failure kinds."""
    errors = result.get('errors') or {}
    return _counts(dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:count]))


def summary_lines(result):
    """The result of runner.run_load() (with stats.StatsSampler's keys, when sampled) as lines of text."""
    url = result.get('url', '?')
    if result.get('started_at') is None:
        return [result.get('msg') or f'No load was sent to {url}.']
    config = result.get('config') or {}
    sent, failed = result.get('sent', 0), result.get('failed', 0)
    share = f' ({100.0 * failed / sent:.1f}%)' if sent else ''
    lines = [f"Load test of {url}: {result.get('duration_s', 0):.1f} s, {config.get('concurrency', '?')} workers, "
             f"stopped by {result.get('stopped_by')} (started {result.get('started_at')})",
             f"Requests: {sent} sent, {result.get('ok', 0)} ok, {failed} failed{share}, {result.get('rps', 0):.1f} req/s"]
    extra = []
    if result.get('unfinished'):
        extra.append(f"{result['unfinished']} still in flight at the end (not counted)")
    if result.get('stale_retries'):
        extra.append(f"{result['stale_retries']} GETs re-sent once on a new connection (the server had closed the old one)")
    if extra:
        lines.append('  ' + '; '.join(extra))
    setup = result.get('setup') or {}
    if setup.get('users'):
        lines.append(f"Setup: {setup['users']} users and {setup.get('orders', 0)} orders created for the placeholders")
    lines.append(f"Status codes: {_counts(result.get('status_counts') or {}) or 'none (no answer)'}")
    lines.append(f"Errors: {_counts(result.get('errors') or {}) or 'none'}")
    latency = result.get('latency_ms') or {}
    lines.append(f"Latency (ms): p50 {_ms(latency.get('p50'))}, p95 {_ms(latency.get('p95'))}, "
                 f"p99 {_ms(latency.get('p99'))}, max {_ms(latency.get('max'))}, mean {_ms(latency.get('mean'))}")
    by_request = result.get('by_request') or {}
    if by_request:
        rows = [[name, r['sent'], r['failed'], _ms(r['latency_ms']['p50']), _ms(r['latency_ms']['p95']),
                 _ms(r['latency_ms']['p99']), _counts(r['errors']) or '-'] for name, r in by_request.items()]
        lines.extend(_table(['REQUEST', 'SENT', 'FAILED', 'P50 MS', 'P95 MS', 'P99 MS', 'ERRORS'], rows, text_last=True))
    for header, counts in (result.get('spread') or {}).items():
        answered = sum(counts.values())
        lines.append(f"Spread of {header}: {_counts(counts, answered) if counts else 'no answer carried it'}")
    failing = [bucket for bucket in result.get('timeline') or [] if bucket['failed']]
    if failing:
        shown = ', '.join(f"t={b['t']}s {b['failed']}/{b['sent']}" for b in failing[:MAX_TIMELINE_ENTRIES])
        more = f' and {len(failing) - MAX_TIMELINE_ENTRIES} more seconds' if len(failing) > MAX_TIMELINE_ENTRIES else ''
        lines.append(f'Failures by second (failed/sent): {shown}{more}')
    samples = result.get('failure_samples') or []
    if samples:
        lines.append('First failures:')
        for sample in samples[:5]:
            status = f" (HTTP {sample['status']})" if sample.get('status') else ''
            body = f": {sample['body']}" if sample.get('body') else ''
            lines.append(f"  t={sample['t']:.3f}s {sample['request']} {sample['kind']}{status}{body}")
    lines.extend(stats_lines(result))
    return lines


def stats_lines(result):
    """The containers' CPU and memory table, or why there is none."""
    if 'stats' not in result and 'stats_error' not in result:
        return []
    stats = result.get('stats') or {}
    lines = []
    if stats:
        lines.append('Containers (CPU in % of one core, memory in MiB):')
        rows = [[name, _ms(s['cpu_percent_mean']), _ms(s['cpu_percent_max']), _ms(s['memory_mib_max']),
                 _ms(s['memory_limit_mib']), s['samples']] for name, s in stats.items()]
        lines.extend(_table(['CONTAINER', 'CPU% MEAN', 'CPU% MAX', 'MEM MAX', 'MEM LIMIT', 'SAMPLES'], rows))
    if result.get('stats_error'):
        lines.append(f"Container stats: {'incomplete' if stats else 'not sampled'} ({result['stats_error']})")
    return lines


def summary_text(result):
    """summary_lines() as one string."""
    return '\n'.join(summary_lines(result))
