"""The project metadata in pyproject.toml: license declared the current way.

Skipped where the tests run from a copy without the source tree (the wheel
checks copy tests/ alone).
"""
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
pytestmark = pytest.mark.skipif(not PYPROJECT.is_file(), reason="no source tree here")


@pytest.fixture(scope="module")
def pyproject():
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)


def test_license_is_an_spdx_expression_with_existing_files(pyproject):
    """A TOML table (``{ text = ... }``) is deprecated by setuptools, which stops
    building it after 2027-02-18; PEP 639 wants an SPDX string plus files."""
    project = pyproject["project"]
    license_ = project.get("license")
    assert isinstance(license_, str), f"license must be an SPDX string, not {license_!r}"
    licenses = pytest.importorskip("packaging.licenses")
    assert licenses.canonicalize_license_expression(license_) == license_
    files = project.get("license-files")
    assert isinstance(files, list) and files
    for pattern in files:
        assert sorted(ROOT.glob(pattern)), f"license-files entry {pattern!r} matches nothing"
    # PEP 639: a license expression excludes license classifiers
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]


def test_build_requires_a_setuptools_that_reads_spdx_licenses(pyproject):
    requirements = pytest.importorskip("packaging.requirements")
    build_requires = map(requirements.Requirement, pyproject["build-system"]["requires"])
    (setuptools,) = [r for r in build_requires if r.name == "setuptools"]
    assert setuptools.specifier  # a minimum is stated
    assert "76.1" not in setuptools.specifier  # 77 first reads license strings and files


def test_sdist_manifest_includes_the_license_files(pyproject):
    included = set()
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        words = line.split()
        if words and words[0] == "include":
            included.update(words[1:])
    assert set(pyproject["project"]["license-files"]) <= included
