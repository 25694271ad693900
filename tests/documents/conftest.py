"""Every document test: bank transfers are enabled (the factory pays by bank transfer, and
refunds of a transfer are made by staff)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _bank_transfer_enabled(settings: Any) -> None:
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    settings.BANK_TRANSFER_BSB = "062-000"
    settings.BANK_TRANSFER_ACCOUNT_NAME = "Tasmanian Cloud Pty Ltd"
