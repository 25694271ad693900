"""Bank transfer: payment references with check digits, statement files, the adapter (instructions, no redirect)."""
