"""The admin login limit, counted before the password is checked.

Each sign-in attempt takes one from two fixed-window budgets, per address and email
(ADMIN_LOGIN_LIMIT) and per address across emails (LOGIN_IP_LIMIT), in one atomic increment
each, before the password is checked: concurrent guesses cannot all pass a check made before
any of them is counted. A successful sign-in gives its attempt back, so a team signing in
often is never locked out by its successes.

The budgets live in the limiter's storage (RATELIMIT_STORAGE_URI: Redis shares them across
web workers). Should that storage fail, the attempt is let through and logged, as the
limiter's other limits do (RATELIMIT_SWALLOW_ERRORS).
"""

from __future__ import annotations

from flask import current_app
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.strategies import FixedWindowRateLimiter

from webapp.extensions import limiter

LOGIN_IP_LIMIT = "30 per minute"  # across emails, so one address cannot spray many accounts
MESSAGE = "Too many failed sign-in attempts. Wait a minute and try again."


def _budgets(email: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
    address = get_remote_address()
    email = email.strip().lower()[:254]
    return [
        (parse(current_app.config["ADMIN_LOGIN_LIMIT"]), ("admin-login", address, email)),
        (parse(LOGIN_IP_LIMIT), ("admin-login-address", address)),
    ]


def _strategy() -> FixedWindowRateLimiter:
    # Fixed windows whatever the limiter's own strategy: a refund is a negative increment.
    return FixedWindowRateLimiter(limiter.storage)


def take_login_attempt(email: str) -> bool:
    """Count this attempt in both budgets; False (and nothing counted) when either is spent."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True
    strategy, taken = _strategy(), []
    try:
        for item, key in _budgets(email):
            if not strategy.hit(item, *key):
                strategy.hit(item, *key, cost=-1)  # a refused attempt does not push the window further
                for done_item, done_key in taken:
                    strategy.hit(done_item, *done_key, cost=-1)
                return False
            taken.append((item, key))
    except Exception:  # the storage is down: as RATELIMIT_SWALLOW_ERRORS, serve rather than lock everyone out
        current_app.logger.exception("login limit storage failed; attempt allowed")
    return True


def give_back_login_attempt(email: str) -> None:
    """A successful sign-in's attempt is returned to both budgets."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    strategy = _strategy()
    try:
        for item, key in _budgets(email):
            strategy.hit(item, *key, cost=-1)
    except Exception:
        current_app.logger.exception("login limit storage failed; attempt not given back")
