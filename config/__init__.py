"""The composition root: the root URLconf that mounts every channel. The layer above the
channels (docs/architecture.md); settings stay in ``paymenter.settings`` because every
layer reads them and they import none."""
