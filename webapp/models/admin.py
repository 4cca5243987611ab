"""Admin accounts for the console."""

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

ADMIN_ROLES = ("admin", "analyst")  # analysts read everything; only admins change things


class AdminUser(db.Model):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="admin")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Part of the login cookie's id (webapp.auth): logging out or changing the password bumps it,
    # so every session issued before ends on its next request, wherever its cookie is.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
