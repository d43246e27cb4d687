"""Shared test settings: CPU only, and hypothesis profiles that fit a 2-core CI box."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=30, deadline=None)
settings.load_profile("ci")
