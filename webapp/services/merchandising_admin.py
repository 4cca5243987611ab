"""The shop team's say over merchandising: synonyms (import, export, edit) and query rules (CRUD).

Each is one use case and one transaction; every worker serves a save within about a second
(webapp.services.merchandising). Bad input is refused whole, with what is wrong (a synonyms
file: every bad line's number), and nothing already stored changes.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete, select
from werkzeug.datastructures import MultiDict

from engine.merchandising.rules import BOOST_FIELDS, MATCHES
from engine.serving.synonyms import format_synonyms, parse_synonyms
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Product, QueryRule, Synonym, utcnow
from webapp.services.merchandising import synonym_rule
from webapp.services.search_params import normalize_query

MAX_SYNONYM_LINES = 10_000
MAX_POSITION = 100
_REDIRECT = re.compile(r"^(/(?!/)|https?://)[^\s<>\"']*$")
_BOOST_LINE = re.compile(r"^([+-])\s*(\w+)\s*:\s*(.+)$")


def _commit() -> None:
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def import_synonyms(text: str, admin_email: str | None) -> int:
    """Replace every synonym with the file's (Solr synonyms.txt); returns how many rules it held.

    The whole file is parsed first: one bad line refuses it (naming every bad line) and the
    stored synonyms stay as they were.
    """
    if text.count("\n") > MAX_SYNONYM_LINES:
        raise InputError(f"A synonyms file may hold at most {MAX_SYNONYM_LINES} lines.")
    rules, errors = parse_synonyms(text)
    if errors:
        details = [{"line": e.line, "error": e.message} for e in errors]
        shown = "; ".join(f"line {e.line}: {e.message}" for e in errors[:10])
        raise InputError(f"The synonyms were not saved ({len(errors)} bad lines): {shown}", details)
    db.session.execute(delete(Synonym))
    now = utcnow()
    db.session.add_all(
        Synonym(terms=list(r.terms), targets=list(r.targets), updated_by=admin_email, updated_at=now) for r in rules
    )
    _commit()
    return len(rules)


def export_synonyms() -> str:
    """Every stored synonym as a synonyms.txt text, in the order saved."""
    return format_synonyms([synonym_rule(r) for r in db.session.scalars(select(Synonym).order_by(Synonym.id))])


def list_rules() -> list[QueryRule]:
    return list(db.session.scalars(select(QueryRule).order_by(QueryRule.query, QueryRule.id)))


def _products(external_ids: list[str]) -> dict[str, int]:
    found = {
        k: v
        for k, v in db.session.execute(
            select(Product.external_id, Product.id).where(Product.external_id.in_(external_ids))
        )
    }
    missing = [e for e in external_ids if e not in found]
    if missing:
        raise InputError(f"No product has the id {', '.join(missing[:5])}.")
    return found


def _pins(raw: str) -> list[list[int]]:
    pairs = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.replace(":", " ").split()
        if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= MAX_POSITION:
            raise InputError(f"Pins line {number}: write a product id and a position from 1 to {MAX_POSITION}.")
        pairs.append((parts[0], int(parts[1])))
    ids = _products([e for e, _ in pairs]) if pairs else {}
    return [[ids[e], position] for e, position in pairs]


def _boosts(raw: str) -> list[dict]:
    boosts = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        found = _BOOST_LINE.match(line.strip())
        if found is None or found.group(2).lower() not in BOOST_FIELDS:
            raise InputError(f"Boosts line {number}: write '+brand: Acme' to boost or '-category: Audio' to bury.")
        sign, name, value = found.groups()
        boosts.append({"field": name.lower(), "value": value.strip(), "weight": 1.0 if sign == "+" else -1.0})
    return boosts


def _when(raw: str, name: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=None, second=0, microsecond=0)
    except ValueError:
        raise InputError(f"{name} must be a date and time (YYYY-MM-DD HH:MM, UTC).") from None


def _rule_values(form: MultiDict) -> dict:
    query = normalize_query(form.get("query", ""))
    if not query:
        raise InputError("Enter the query the rule applies to.")
    match = form.get("match", "exact")
    if match not in MATCHES:
        raise InputError(f"match must be one of {', '.join(MATCHES)}.")
    redirect = form.get("redirect_url", "").strip() or None
    if redirect is not None and (len(redirect) > 500 or not _REDIRECT.match(redirect)):
        raise InputError("A redirect must be a path on this site (/...) or an http(s) URL.")
    starts_at, ends_at = _when(form.get("starts_at", ""), "Start"), _when(form.get("ends_at", ""), "End")
    if starts_at and ends_at and ends_at <= starts_at:
        raise InputError("The end must come after the start.")
    hides_raw = form.get("hides", "").replace(",", " ").split()
    hides = sorted(set(_products(hides_raw).values())) if hides_raw else []
    values = {
        "query": query,
        "match": match,
        "pins": _pins(form.get("pins", "")),
        "hides": hides,
        "boosts": _boosts(form.get("boosts", "")),
        "redirect_url": redirect,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "enabled": form.get("enabled") in ("on", "1", "true", "y"),
        "note": form.get("note", "").strip()[:1000],
    }
    if not (values["pins"] or values["hides"] or values["boosts"] or redirect):
        raise InputError("A rule must pin, hide, boost or bury something, or redirect.")
    return values


def save_rule(form: MultiDict, admin_email: str | None, rule_id: int | None = None) -> QueryRule:
    """Create a rule, or replace an existing one's settings; returns it."""
    values = _rule_values(form)
    rule = QueryRule() if rule_id is None else db.session.get(QueryRule, rule_id)
    if rule is None:
        raise InputError("That rule no longer exists.")
    for name, value in values.items():
        setattr(rule, name, value)
    rule.updated_by, rule.updated_at = admin_email, utcnow()
    db.session.add(rule)
    _commit()
    return rule


def delete_rule(rule_id: int) -> bool:
    """Delete a rule; False when there was none."""
    deleted = db.session.execute(delete(QueryRule).where(QueryRule.id == rule_id)).rowcount
    _commit()
    return bool(deleted)


def rule_form(rule: QueryRule | None) -> dict:
    """A stored rule as the edit form's fields (product ids shown as the catalog's ids)."""
    if rule is None:
        return {"match": "exact", "enabled": True}
    ids = {p for p, _ in rule.pins or ()} | set(rule.hides or ())
    external = {k: v for k, v in db.session.execute(select(Product.id, Product.external_id).where(Product.id.in_(ids)))}
    return {
        "query": rule.query,
        "match": rule.match,
        "pins": "\n".join(f"{external.get(p, p)} {pos}" for p, pos in rule.pins or ()),
        "hides": " ".join(str(external.get(p, p)) for p in rule.hides or ()),
        "boosts": "\n".join(f"{'+' if b['weight'] > 0 else '-'}{b['field']}: {b['value']}" for b in rule.boosts or ()),
        "redirect_url": rule.redirect_url or "",
        "starts_at": rule.starts_at.strftime("%Y-%m-%dT%H:%M") if rule.starts_at else "",
        "ends_at": rule.ends_at.strftime("%Y-%m-%dT%H:%M") if rule.ends_at else "",
        "enabled": rule.enabled,
        "note": rule.note,
    }
