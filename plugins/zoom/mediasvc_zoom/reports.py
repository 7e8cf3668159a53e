"""Attendance reports of a LiveSession: from its stored intervals to JSON rows and an Excel-friendly CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from mediasvc_zoom.attendance import Interval, Presence, Schedule, attendance
from mediasvc_zoom.schemas import AttendanceReport
from mediasvc_zoom.settings import ZoomSettings
from mediasvc_zoom.tables import ParticipantInterval

CSV_COLUMNS = ["name", "email", "participant_key", "matched_user_id", "first_join", "last_leave", "total_minutes",
               "attendance_percent", "late", "left_early", "present", "intervals"]


def schedule_of(row: dict[str, Any], settings: ZoomSettings) -> Schedule:
    return Schedule(start=row["scheduled_start"], end=row["scheduled_end"],
                    late_after=timedelta(minutes=settings.late_after_minutes),
                    early_leave=timedelta(minutes=settings.early_leave_minutes))


async def stored_presences(session_id: Any) -> tuple[list[Presence], dict[str, tuple[str | None, str | None]]]:
    """The merged intervals written by the last webhook job, and each participant's matched user."""
    rows = await ParticipantInterval.select().where(ParticipantInterval.live_session == session_id).order_by(
        ParticipantInterval.participant_key).order_by(ParticipantInterval.position)
    by_key: dict[str, Presence] = {}
    matched: dict[str, tuple[str | None, str | None]] = {}
    for r in rows:
        presence = by_key.setdefault(r["participant_key"], Presence(r["participant_key"], r["name"], r["email"], []))
        presence.intervals.append(Interval(r["joined_at"], r["left_at"]))
        matched[r["participant_key"]] = (r["matched_user_id"], r["matched_user_name"])
    return list(by_key.values()), matched


async def build_report(row: dict[str, Any], settings: ZoomSettings, *,
                       now: datetime | None = None) -> AttendanceReport:
    now = now or datetime.now(timezone.utc)
    presences, matched = await stored_presences(row["id"])
    participants = attendance(presences, schedule_of(row, settings), now=now)
    for p in participants:
        p.matched_user_id, p.matched_user_name = matched.get(p.participant_key, (None, None))
    return AttendanceReport(
        live_session_id=row["id"], name=row["name"], status=row["status"], scheduled_start=row["scheduled_start"],
        scheduled_end=row["scheduled_end"], started_at=row["started_at"], ended_at=row["ended_at"],
        generated_at=now, late_after_minutes=settings.late_after_minutes,
        early_leave_minutes=settings.early_leave_minutes, present_now=sum(p.present for p in participants),
        participants=participants,
    )


def _iso(when: datetime | None) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if when else ""


def _cell(value: str) -> str:
    """A spreadsheet never runs a cell as a formula: text starting with = + - @ is quoted with '."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def report_csv(report: AttendanceReport) -> bytes:
    """UTF-8 with a BOM and CRLF line ends (Excel opens it as is); ISO 8601 UTC times."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in report.participants:
        intervals = "; ".join(f"{_iso(i.start)}/{_iso(i.end)}" for i in p.intervals)
        writer.writerow([_cell(p.name), _cell(p.email), _cell(p.participant_key), _cell(p.matched_user_id or ""),
                         _iso(p.first_join), _iso(p.last_leave), f"{p.total_seconds / 60:.2f}",
                         f"{p.attendance_percent:.1f}", str(p.late).lower(), str(p.left_early).lower(),
                         str(p.present).lower(), intervals])
    return b"\xef\xbb\xbf" + out.getvalue().encode()


def report_filename(report: AttendanceReport, extension: str) -> str:
    """``attendance-<session name>-<date>.<extension>``, ASCII only (safe in a header)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", report.name).strip("-").lower()[:60] or "live-session"
    return f"attendance-{slug}-{report.scheduled_start.astimezone(timezone.utc):%Y-%m-%d}.{extension}"


def download_headers(report: AttendanceReport, extension: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{report_filename(report, extension)}"'}
