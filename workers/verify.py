"""Verify an output against the database, and repair what the database can rebuild (docs/reliability.md).

The database is the truth about an output: `shards` says which shard files exist with which size and sha256,
`shard_records` holds every line's bytes. Verification checks, for the output of one writer:
- every recorded shard is present with the recorded size and sha256 (so also a complete last line); a missing or
  damaged one is rebuilt from the stored lines (no model call) when `repair`, else reported;
- no `part-*.jsonl` is there that the database did not write (a file from another database, or put by hand):
  refused, because the run could neither trust nor replace it;
- shards from before the catalog existed (export rows name them, the catalog does not) are adopted when the
  file is there and its records are exactly the ones the database exported to it;
- the manifest is the one rendered from the database (rewritten when it is not, with `repair`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from profiles_db.outputs import ShardEntry, manifest_document


class OutputDamaged(RuntimeError):
    """The output cannot be made to match the database; the message names each file and what to do."""


@dataclass
class ShardFinding:
    name: str
    problem: str
    repaired: bool = False


@dataclass
class VerifyReport:
    out: str
    shards: int = 0
    records: int = 0
    findings: list[ShardFinding] = field(default_factory=list)
    unrepairable: list[ShardFinding] = field(default_factory=list)
    manifest_rewritten: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unrepairable

    @property
    def clean(self) -> bool:
        """Nothing was wrong at all (no finding, manifest as rendered)."""
        return not self.findings and not self.unrepairable and not self.manifest_rewritten

    def refusal(self) -> str:
        lines = [f"output {self.out} does not match its database and cannot be repaired from it:"]
        lines += [f"  {f.name}: {f.problem}" for f in self.unrepairable]
        return "\n".join(lines)


def verify_output(writer, *, repair: bool) -> VerifyReport:
    """Check (and with `repair`, mend) `writer`'s output: a `workers.shards.ShardWriter` or its parts."""
    storage, catalog = writer.shards, writer.catalog
    report = VerifyReport(out=writer.out)
    present = storage.final_sizes()
    recorded = {e.name: e for e in catalog.shards()}
    _adopt_legacy(writer, present, recorded, report)
    for name, entry in sorted(recorded.items()):
        if entry.retired:  # every record superseded: the file goes (profiles_db/versions.py)
            _retire(writer, name, present, report, repair)
            continue
        problem = _problem(storage, name, entry, present.get(name))
        report.shards += 1
        report.records += entry.records
        if problem is None:
            continue
        finding = ShardFinding(name, problem)
        report.findings.append(finding)
        if repair:
            _rebuild(writer, entry, finding)
            if not finding.repaired:
                report.unrepairable.append(finding)
    for name in sorted(set(present) - set(recorded)):
        finding = ShardFinding(
            name,
            "not written by this database (another database's output, or put there by hand): point "
            "--database-url at the database that wrote this output, or move the file away and run again",
        )
        report.findings.append(finding)
        report.unrepairable.append(finding)
    expected = json.dumps(manifest_document(list(recorded.values())))
    current = storage.read_manifest()
    fresh = current is None and not recorded  # a new output: nothing written yet, nothing to mend
    if not fresh and (current is None or _parsed(current) != _parsed(expected)):
        report.manifest_rewritten = True
        if repair and report.ok:
            writer.write_manifest()
    return report


def _retire(writer, name: str, present: dict[str, int], report: VerifyReport, repair: bool) -> None:
    if name not in present:
        return
    finding = ShardFinding(name, "every record of it was superseded by a new version of its video")
    report.findings.append(finding)
    if repair:
        writer.shards.remove(name)
        finding.repaired = True
        finding.problem += "; removed (its lines are kept in superseded_records)"


def _problem(storage, name: str, entry: ShardEntry, size: int | None) -> str | None:
    if size is None:
        return "missing"
    if size != entry.bytes:
        kind = "truncated" if size < entry.bytes else "longer than written"
        return f"{kind}: {size:,} of {entry.bytes:,} bytes"
    with storage.open(name) as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        return "content differs from what was written (sha256 mismatch)"
    if data and not data.endswith(b"\n"):
        return "last line incomplete"
    return None


def _rebuild(writer, entry: ShardEntry, finding: ShardFinding) -> None:
    lines = writer.catalog.lines(entry.name)
    data = b"".join(lines)
    if len(lines) != entry.records or hashlib.sha256(data).hexdigest() != entry.sha256:
        finding.problem += (
            f"; the database holds {len(lines)} of its {entry.records} lines, so it cannot be rebuilt: "
            "restore the file from a backup, or delete the output's export rows to export again"
        )
        return
    temp = writer.dir / f"{entry.name}.tmp"
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    writer.shards.stage(entry.name)
    writer.shards.publish(entry.name)
    finding.repaired = True
    finding.problem += f"; rebuilt from the database ({entry.records} records)"


def _adopt_legacy(writer, present: dict[str, int], recorded: dict[str, ShardEntry], report) -> None:
    """Shards exported before the catalog existed: take the file in when its records are exactly the ones the
    database says were exported to it (ids, in any order), else leave it to be reported."""
    legacy = writer.catalog.exported_elsewhere()
    for name, count in sorted(legacy.items()):
        if name in recorded:
            continue
        if name not in present:
            report.notes.append(
                f"{name}: {count} exported records are not in this output's catalog (exported to another "
                "output sharing this database, or before v2s kept shard catalogs)"
            )
            continue
        expected = {rid: sid for sid, shard, rid in writer.store.exported() if shard == name}
        with writer.shards.open(name) as handle:
            data = handle.read()
        lines = data.splitlines(keepends=True)
        try:
            ids = [json.loads(line)["id"] for line in lines]
        except (ValueError, KeyError, TypeError):
            continue  # damaged: reported as not written by this database
        if sorted(ids) != sorted(expected) or not data.endswith(b"\n"):
            continue
        entry = ShardEntry(name, len(lines), len(data), hashlib.sha256(data).hexdigest())
        with writer.db.transaction() as s:
            writer.catalog.close(
                s, entry, [(expected[i], i, line) for i, line in zip(ids, lines, strict=True)], None
            )
        recorded[name] = entry
        report.notes.append(f"{name}: adopted into the shard catalog ({len(lines)} records)")


def _parsed(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None
