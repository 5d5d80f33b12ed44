"""Per-client rate limits and strikes, in a store that every replica shares.

- Token buckets: one per client and one global (`rate` tokens per second, up to `burst`); a request takes one
  token from each, all or none (a request the global bucket refuses costs the client nothing), or is refused
  with the seconds until the refusing bucket has one (`RateLimited.retry_after_s`).
- Strikes: each refused prompt or image adds its categories' points (`limits.strikes.points`, by severity);
  points older than `window_s` expire; a client reaching `threshold` is suspended for `suspend_s`, and every
  request it sends meanwhile is refused with the time left.

The numbers are policy fields (`limits:` in the policy YAML). Two stores, one interface: `SqliteStore` (WAL
mode, a file on the local volume: the replicas of one machine) and `RedisStore` (`redis://...`: many replicas);
every update is one transaction (SQLite `BEGIN IMMEDIATE`) or one Lua script (Redis), so concurrent servers
never double-spend a token. Time comes from the caller (`now`, seconds): tests drive it.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from t2iguard.contract.errors import RateLimited
from t2iguard.contract.policy import LimitsPolicy

#: a token bucket to take from: (key, rate per second, burst)
Bucket = tuple[str, float, float]


class Store(Protocol):
    def take(self, buckets: list[Bucket], now: float) -> tuple[int, float]:
        """Take one token from every bucket, or from none: (-1, 0.0) when taken, else (index of the first bucket
        without a token, seconds until it has one)."""

    def strike(self, client: str, points: float, now: float, window_s: float) -> float:
        """Add `points` for `client` at `now`; returns its points within the last `window_s`."""

    def suspend(self, client: str, until: float) -> None: ...

    def suspended_until(self, client: str) -> float:
        """The end of `client`'s suspension (0.0: none)."""


BUSY_TIMEOUT_S = 10.0


def _set_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode (it stays so; later openers find it set). Two processes opening a new file at
    once can see the switch fail with "database is locked" (CI saw it); retry until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SqliteStore:
    """The embedded store: one SQLite file in WAL mode (several server processes on one machine share it)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript("""
                CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL, at REAL);
                CREATE TABLE IF NOT EXISTS strikes (client TEXT, at REAL, points REAL);
                CREATE INDEX IF NOT EXISTS strikes_client ON strikes (client, at);
                CREATE TABLE IF NOT EXISTS suspensions (client TEXT PRIMARY KEY, until REAL);
            """)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            _set_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _tx(self, fn):
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
            db.execute("COMMIT")
            return out
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def take(self, buckets: list[Bucket], now: float) -> tuple[int, float]:
        def fn(db):
            tokens = []
            for key, rate, burst in buckets:
                row = db.execute("SELECT tokens, at FROM buckets WHERE key = ?", (key,)).fetchone()
                tokens.append(burst if row is None else min(burst, row[0] + max(now - row[1], 0.0) * rate))
            short = next((i for i, t in enumerate(tokens) if t < 1.0), -1)
            for (key, _, _), t in zip(buckets, tokens, strict=True):
                db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (key, t - 1.0 if short < 0 else t, now))
            return (-1, 0.0) if short < 0 else (short, (1.0 - tokens[short]) / buckets[short][1])

        return self._tx(fn)

    def strike(self, client: str, points: float, now: float, window_s: float) -> float:
        def fn(db):
            db.execute("DELETE FROM strikes WHERE client = ? AND at < ?", (client, now - window_s))
            db.execute("INSERT INTO strikes VALUES (?, ?, ?)", (client, now, points))
            return db.execute("SELECT COALESCE(SUM(points), 0) FROM strikes WHERE client = ?", (client,)).fetchone()[0]

        return float(self._tx(fn))

    def suspend(self, client: str, until: float) -> None:
        self._tx(lambda db: db.execute("INSERT OR REPLACE INTO suspensions VALUES (?, ?)", (client, until)))

    def suspended_until(self, client: str) -> float:
        row = self._db().execute("SELECT until FROM suspensions WHERE client = ?", (client,)).fetchone()
        return float(row[0]) if row else 0.0


#: token buckets, all or none, as one atomic step: KEYS the buckets; ARGV now, then rate and burst per bucket ->
#: {0-based index of the first bucket without a token (-1: taken), seconds until it has one}
_TAKE = """
local now = tonumber(ARGV[1])
local tokens, short = {}, -1
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local b = redis.call('HMGET', key, 'tokens', 'at')
  local t = burst
  if b[1] then t = math.min(burst, tonumber(b[1]) + math.max(now - tonumber(b[2]), 0) * rate) end
  tokens[i] = t
  if t < 1 and short < 0 then short = i end
