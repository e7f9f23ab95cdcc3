"""Hypothesis strategies for request bodies of the alerts API: alerts, near-alerts and hostile JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

ALERT = {
    "device_id": "DEV-B202",
    "error_code": "E101_OVERHEAT",
    "details": "CPU temperature above threshold",
    "alert_timestamp": "2025-10-01T23:30:00-05:00",
}
FIELDS = tuple(ALERT)


@st.composite
def _timestamps(draw, now: datetime) -> str:
    """Well-shaped timestamps around `now` or at any year, with offsets up to +-24:60: many of them
    break the timestamp rule."""
    if draw(st.booleans()):
        instant = now + timedelta(seconds=draw(st.integers(-4 * 365 * 86_400, 3 * 86_400)))
    else:
        instant = draw(st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.replace(tzinfo=timezone.utc)))
    sign = draw(st.sampled_from("+-"))
    hours, minutes = draw(st.integers(0, 24)), draw(st.sampled_from([0, 30, 45, 59, 60]))
    try:
        local = instant + (-1 if sign == "-" else 1) * timedelta(hours=hours, minutes=minutes)
    except OverflowError:
        local = instant
    zone = draw(st.sampled_from(["Z", f"{sign}{hours:02d}:{minutes:02d}"]))
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".1234567"]))
    return _format(local) + fraction + zone


def _format(local: datetime) -> str:
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"


@st.composite
def _valid_timestamps(draw, now: datetime) -> str:
    """Any timestamp within the rule (docs/data.md, "Timestamps") for a server clock at `now`: UTC day from
    2015-01-01, at most a day ahead of `now`, any offset within +-18:00, a fraction of up to 9 digits."""
    instant = draw(st.datetimes(
        min_value=datetime(2015, 1, 1), max_value=(now + timedelta(days=1)).replace(tzinfo=None),
    )).replace(tzinfo=timezone.utc)
    # Cutting the fraction short only moves the instant earlier, and the earliest bound is a whole second.
    digits = draw(st.integers(0, 9))
    kept = instant.microsecond // 10 ** (6 - min(digits, 6))
    fraction = f".{kept:0{min(digits, 6)}d}" + "0" * (digits - 6) if digits else ""
    instant = instant.replace(microsecond=kept * 10 ** (6 - min(digits, 6)) if digits else 0)
    if draw(st.booleans()):
        return _format(instant) + fraction + "Z"
    offset = timedelta(minutes=draw(st.integers(-18 * 60, 18 * 60)))
    sign, size = ("-" if offset < timedelta(0) else "+"), abs(offset)
    zone = f"{sign}{size.seconds // 3600:02d}:{size.seconds // 60 % 60:02d}"
    return _format(instant + offset) + fraction + zone


def _field_values(now: datetime):
    return st.one_of(
        st.sampled_from(["DEV-A101", "E101_OVERHEAT", "fan stopped", "", "  ", "a,b", "D" * 65]),
        st.text(max_size=30),
        _timestamps(now),
        st.integers(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )


_IDENTIFIERS = st.one_of(
    st.sampled_from(["DEV-A101", "DEV-B202", "E101_OVERHEAT", "dev.7:x/y-z"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", fullmatch=True),
)


@st.composite
def valid_alerts(draw, now: datetime) -> dict:
    """Alerts the API must store, for a server clock at `now`: any within the rules of
    infrastructure/alerts_api/README.md, up to each field's longest. `details` stays within 1300
    characters, so that even escaped to ASCII (12 bytes for a character beyond the BMP) the body fits
    in 16 KiB."""
    return {
        "device_id": draw(_IDENTIFIERS),
        "error_code": draw(_IDENTIFIERS),
        "details": draw(st.one_of(
            st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=1300),
            st.text(st.characters(codec="ascii"), min_size=1990, max_size=2000),
        ).filter(str.strip)),
        "alert_timestamp": draw(_valid_timestamps(now)),
    }


@st.composite
def _alert_like(draw, now: datetime) -> dict:
    alert = draw(valid_alerts(now))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        if draw(st.integers(0, 2)) == 0:
            alert[name] = draw(st.text(max_size=10) if name != "alert_timestamp" else _timestamps(now))
        elif draw(st.booleans()):
            del alert[name]
        else:
            alert[name] = draw(_field_values(now))
    if draw(st.integers(0, 9)) == 0:
        alert[draw(st.sampled_from(["alert_id", "severity", "x"]))] = draw(_field_values(now))
    return alert


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@st.composite
def _nested(draw) -> bytes:
    depth = draw(st.integers(1, 8000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = json.dumps(ALERT) if draw(st.booleans()) else "1"
    return (opening * depth + inner + closing * depth).encode()


def alert_bodies(now: datetime = datetime(2025, 10, 2, 12, tzinfo=timezone.utc)):
    """Request bodies as bytes; a good share of them are valid alerts for a server clock of `now`."""
    encode = st.booleans().map(lambda ascii_only: lambda value: json.dumps(value, ensure_ascii=ascii_only).encode())
    as_json = st.tuples(encode, st.one_of(valid_alerts(now), _alert_like(now), _alert_like(now), _json)).map(lambda pair: pair[0](pair[1]))
    return st.one_of(
        as_json,
        _nested(),
        st.text(max_size=40).map(str.encode),
        st.integers(4300, 6000).map(lambda digits: b"1" * digits),
    )
