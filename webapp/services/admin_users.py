"""Admin accounts: create, authenticate, change password, (de)activate; one transaction each."""

from __future__ import annotations

import re
from functools import cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import ADMIN_ROLES, AdminUser, utcnow

HASH_METHOD = "scrypt"  # werkzeug's default: memory-hard, about a quarter second per check
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # hashing cost grows with length; refuse absurd inputs
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"password must be at most {MAX_PASSWORD_CHARS} characters")


@cache
def _decoy_hash() -> str:
    # Checked against when the email is unknown, so a wrong email costs as long as a wrong password.
    return generate_password_hash("kairos-decoy-password", method=HASH_METHOD)


def get_admin(email: str) -> AdminUser | None:
    """The account with this email, if any."""
    return db.session.scalar(select(AdminUser).where(AdminUser.email == normalize_email(email)))


def list_admins() -> list[AdminUser]:
    """Every account, oldest first."""
    return list(db.session.scalars(select(AdminUser).order_by(AdminUser.id)))


def create_admin(email: str, password: str, role: str = "admin") -> AdminUser:
    """Create an account with a hashed password; InputError for a bad email, role, password or duplicate."""
    email = normalize_email(email)
    if len(email) > 254 or not _EMAIL.match(email):
        raise InputError(f"{email!r} is not an email address")
    if role not in ADMIN_ROLES:
        raise InputError(f"role must be one of {', '.join(ADMIN_ROLES)}")
    _check_password(password)
    if get_admin(email) is not None:
        raise InputError(f"an account for {email} already exists")
    user = AdminUser(
        email=email, password_hash=generate_password_hash(password, method=HASH_METHOD), role=role, is_active=True
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # created concurrently between the check and the insert
        db.session.rollback()
        raise InputError(f"an account for {email} already exists") from None
    return user


def authenticate(email: str, password: str) -> AdminUser | None:
    """The active account these credentials open, recording the login time; None otherwise."""
    user = get_admin(email)
    if user is None or not user.is_active:
        check_password_hash(_decoy_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def confirm_password(user_id: int, password: str) -> bool:
    """Whether this is the active account's password (a re-authentication; nothing is written)."""
    user = db.session.get(AdminUser, user_id)
    if user is None or not user.is_active:
        check_password_hash(_decoy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


def end_sessions(user_id: int) -> None:
    """End every session of the account, on every device (a logout): its session version moves on."""
    user = db.session.get(AdminUser, user_id)
    if user is not None:
        user.session_version = (user.session_version or 0) + 1
        db.session.commit()


def _existing(email: str) -> AdminUser:
    user = get_admin(email)
    if user is None:
        raise InputError(f"no account for {normalize_email(email)}")
    return user


def set_password(email: str, password: str) -> AdminUser:
    """Replace an account's password; its open sessions end (their token derives from the hash and version)."""
    _check_password(password)
    user = _existing(email)
    user.password_hash = generate_password_hash(password, method=HASH_METHOD)
    user.session_version = (user.session_version or 0) + 1
    db.session.commit()
    return user


def set_active(email: str, active: bool) -> AdminUser:
    """Allow or refuse an account's logins; a deactivated account's sessions end at once."""
    user = _existing(email)
    user.is_active = active
    db.session.commit()
    return user
