"""Known vulnerabilities of the installed packages, from PyPI's JSON API, where pip-audit cannot run.

    .venv/bin/python scripts/audit_dependencies.py [--ignore-vuln ID ...] [--workers 8]

pip-audit reads each release's vulnerabilities from PyPI's per-release JSON
(`/pypi/NAME/VERSION/json`). Where that endpoint is not served (this project's build machines
reach PyPI through a mirror that answers 404 for it) and OSV is unreachable, pip-audit skips
every package and audits nothing. PyPI's project JSON (`/pypi/NAME/json`) is served there, and
its `vulnerabilities` are those of the project's newest release: for a package installed at its
newest release that is a complete answer. So, per installed distribution:

1. the per-release JSON when it is served (the same data pip-audit reads);
2. else the project JSON, when the installed version is the newest release;
3. else the package is reported as not audited, with the newest release and the newest one this
   Python can install (so a reader sees whether it could be upgraded, or why not).

Exit status: 1 when a known vulnerability is found (less those ignored), 2 when nothing was
found but some package could not be audited, 0 when every package was audited clean. Run it
with the virtualenv's python: it audits the environment it runs in. With internet access, use
pip-audit instead (docs/operations.md, "Dependency audit").
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from tqdm import tqdm

PYPI = "https://pypi.org/pypi"
TIMEOUT = 30


@dataclass
class Finding:
    """What the audit learned about one installed distribution."""

    name: str
    version: str
    source: str  # "release", "newest" or "" (not audited)
    vulnerabilities: list[dict] = field(default_factory=list)  # {"id", "fixed_in", "aliases"}
    newest: str = ""  # the project's newest release
    newest_installable: str = ""  # ... that this Python accepts
    error: str = ""

    @property
    def audited(self) -> bool:
        return bool(self.source)


def _live(vulnerabilities: list[dict] | None) -> list[dict]:
    return [
        {"id": v.get("id", "?"), "fixed_in": v.get("fixed_in") or [], "aliases": v.get("aliases") or []}
        for v in vulnerabilities or []
        if not v.get("withdrawn")
    ]


def newest_installable(project: dict, python: str) -> str:
    """The newest non-yanked, non-pre release with a file whose Requires-Python accepts `python`."""
    best: Version | None = None
    for raw, files in (project.get("releases") or {}).items():
        try:
            version = Version(raw)
        except InvalidVersion:
            continue
        if version.is_prerelease or not files or all(f.get("yanked") for f in files):
            continue
        for f in files:
            try:
                accepts = not f.get("requires_python") or python in SpecifierSet(f["requires_python"])
            except InvalidSpecifier:
                accepts = False
            if accepts and not f.get("yanked"):
                best = version if best is None or version > best else best
                break
    return str(best) if best is not None else ""


def judge(name: str, version: str, release: dict | None, project: dict | None, python: str) -> Finding:
    """The finding for one package from what PyPI answered (None: not served / not found)."""
    if release is not None:
        return Finding(name, version, "release", _live(release.get("vulnerabilities")))
    if project is None:
        return Finding(name, version, "", error="not found on PyPI")
    newest = (project.get("info") or {}).get("version", "")
    try:
        same = Version(newest) == Version(version)
    except InvalidVersion:
        same = newest == version
    if same:
        return Finding(name, version, "newest", _live(project.get("vulnerabilities")), newest=newest)
    return Finding(name, version, "", newest=newest, newest_installable=newest_installable(project, python))


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def audit_one(name: str, version: str, python: str) -> Finding:
    try:
        release = _get_json(f"{PYPI}/{name}/{version}/json")
        project = None if release is not None else _get_json(f"{PYPI}/{name}/json")
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        return Finding(name, version, "", error=f"PyPI did not answer: {exc}")
    return judge(name, version, release, project, python)


def from_pypi(dist: metadata.Distribution) -> bool:
    """False for a distribution installed from a source directory (editable or not) or a VCS (PEP 610):
    PyPI's entry of the same name may be another project's. A wheel or sdist file counts as its release."""
    direct = dist.read_text("direct_url.json")
    return direct is None or "archive_info" in json.loads(direct)


def installed() -> tuple[list[tuple[str, str]], list[str]]:
    """(name, version) of every distribution from PyPI in this environment, once each; and the local ones' names."""
    seen: dict[str, tuple[str, str]] = {}
    local: list[str] = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        if from_pypi(dist):
            seen.setdefault(canonicalize_name(name), (name, dist.version))
        else:
            local.append(name)
    return sorted(seen.values(), key=lambda nv: nv[0].lower()), sorted(local)


def report(findings: list[Finding], ignored: set[str]) -> int:
    known = [(f, v) for f in findings for v in f.vulnerabilities]
    # An accepted vulnerability may be named by its id or any alias (a CVE for a PYSEC entry).
    vulnerable = [(f, v) for f, v in known if not ignored & {v["id"], *v["aliases"]}]
    unaudited = [f for f in findings if not f.audited]
    for finding, vuln in vulnerable:
        fixed = ", ".join(vuln["fixed_in"]) or "no fix released"
        aliases = f" ({', '.join(vuln['aliases'])})" if vuln["aliases"] else ""
        print(f"VULNERABLE {finding.name} {finding.version}: {vuln['id']}{aliases}, fixed in {fixed}")
    for finding in unaudited:
        if finding.error:
            print(f"NOT AUDITED {finding.name} {finding.version}: {finding.error}")
        else:
            print(
                f"NOT AUDITED {finding.name} {finding.version}: newest release {finding.newest}, newest this"
                f" Python can install {finding.newest_installable or 'none'}; PyPI's vulnerability data for"
                " an older release is only in its per-release JSON, which this index does not serve"
            )
    by_release = sum(f.source == "release" for f in findings)
    by_newest = sum(f.source == "newest" for f in findings)
    print(
        f"{len(findings)} packages: {by_release + by_newest} audited ({by_release} by release, {by_newest} at"
        f" their newest release), {len(unaudited)} not audited; {len(vulnerable)} known vulnerabilities"
        + (f" ({len(known) - len(vulnerable)} more ignored)" if len(known) > len(vulnerable) else "")
    )
    if vulnerable:
        return 1
    return 2 if unaudited else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ignore-vuln", action="append", default=[], metavar="ID", help="an accepted vulnerability")
    parser.add_argument("--workers", type=int, default=8, help="parallel requests to PyPI")
    args = parser.parse_args()
    python = ".".join(map(str, sys.version_info[:3]))
    packages, local = installed()
    if local:
        print(f"skipped, installed from a source directory or a repository: {', '.join(local)}")
    with ThreadPoolExecutor(args.workers) as pool:
        jobs = pool.map(lambda nv: audit_one(*nv, python), packages)
        findings = list(tqdm(jobs, total=len(packages), desc="auditing", unit="pkg", file=sys.stderr))
    return report(findings, set(args.ignore_vuln))


if __name__ == "__main__":
    sys.exit(main())
