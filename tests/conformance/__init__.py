"""Conformance suites: one test class per extension point, run by every implementation."""

import pytest

pytest.register_assert_rewrite(
    "tests.conformance.artifact_stores",
    "tests.conformance.data_sources",
    "tests.conformance.drift_tests",
    "tests.conformance.executors",
    "tests.conformance.metadata_backends",
    "tests.conformance.model_kinds",
    "tests.conformance.triggers",
)
