"""The call store: one SQLite file in WAL mode, written while each call goes on.

Every turn is committed the moment it is known (a user turn when transcribed,
an agent turn when its text exists, updated when its audio ends), so a crash or
a dropped connection loses nothing already said. ``synchronous=NORMAL`` under
WAL survives a killed process (not a power cut, which needs FULL).

Calls left ``active`` by a server that died are closed as ``server_lost`` the
next time a store opens the file, with the outcome their saved turns support.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 3  # 2: turns.timings; 3: turns.failed

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS calls(
  id TEXT PRIMARY KEY,
  arm TEXT NOT NULL,
  assignment TEXT NOT NULL,
  protocol TEXT NOT NULL,
  scenario TEXT NOT NULL,
  caller_id TEXT,
  caller_json TEXT,
  started_at REAL NOT NULL,
  ended_at REAL,
  status TEXT NOT NULL DEFAULT 'active',
  end_reason TEXT,
  outcome TEXT,
  outcome_source TEXT,
  intention INTEGER NOT NULL DEFAULT 0,
  user_turns INTEGER NOT NULL DEFAULT 0,
  agent_turns INTEGER NOT NULL DEFAULT 0,
  recording TEXT,
  server_json TEXT
);
CREATE TABLE IF NOT EXISTS turns(
  call_id TEXT NOT NULL REFERENCES calls(id),
  idx INTEGER NOT NULL,
  role TEXT NOT NULL,
  text TEXT NOT NULL,
  started_at REAL,
  ended_at REAL,
  audio_ms REAL,
  latency_ms REAL,
  asr_ms REAL,
  llm_ms REAL,
  tts_ms REAL,
  interrupted INTEGER NOT NULL DEFAULT 0,
  timings TEXT,
  failed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(call_id, idx)
);
CREATE TABLE IF NOT EXISTS events(
  call_id TEXT NOT NULL,
  t REAL NOT NULL,
  name TEXT NOT NULL,
  data TEXT
);
CREATE INDEX IF NOT EXISTS calls_arm ON calls(arm);
CREATE INDEX IF NOT EXISTS events_call ON events(call_id);
"""

TURN_FIELDS = (
    "text", "started_at", "ended_at", "audio_ms", "latency_ms", "asr_ms", "llm_ms", "tts_ms", "interrupted", "timings", "failed",
)  # fmt: skip
CALL_FIELDS = (
    "ended_at", "status", "end_reason", "outcome", "outcome_source", "intention",
    "user_turns", "agent_turns", "recording",
)  # fmt: skip


class StoreError(RuntimeError):
    pass


