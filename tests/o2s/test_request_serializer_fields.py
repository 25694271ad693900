"""The O2S request serializers copy their declared fields cheaply (``StrictSerializer.get_fields``:
a shallow copy per instance instead of DRF's deep copy), and that stays safe: every instance
validates with fields of its own, the declared fields are never bound, and validations
running at the same time in several threads keep their own results."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rest_framework import serializers

from o2s.api.serializers import InvoiceCreateRequestSerializer, InvoiceLineRequestSerializer, validated

THREADS = 8
ROUNDS = 200


def _body(quantity: Any) -> dict[str, Any]:
    return {"customer": str(uuid.uuid4()), "currency": "AUD", "lines": [{"product_code": "vps", "quantity": quantity}]}


def test_every_instance_validates_with_fields_of_its_own_and_the_declared_ones_stay_unbound() -> None:
    first, second = InvoiceCreateRequestSerializer(data=_body(1)), InvoiceCreateRequestSerializer(data=_body(2))
    assert first.is_valid()
    assert second.is_valid()

    for name, field in first.fields.items():
        assert field is not second.fields[name]
        assert field.parent is first
        assert second.fields[name].parent is second
    declared = [
        *InvoiceCreateRequestSerializer._declared_fields.values(),
        *InvoiceLineRequestSerializer._declared_fields.values(),
    ]
    assert all(getattr(field, "parent", None) is None for field in declared)
    first_lines, second_lines = first.fields["lines"], second.fields["lines"]
    assert isinstance(first_lines, serializers.ListSerializer)
    assert isinstance(second_lines, serializers.ListSerializer)
    assert first_lines.child is not second_lines.child  # nested: deep-copied


def test_validations_in_parallel_threads_keep_their_own_results() -> None:
    start = threading.Barrier(THREADS)

    def validate_many(thread: int) -> list[str]:
        start.wait()
        outcomes = []
        for index in range(ROUNDS):
            quantity: Any = thread * ROUNDS + index + 1 if index % 2 else f"not a number {thread}"
            try:
                data = validated(InvoiceCreateRequestSerializer, _body(quantity))
            except serializers.ValidationError as exc:
                detail = exc.detail
                assert isinstance(detail, dict)
                outcomes.append(f"refused {sorted(detail)}")
            else:
                outcomes.append(f"quantity {data['lines'][0]['quantity']}")
        return outcomes

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(validate_many, range(THREADS)))

    for thread, outcomes in enumerate(results):
        expected = [
            f"quantity {thread * ROUNDS + index + 1}" if index % 2 else "refused ['lines.0.quantity']"
            for index in range(ROUNDS)
        ]
        assert outcomes == expected
