"""Command line for admin accounts: `flask --app webapp admin create|set-password|deactivate|activate|list`."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from webapp.errors import InputError
from webapp.models import ADMIN_ROLES
from webapp.services.admin_users import create_admin, list_admins, set_active, set_password

admin_cli = AppGroup("admin", help="Manage admin console accounts.")

_STDIN_HELP = "Read the password from the first line of standard input (for scripts) instead of prompting."


def _password(from_stdin: bool) -> str:
    """The new password: one stdin line, or typed twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("--password-stdin given but standard input held no password")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")


def _run(action) -> object:
    try:
        return action()
    except InputError as exc:
        raise click.ClickException(str(exc)) from None


@admin_cli.command("create")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice(ADMIN_ROLES),
    default="admin",
    show_default=True,
    help="admin changes things; analyst only reads.",
)
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
def create_command(email: str, role: str, password_stdin: bool) -> None:
    """Create an account that can sign in at /admin/login."""
    password = _password(password_stdin)
    user = _run(lambda: create_admin(email, password, role))
    click.echo(f"created {user.role} {user.email}")


@admin_cli.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
def set_password_command(email: str, password_stdin: bool) -> None:
    """Replace an account's password (its open sessions end)."""
    password = _password(password_stdin)
    user = _run(lambda: set_password(email, password))
    click.echo(f"password changed for {user.email}")


@admin_cli.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Stop an account from signing in (its open sessions end)."""
    user = _run(lambda: set_active(email, False))
    click.echo(f"{user.email} deactivated")


@admin_cli.command("activate")
@click.argument("email")
def activate_command(email: str) -> None:
    """Let a deactivated account sign in again."""
    user = _run(lambda: set_active(email, True))
    click.echo(f"{user.email} activated")


@admin_cli.command("list")
def list_command() -> None:
    """Accounts with role, state and last login."""
    for user in list_admins():
        state = "active" if user.is_active else "inactive"
        last = user.last_login_at.isoformat(timespec="minutes") if user.last_login_at else "never"
        click.echo(f"{user.email:<40} {user.role:<8} {state:<8} last login {last}")