end
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local t = tokens[i]
  if short < 0 then t = t - 1 end
  redis.call('HSET', key, 'tokens', tostring(t), 'at', tostring(now))
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
end
if short < 0 then return {-1, '0'} end
return {short - 1, tostring((1 - tokens[short]) / tonumber(ARGV[2 * short]))}
"""
#: KEYS[1] the client's strikes (sorted set by time); ARGV points, now, window, unique member -> points in window
_STRIKE = """
local now, window = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 60)
local total = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + tonumber(string.match(m, ':([^:]+)$'))
end
return tostring(total)
"""


class RedisStore:
    """The shared store for many replicas: `redis://host:port/db`."""

    def __init__(self, url: str, prefix: str = "t2iguard:"):
        import redis

        self.r, self.prefix = redis.Redis.from_url(url), prefix
        self._take, self._strike = self.r.register_script(_TAKE), self.r.register_script(_STRIKE)
        self._n = 0

    def take(self, buckets: list[Bucket], now: float) -> tuple[int, float]:
        args = [now] + [x for _, rate, burst in buckets for x in (rate, burst)]
        short, wait = self._take(keys=[f"{self.prefix}bucket:{key}" for key, _, _ in buckets], args=args)
        return int(short), float(wait)

    def strike(self, client: str, points: float, now: float, window_s: float) -> float:
        self._n += 1
        member = f"{now!r}-{id(self)}-{self._n}"
        return float(self._strike(keys=[f"{self.prefix}strikes:{client}"], args=[points, now, window_s, member]))

    def suspend(self, client: str, until: float) -> None:
        self.r.set(f"{self.prefix}suspended:{client}", repr(until))

    def suspended_until(self, client: str) -> float:
        value = self.r.get(f"{self.prefix}suspended:{client}")
        return float(value) if value else 0.0


def open_store(url: str, root: Path) -> Store:
    """`redis://...` or `sqlite:PATH` (relative to `root`, the repository)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    if url.startswith("sqlite:"):
        path = Path(url[len("sqlite:"):])
        return SqliteStore(path if path.is_absolute() else root / path)
    raise ValueError(f"limits store {url!r}: give redis://HOST:PORT/DB or sqlite:PATH")


@dataclass(frozen=True)
class Strike:
    """A refusal's strike: the points given, the client's points within the window, whether now suspended."""

    points: float
    total: float
    suspended: bool


class Limiter:
    """Admits or refuses a client's request, and counts strikes on refusals (policy `limits:`)."""

    def __init__(self, policy: LimitsPolicy, store: Store):
        self.policy, self.store = policy, store

    def admit(self, client: str, now: float) -> None:
        """Raises RateLimited (suspension, then the client's bucket, then the global one)."""
        if not self.policy.enabled:
            return
        until = self.store.suspended_until(client)
        if until > now:
            raise RateLimited(f"client {client!r} is suspended for repeated refusals; retry after "
                              f"{math.ceil(until - now)} s", until - now)
        rules = (self.policy.per_client, self.policy.global_)
        keys = (f"client:{client}", "global")
        short, wait = self.store.take([(k, r.rate, r.burst) for k, r in zip(keys, rules, strict=True)], now)
        if short >= 0:
            rule, scope = rules[short], (f"client {client!r}", "the service")[short]
            raise RateLimited(f"rate limit of {scope} ({rule.rate:g}/s, burst {rule.burst:g}) reached; "
                              f"retry after {wait:.2f} s", wait)

    def refused(self, client: str, categories: list[str], now: float) -> Strike:
        """Count a refusal's strikes (the severest category's points); suspends at the threshold."""
        rule = self.policy.strikes
        if not self.policy.enabled or not categories:
            return Strike(0.0, 0.0, False)
        points = max(rule.points.get(c, rule.default_points) for c in categories)
        total = self.store.strike(client, points, now, rule.window_s)
        if total >= rule.threshold:
            self.store.suspend(client, now + rule.suspend_s)
        return Strike(points, total, total >= rule.threshold)
