"""The registries: names to implementations, checked by the spec, found by entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle._registry import Registry
from mlcycle.errors import DataError, SpecError
from mlcycle.monitor import DriftTest, KSTest
from mlcycle.plugins import DATA_SOURCES, DRIFT_TESTS, registries


def test_built_ins_are_imported_on_first_use_only() -> None:
    code = (
        "import sys, mlcycle.spec as s; "
        "s.parse_spec({'train': {'model': {'kind': 'cnn'}}, "
        "'monitor': {'columns': {'x': {'test': 'ks'}}}, 'loop': {'triggers': {'drift': True}}}); "
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy', 'pandas', 'numpy', "
        "'mlcycle.train', 'mlcycle.monitor', 'mlcycle.loop', 'mlcycle.data') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_get_imports_a_built_in_and_checks_its_base() -> None:
    assert DRIFT_TESTS.get("ks") is KSTest and DRIFT_TESTS["ks"] is KSTest
    assert "ks" in DRIFT_TESTS and "kss" not in DRIFT_TESTS and len(DRIFT_TESTS) == 7
    with pytest.raises(SpecError, match=r"unknown drift test 'kss'; registered: chi2, chi2_gof, "):
        DRIFT_TESTS.get("kss")
    with pytest.raises(DataError, match=r"unknown kind of data source 'kaggle'; registered: csv"):
        DATA_SOURCES.get("kaggle")


def test_register_refuses_a_taken_name_and_a_class_of_another_boundary() -> None:
    with pytest.raises(SpecError, match="drift test 'ks' is registered already"):
        DRIFT_TESTS.register("ks")(KSTest)
    with pytest.raises(
        SpecError, match=r"'not_a_test'.*is not a subclass of mlcycle\.monitor\._base\.DriftTest"
    ):
        DRIFT_TESTS.register("not_a_test")(int)
    assert "not_a_test" not in DRIFT_TESTS


def test_a_broken_built_in_path_fails_when_asked_for() -> None:
    broken: Registry[type] = Registry("thing", "mlcycle.things", {"gone": "mlcycle.nowhere:Gone"})
    assert broken.names() == ("gone",)
    with pytest.raises(ModuleNotFoundError, match=r"mlcycle\.nowhere"):
        broken.get("gone")


def test_entry_points_of_installed_packages_are_found_and_loaded_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real installed distribution (a dist-info folder on sys.path) declaring a drift test.
    (tmp_path / "energy_plugin.py").write_text(
        "from mlcycle.monitor import DriftTest\n"
        "class Energy(DriftTest):\n"
        "    name, kind, default_threshold = 'energy', 'distance', 0.1\n"
        "    def compute(self, reference, current):\n"
        "        return 0.0, None\n"
    )
    info = tmp_path / "energy_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: energy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mlcycle.drift_tests]\nenergy = energy_plugin:Energy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    tests: Registry[type[DriftTest]] = Registry(
        "drift test",
        "mlcycle.drift_tests",
        {"ks": "mlcycle.monitor._numeric:KSTest"},
        base="mlcycle.monitor._base:DriftTest",
    )
    assert tests.names() == ("energy", "ks") and "energy_plugin" not in sys.modules
    assert tests.get("energy").name == "energy"
    monkeypatch.delitem(sys.modules, "energy_plugin")


def test_every_boundary_has_a_registry_and_a_conformance_suite() -> None:
    assert sorted(registries()) == [
        "mlcycle.artifact_stores",
        "mlcycle.data_sources",
        "mlcycle.drift_tests",
        "mlcycle.executors",
        "mlcycle.metadata_backends",
        "mlcycle.model_kinds",
        "mlcycle.triggers",
    ]
    suites = Path(__file__).parent / "conformance"
    for group in registries():
        assert (suites / f"test_{group.removeprefix('mlcycle.')}.py").exists(), group
