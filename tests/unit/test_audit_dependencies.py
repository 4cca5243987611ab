"""scripts/audit_dependencies.py: what counts as audited, and the exit status, from PyPI's documents."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_dependencies.py"
_spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
audit = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = audit  # its dataclasses look their module up while it loads
_spec.loader.exec_module(audit)

VULN = {"id": "PYSEC-2026-1", "aliases": ["CVE-2026-1"], "fixed_in": ["2.1"], "withdrawn": None}


def project(newest: str, vulnerabilities=(), releases=None) -> dict:
    files = releases or {newest: [{"requires_python": ">=3.9", "yanked": False}]}
    return {"info": {"version": newest}, "vulnerabilities": list(vulnerabilities), "releases": files}


def test_the_per_release_answer_wins_when_it_is_served():
    finding = audit.judge("pkg", "1.0", {"vulnerabilities": [VULN]}, None, "3.11.7")
    assert finding.audited and finding.source == "release"
    assert finding.vulnerabilities == [{"id": "PYSEC-2026-1", "fixed_in": ["2.1"], "aliases": ["CVE-2026-1"]}]


def test_the_newest_release_is_audited_from_the_project_document():
    clean = audit.judge("pkg", "2.0", None, project("2.0"), "3.11.7")
    assert clean.audited and clean.source == "newest" and clean.vulnerabilities == []
    withdrawn = {**VULN, "withdrawn": "2026-01-01T00:00:00Z"}
    found = audit.judge("pkg", "2.0.0", None, project("2.0", [VULN, withdrawn]), "3.11.7")  # 2.0.0 == 2.0
    assert [v["id"] for v in found.vulnerabilities] == ["PYSEC-2026-1"]  # a withdrawn one does not count


def test_an_older_release_is_not_audited_and_says_what_could_be_installed():
    releases = {
        "1.0": [{"requires_python": ">=3.8", "yanked": False}],
        "1.5": [{"requires_python": ">=3.8", "yanked": True}],  # yanked
        "1.6rc1": [{"requires_python": ">=3.8", "yanked": False}],  # a pre-release
        "1.4": [{"requires_python": ">=3.8", "yanked": False}],
        "2.0": [{"requires_python": ">=3.12", "yanked": False}],  # too new a Python
    }
    finding = audit.judge("pkg", "1.0", None, project("2.0", [VULN], releases), "3.11.7")
    assert not finding.audited and finding.vulnerabilities == []  # the newest release's list is not ours
    assert finding.newest == "2.0" and finding.newest_installable == "1.4"
    assert not audit.judge("gone", "1.0", None, None, "3.11.7").audited


@pytest.mark.parametrize(
    ("findings", "ignored", "status"),
    [
        ([audit.Finding("a", "1", "newest")], set(), 0),
        ([audit.Finding("a", "1", "newest"), audit.Finding("b", "1", "", newest="2")], set(), 2),
        ([audit.Finding("a", "1", "release", [{"id": "X", "fixed_in": [], "aliases": []}])], set(), 1),
        ([audit.Finding("a", "1", "release", [{"id": "X", "fixed_in": [], "aliases": []}])], {"X"}, 0),
        ([audit.Finding("a", "1", "release", [{"id": "X", "fixed_in": [], "aliases": ["CVE-1"]}])], {"CVE-1"}, 0),
    ],
)
def test_the_exit_status_puts_vulnerabilities_before_gaps(findings, ignored, status, capsys):
    assert audit.report(findings, ignored) == status
    out = capsys.readouterr().out
    assert f"{len(findings)} packages:" in out
    if status == 2:
        assert "NOT AUDITED b 1: newest release 2" in out


class _Dist:
    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return self.direct_url if name == "direct_url.json" else None


def test_a_package_from_a_source_directory_or_a_repository_is_not_looked_up_on_pypi():
    assert audit.from_pypi(_Dist(None))  # installed from an index
    assert audit.from_pypi(_Dist('{"url": "file:///opt/wheels/torch.whl", "archive_info": {}}'))  # a release file
    assert not audit.from_pypi(_Dist('{"url": "file:///work/main", "dir_info": {"editable": true}}'))
    assert not audit.from_pypi(_Dist('{"url": "https://github.com/o/r", "vcs_info": {"vcs": "git"}}'))
