from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from ingest.rows import to_micros
from ingest.simulator import Fleet, IncidentKind
from netpulse.metrics import MetricKind

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _times(start: datetime, n: int, step_s: int = 60) -> np.ndarray:
    return to_micros(start) + np.arange(n, dtype=np.int64) * step_s * 1_000_000


def _value(rows, device: int, metric: MetricKind, t_us: int) -> float | None:
    m = (rows.device_id == device) & (rows.metric_id == int(metric)) & (rows.time_us == t_us)
    return float(rows.value[m][0]) if m.any() else None


def test_samples_do_not_depend_on_the_window() -> None:
    fleet = Fleet(n_devices=50, seed=7)
    t = _times(T0, 20)
    whole = fleet.sample(t)
    a, b = fleet.sample(t[:10]), fleet.sample(t[10:])
    key = lambda r: np.lexsort((r.ifindex, r.metric_id, r.device_id, r.time_us))  # noqa: E731
    joined = type(whole).concat([a, b])
    for f in ("time_us", "device_id", "metric_id", "ifindex", "value"):
        assert np.array_equal(getattr(whole, f)[key(whole)], getattr(joined, f)[key(joined)])
    subset = fleet.sample(t, device_indices=[3, 17])
    assert set(subset.device_id.tolist()) == {4, 18}
    assert _value(subset, 18, MetricKind.CPU_PCT, int(t[5])) == _value(whole, 18, MetricKind.CPU_PCT, int(t[5]))


def test_seed_decides_everything() -> None:
    t = _times(T0, 5)
    assert np.array_equal(Fleet(30, seed=1).sample(t).value, Fleet(30, seed=1).sample(t).value)
    assert not np.array_equal(Fleet(30, seed=1).sample(t).value, Fleet(30, seed=2).sample(t).value)


def test_topology() -> None:
    fleet = Fleet(n_devices=200, n_sites=3)
    assert len(fleet.devices) == 200
    assert len({d.address for d in fleet.devices}) == 200
    assert len({d.name for d in fleet.devices}) == 200
    for d in fleet.devices:
        if d.parent_index is not None:
            assert fleet.devices[d.parent_index].site == d.site
            assert d.parent_index < d.index  # parents come first: no cycles
    assert {d.site for d in fleet.devices} == {"Nairobi", "Mombasa", "Kisumu"}
    assert len(Fleet(n_devices=1).devices) == 1


def test_every_kind_of_incident_happens_within_a_day() -> None:
    kinds = {i.kind for i in Fleet(200).incidents(T0, T0 + timedelta(days=1))}
    assert kinds == set(IncidentKind)


def test_outage_silences_the_device_and_its_children_exactly_over_its_span() -> None:
    fleet = Fleet(200, incidents_per_device_day=0.5)
    inc = next(i for i in fleet.incidents(T0, T0 + timedelta(days=3))
               if i.kind is IncidentKind.OUTAGE and fleet._descendants(i.device_index))
    child = fleet._descendants(inc.device_index)[0]
    t = _times(inc.start - timedelta(minutes=3), int((inc.end - inc.start).total_seconds() // 60) + 6)
    rows = fleet.sample(t, device_indices=[inc.device_index, child])
    for dev in (inc.device_index, child):
        for tu in t.tolist():
            inside = to_micros(inc.start) <= tu < to_micros(inc.end)
            others = fleet.affected(datetime.fromtimestamp(tu / 1e6, UTC))
            expected = 0.0 if inside or others.get(dev) is IncidentKind.OUTAGE else 1.0
            assert _value(rows, dev + 1, MetricKind.AVAILABLE, tu) == expected
            if expected == 0.0:
                assert _value(rows, dev + 1, MetricKind.ICMP_RTT_MS, tu) is None


def test_latency_loss_and_saturation_incidents_have_their_magnitude() -> None:
    fleet = Fleet(200)
    seen = set()
    for inc in fleet.incidents(T0, T0 + timedelta(days=2)):
        if inc.kind in seen or inc.kind is IncidentKind.OUTAGE:
            continue
        mid = to_micros(inc.start + (inc.end - inc.start) / 2) // 60_000_000 * 60_000_000
        if fleet.affected(datetime.fromtimestamp(mid / 1e6, UTC)).get(inc.device_index) is not inc.kind:
            continue  # overlapped by another incident
        rows = fleet.sample(np.array([mid]), device_indices=[inc.device_index])
        dev = inc.device_index + 1
        if inc.kind is IncidentKind.LATENCY_SPIKE:
            assert _value(rows, dev, MetricKind.ICMP_RTT_MS, mid) > inc.magnitude * fleet._base_rtt[inc.device_index]
        elif inc.kind is IncidentKind.PACKET_LOSS:
            assert abs(_value(rows, dev, MetricKind.ICMP_LOSS_PCT, mid) - inc.magnitude) < 15
        else:
            assert _value(rows, dev, MetricKind.IF_UTIL_PCT, mid) >= 89
        seen.add(inc.kind)
    assert seen == {IncidentKind.LATENCY_SPIKE, IncidentKind.PACKET_LOSS, IncidentKind.LINK_SATURATION}


def test_utilisation_is_the_larger_direction_against_speed() -> None:
    fleet = Fleet(60)
    rows = fleet.sample(_times(T0 + timedelta(hours=14), 3))
    for dev in {int(x) for x in rows.device_id[rows.metric_id == int(MetricKind.IF_UTIL_PCT)]}:
        t = int(rows.time_us[0])
        i, o = _value(rows, dev, MetricKind.IF_IN_BPS, t), _value(rows, dev, MetricKind.IF_OUT_BPS, t)
        u = _value(rows, dev, MetricKind.IF_UTIL_PCT, t)
        if i is not None:
            assert abs(u - max(i, o) / fleet._speed_bps[dev - 1] * 100) < 1e-6
