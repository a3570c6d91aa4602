"""Hypothesis profiles for the engine tests.

"ci" (loaded when CI=true): 2000 examples per property, no deadline.
"dev" (default): 200 examples. Pick another with HYPOTHESIS_PROFILE=name.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))
