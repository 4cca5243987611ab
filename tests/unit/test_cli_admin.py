"""`flask admin ...` (webapp.cli_admin): accounts from the command line, with errors an operator can act on."""

from __future__ import annotations

import pytest
from werkzeug.security import check_password_hash

from webapp.services import admin_users
from webapp.services.admin_users import get_admin

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    monkeypatch.setattr(admin_users, "HASH_METHOD", "pbkdf2:sha256:1000")


def test_create_reads_the_password_from_stdin(runner):
    result = runner.invoke(args=["admin", "create", "Ops@Example.com", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created admin ops@example.com" in result.output
    user = get_admin("ops@example.com")
    assert user.role == "admin" and user.is_active
    assert PASSWORD not in user.password_hash and check_password_hash(user.password_hash, PASSWORD)


def test_create_prompts_twice_without_echo(runner):
    result = runner.invoke(
        args=["admin", "create", "a@example.com", "--role", "analyst"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output and "Repeat the password:" in result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert get_admin("a@example.com").role == "analyst"


def test_create_asks_again_when_the_two_entries_differ(runner):
    result = runner.invoke(
        args=["admin", "create", "a@example.com"],
        input=f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert check_password_hash(get_admin("a@example.com").password_hash, PASSWORD)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["not-an-email"], PASSWORD, "is not an email address"),
        (["a@example.com"], "short", "password must be at least 12 characters"),
        (["a@example.com"], "", "standard input held no password"),
    ],
)
def test_create_refuses_bad_input_with_a_clear_error(runner, args, stdin, message):
    result = runner.invoke(args=["admin", "create", *args, "--password-stdin"], input=stdin + "\n")
    assert result.exit_code == 1 and message in result.output
    assert admin_users.list_admins() == []


def test_create_refuses_a_duplicate_and_an_unknown_role(runner):
    assert runner.invoke(args=["admin", "create", "a@example.com", "--password-stdin"], input=PASSWORD).exit_code == 0
    again = runner.invoke(args=["admin", "create", "A@EXAMPLE.COM", "--password-stdin"], input=PASSWORD)
    assert again.exit_code == 1 and "an account for a@example.com already exists" in again.output
    role = runner.invoke(
        args=["admin", "create", "b@example.com", "--role", "root", "--password-stdin"], input=PASSWORD
    )
    assert role.exit_code == 2 and "'root' is not one of 'admin', 'analyst'" in role.output


def test_set_password_deactivate_activate_and_list(runner):
    runner.invoke(args=["admin", "create", "a@example.com", "--password-stdin"], input=PASSWORD)
    result = runner.invoke(
        args=["admin", "set-password", "a@example.com", "--password-stdin"], input="a brand new password\n"
    )
    assert result.exit_code == 0 and "password changed for a@example.com" in result.output
    assert admin_users.authenticate("a@example.com", "a brand new password") is not None
    assert runner.invoke(args=["admin", "deactivate", "a@example.com"]).exit_code == 0
    assert admin_users.authenticate("a@example.com", "a brand new password") is None
    listing = runner.invoke(args=["admin", "list"])
    assert "a@example.com" in listing.output and "inactive" in listing.output and "last login" in listing.output
    assert runner.invoke(args=["admin", "activate", "a@example.com"]).exit_code == 0
    assert admin_users.authenticate("a@example.com", "a brand new password") is not None
    missing = runner.invoke(args=["admin", "deactivate", "nobody@example.com"])
    assert missing.exit_code == 1 and "no account for nobody@example.com" in missing.output
