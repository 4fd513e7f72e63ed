"""The table of job kinds: one handler per kind, and the kinds the worker schedules itself.

Later issues register their kinds here (transcoding, deliveries, statements, …).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from models import jobs
from models.accounts import WebSession, purge_rate_counters
from models.base import utcnow
from server.runtime.config import Settings
from server.runtime.resources import Resources
from server.runtime.worker import JobContext, JobHandler, Periodic, Worker, WorkerOptions
from server.services.activitypub.context import federation_of
from server.services.activitypub.delivery import (
    DELIVER_JOB,
    RECOVER_JOB,
    run_delivery,
    run_recovery,
)
from server.services.activitypub.inbox import INBOX_JOB
from server.services.activitypub.publish import run_deleted, run_published, run_updated
from server.services.erasure import ERASE_JOB, run_erase
from server.services.events import DELETED_JOB, PUBLISHED_JOB, UPDATED_JOB
from server.services.inbox_routes import run_inbox_item
from server.services.media.ingest import TRANSCODE_JOB
from server.services.media.sampler import SAMPLER_JOB
from server.services.media.storage import sweep_leftovers
from server.services.media.transcode import make_release_sampler, transcode_track
from server.services.profile_updates import run_profile_update
from server.services.profiles import PROFILE_IMAGE_JOB, PROFILE_UPDATE_JOB, run_profile_image
from server.services.royalties.hub import settle_period
from server.services.royalties.statements import send_statements

PURGE_JOBS = "jobs.purge"
SEND_STATEMENTS = "royalties.statements"
SETTLE = "royalties.settle"
PURGE_ACCOUNTS = "accounts.purge"
SWEEP_MEDIA = "media.sweep"


async def purge_jobs(context: JobContext, payload: dict[str, object]) -> None:
    keep = context.resources.settings.worker.keep_finished
    async with context.sessionmaker() as session:
        await jobs.purge_succeeded(session, utcnow() - keep)


async def purge_accounts_state(context: JobContext, payload: dict[str, object]) -> None:
    """Expired browser sessions and old rate-limit counters."""
    now = utcnow()
    async with context.sessionmaker() as session:
        await session.execute(delete(WebSession).where(WebSession.expires_at < now))
        await session.commit()
        await purge_rate_counters(session, now - timedelta(days=1))


async def send_due_statements(context: JobContext, payload: dict[str, object]) -> None:
    """Statements of every closed period (federation.statement_period, from midnight UTC)."""
    fed = federation_of(context.resources)
    await send_statements(fed, until=period_boundary(utcnow(), fed.settings.statement_period))


async def sweep_media(context: JobContext, payload: dict[str, object]) -> None:
    """Temporary files of processes that stopped (a command-line import, say) without
    waiting for the next start-up."""
    await asyncio.to_thread(sweep_leftovers, context.resources.settings.media_dir)


def period_boundary(now: datetime, period: timedelta) -> datetime:
    """The start of the period ``now`` is in (periods counted from the epoch, so daily
    ones start at midnight UTC)."""
    seconds = period.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)


async def settle_due_periods(context: JobContext, payload: dict[str, object]) -> None:
    """On the hub: settle what was accepted for the periods that have closed."""
    fed = federation_of(context.resources)
    if fed.settings.hub_role:
        await settle_period(fed, period_boundary(utcnow(), fed.settings.statement_period))


HANDLERS: dict[str, JobHandler] = {
    SEND_STATEMENTS: send_due_statements,
    SETTLE: settle_due_periods,
    DELIVER_JOB: run_delivery,
    RECOVER_JOB: run_recovery,
    INBOX_JOB: run_inbox_item,
    PUBLISHED_JOB: run_published,
    UPDATED_JOB: run_updated,
    DELETED_JOB: run_deleted,
    PURGE_JOBS: purge_jobs,
    PURGE_ACCOUNTS: purge_accounts_state,
    ERASE_JOB: run_erase,
    TRANSCODE_JOB: transcode_track,
    SAMPLER_JOB: make_release_sampler,
    SWEEP_MEDIA: sweep_media,
    PROFILE_IMAGE_JOB: run_profile_image,
    PROFILE_UPDATE_JOB: run_profile_update,
}

PERIODIC: tuple[Periodic, ...] = (
    Periodic(RECOVER_JOB, timedelta(minutes=10)),
    Periodic(SEND_STATEMENTS, timedelta(hours=1)),
    Periodic(SETTLE, timedelta(hours=1)),
    Periodic(PURGE_JOBS, timedelta(hours=1)),
    Periodic(PURGE_ACCOUNTS, timedelta(hours=1)),
    Periodic(SWEEP_MEDIA, timedelta(hours=1)),
)


def worker_options(settings: Settings) -> WorkerOptions:
    return WorkerOptions(
        concurrency=settings.worker.concurrency,
        lease=settings.worker.lease,
        poll_interval=settings.worker.poll_interval,
        retry=jobs.RetryPolicy(base=settings.worker.retry_base, maximum=settings.worker.retry_max),
    )


def build_worker(resources: Resources) -> Worker:
    return Worker(resources, HANDLERS, worker_options(resources.settings), periodic=PERIODIC)