class CallStore:
    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise StoreError(f"{self.path}: call database not found")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self.db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        if not readonly:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(SCHEMA)
                self._migrate()
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.path}: not a usable call database: {e}") from None

    def _migrate(self) -> None:
        """Bring a store written by an older server up to this schema: old rows get NULL ``timings`` and
        ``failed = 0`` (older servers did not record either)."""
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(turns)")}
        if "timings" not in cols:
            self.db.execute("ALTER TABLE turns ADD COLUMN timings TEXT")
        if "failed" not in cols:
            self.db.execute("ALTER TABLE turns ADD COLUMN failed INTEGER NOT NULL DEFAULT 0")
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    def _exec(self, sql: str, args: tuple = ()) -> None:
        with self._lock:
            self.db.execute(sql, args)

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        # fetched under the lock: the connection is shared with the event loop's writes
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    # --- writes ----------------------------------------------------------------

    def create_call(
        self,
        call_id: str,
        *,
        arm: str,
        assignment: str,
        protocol: str,
        scenario: str,
        caller: dict[str, Any],
        recording: str | None,
        server: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> None:
        self._exec(
            "INSERT INTO calls(id, arm, assignment, protocol, scenario, caller_id, caller_json, started_at, recording, server_json)"
            " VALUES(?,?,?,?,?,?,?,?,?,?)",
            (
                call_id, arm, assignment, protocol, scenario, str(caller.get("id") or "") or None,
                json.dumps(caller, default=str), started_at or time.time(), recording, json.dumps(server or {}, default=str),
            ),
        )  # fmt: skip

    def update_call(self, call_id: str, **fields: Any) -> None:
        bad = set(fields) - set(CALL_FIELDS)
        if bad:
            raise StoreError(f"unknown call fields {sorted(bad)}")
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE calls SET {cols} WHERE id = ?", (*fields.values(), call_id))

    def add_turn(self, call_id: str, idx: int, role: str, text: str, **fields: Any) -> None:
        bad = set(fields) - set(TURN_FIELDS)
        if bad:
            raise StoreError(f"unknown turn fields {sorted(bad)}")
        cols = ["call_id", "idx", "role", "text", *fields]
        marks = ", ".join("?" for _ in cols)
        with self._lock:
            self.db.execute("BEGIN")
            try:
                self.db.execute(
                    f"INSERT OR REPLACE INTO turns({', '.join(cols)}) VALUES({marks})",
                    (call_id, idx, role, text, *fields.values()),
                )
                col = "user_turns" if role == "user" else "agent_turns"
                self.db.execute(
                    f"UPDATE calls SET {col} = (SELECT COUNT(*) FROM turns WHERE call_id = ? AND role = ?) WHERE id = ?",
                    (call_id, role, call_id),
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def update_turn(self, call_id: str, idx: int, **fields: Any) -> None:
        bad = set(fields) - set(TURN_FIELDS)
        if bad:
            raise StoreError(f"unknown turn fields {sorted(bad)}")
        if fields:
            cols = ", ".join(f"{k} = ?" for k in fields)
            self._exec(f"UPDATE turns SET {cols} WHERE call_id = ? AND idx = ?", (*fields.values(), call_id, idx))

    def event(self, call_id: str, name: str, data: dict[str, Any] | None = None) -> None:
        self._exec(
            "INSERT INTO events(call_id, t, name, data) VALUES(?,?,?,?)",
            (call_id, time.time(), name, json.dumps(data or {}, default=str)),
        )

    def recover(self, outcome_fn=None) -> int:
        """Close calls a dead server left active; returns how many."""
        rows = self._query("SELECT id FROM calls WHERE status = 'active'")
        for r in rows:
            fields: dict[str, Any] = {"status": "ended", "end_reason": "server_lost"}
            last = self._query("SELECT MAX(COALESCE(ended_at, started_at)) FROM turns WHERE call_id = ?", (r["id"],))[0][0]
            fields["ended_at"] = last
            if outcome_fn is not None:
                res = outcome_fn(self.turns(r["id"]), "server_lost")
                fields.update(outcome=res.outcome, outcome_source=res.source, intention=int(res.intention))
            self.update_call(r["id"], **fields)
        return len(rows)

    # --- reads -----------------------------------------------------------------

    def recent_calls(self, limit: int = 20) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM calls ORDER BY started_at DESC LIMIT ?", (limit,))]

    def calls(self, arm: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM calls", ()
        if arm:
            sql, args = sql + " WHERE arm = ?", (arm,)
        return [dict(r) for r in self._query(sql + " ORDER BY started_at", args)]

    def call(self, call_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM calls WHERE id = ?", (call_id,))
        return dict(rows[0]) if rows else None

    def turns(self, call_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM turns WHERE call_id = ? ORDER BY idx", (call_id,))]

    def all_turns(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM turns ORDER BY call_id, idx")]

    def event_counts(self, name: str) -> dict[str, int]:
        """Per call, how many events ``name`` it has."""
        rows = self._query("SELECT call_id, COUNT(*) FROM events WHERE name = ? GROUP BY call_id", (name,))
        return {r[0]: r[1] for r in rows}

    def events(self, call_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM events WHERE call_id = ? ORDER BY t", (call_id,))]
