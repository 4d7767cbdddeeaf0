"""Faults around grants and signatures: crashes and database blips during a refresh, a
second planner on a copied vault, hostile signature headers, odd client credentials.

Each case here broke something before: a crash before the refresh request left the grant
needing a new consent and made the next process wait two minutes, a failed write dropped
a freshly rotated token pair, two copies of one vault revoked each other's grant, a
non-ASCII signature raised, and the two Basic encoders disagreed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from wattplan.planner.sinks import sign_payload, verify_signature

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
SECRET = "whsec-test"


@settings(max_examples=300, deadline=None)
@given(header=st.text(), body=st.binary(max_size=64))
def test_verify_signature_answers_false_for_any_text(header: str, body: bytes) -> None:
    assert verify_signature(SECRET, header, body, now=NOW) is False


@settings(max_examples=200, deadline=None)
@given(signature=st.text(min_size=1), digits=st.text("0123456789", min_size=1, max_size=5000))
def test_verify_signature_with_hostile_parts_is_false_not_an_error(
    signature: str, digits: str
) -> None:
    ts = int(NOW.timestamp())
    assert verify_signature(SECRET, f"t={ts},v1={signature}", b"{}", now=NOW) is False
    assert verify_signature(SECRET, f"t={digits},v1=00", b"{}", now=NOW) is False
    # digits of another script are not a timestamp
    arabic = str(ts).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    good = sign_payload(SECRET, b"{}", timestamp=ts)
    assert verify_signature(SECRET, good, b"{}", now=NOW)
    assert not verify_signature(SECRET, good.replace(f"t={ts}", f"t={arabic}"), b"{}", now=NOW)
