"""The `playfair` command line: how an admin works without the web pages."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import select

from federation.keys import KeyDecryptionError
from models.database import DatabaseUnavailable, describe_url
from models.names import InvalidName
from models.users import Role
from server.runtime.config import ConfigError, Settings, load_settings
from server.runtime.instance import InstanceNotInitialised
from server.runtime.resources import DatabaseNotMigrated
from server.runtime.sockets import PortInUse
from server.services.media.ffmpeg import FfmpegError

T = TypeVar("T")

# Failures an admin can act on: one line, exit status 1, no traceback.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DatabaseUnavailable,
    DatabaseNotMigrated,
    FfmpegError,
    InstanceNotInitialised,
    InvalidName,
    KeyDecryptionError,
    PortInUse,
)


class CommandFailed(click.ClickException):
    def show(self, file: Any = None) -> None:
        click.echo(f"playfair: error: {self.format_message()}", err=True)


class State:
    """Settings are loaded on first use, so that `--help` works without a config."""

    def __init__(self, config_path: str | None, overrides: dict[str, dict[str, Any]]) -> None:
        self.config_path = config_path
        self.overrides = overrides

    def settings(self, **section_overrides: dict[str, Any]) -> Settings:
        merged = {key: dict(value) for key, value in self.overrides.items()}
        for section, values in section_overrides.items():
            merged.setdefault(section, {}).update(values)
        return load_settings(self.config_path, overrides=merged)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def handles_errors(func: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            raise CommandFailed(str(exc)) from None
        except ValueError as exc:  # AccountError and other rule violations
            if type(exc).__module__.startswith(("server.", "models.", "federation.")):
                raise CommandFailed(str(exc)) from None
            raise

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PLAYFAIR_CONFIG",
    help="The instance's TOML settings file (default: $PLAYFAIR_CONFIG, else built-in defaults).",
)
@click.version_option(package_name="playfair")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """playfair: a federated music streaming server for co-operatives."""
    ctx.obj = State(config_path, {})


pass_state = click.make_pass_decorator(State)
bind_option = click.option(
    "--bind", help="HOST:PORT to listen on (overrides server.bind).", default=None
)


def _bind_override(bind: str | None) -> dict[str, dict[str, Any]]:
    return {"server": {"bind": bind}} if bind else {}


async def _prepare(settings: Settings) -> str:
    """Data folder, secret, migrations, keys: everything `init` and `run` make if missing."""
    from federation.keys import ensure_instance_keys
    from models import migrate
    from models.database import check_connection, create_engine, create_sessionmaker
    from server.runtime.instance import ensure_data_dir, ensure_secret
    from server.runtime.resources import database_options

    ensure_data_dir(settings)
    secret = ensure_secret(settings)
    options = database_options(settings)
    engine = create_engine(options)
    try:
        await check_connection(engine)
        await migrate.upgrade_if_behind(settings.database_url)
        async with create_sessionmaker(engine, on_nested=options.on_nested)() as session:
            await ensure_instance_keys(session, secret)
    finally:
        await engine.dispose()
    return describe_url(settings.database_url)


@cli.command()
@pass_state
@handles_errors
def init(state: State) -> None:
    """Create the data folder, the instance secret, the database and the keys."""
    settings = state.settings()
    database = run_async(_prepare(settings))
    click.echo(f"instance ready: data in {settings.instance.data_dir}, database {database}")


@cli.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_state
@handles_errors
def migrate(state: State, revision: str) -> None:
    """Apply the database migrations."""
    from models import migrate as migrations
    from models.database import check_connection, create_engine
    from server.runtime.resources import database_options

    settings = state.settings()

    async def _run() -> str | None:
        engine = create_engine(database_options(settings))
        try:
            await check_connection(engine)
        finally:
            await engine.dispose()
        await migrations.upgrade(settings.database_url, revision)
        return await migrations.current_revision(settings.database_url)

    current = run_async(_run())
    click.echo(f"database {describe_url(settings.database_url)} is at revision {current}")


@cli.command()
@bind_option
@pass_state
@handles_errors
def run(state: State, bind: str | None) -> None:
    """Migrate, make keys if missing, and serve the web app with the worker."""
    from server.runtime.logs import configure_logging
    from server.serve import serve

    settings = state.settings(**_bind_override(bind))
    configure_logging(settings.logging)
    run_async(_prepare(settings))
    run_async(serve(settings, with_worker=True, announce=_announce))


@cli.command("serve")
@bind_option
@pass_state
@handles_errors
def serve_command(state: State, bind: str | None) -> None:
    """Serve the web app only (the database must be migrated)."""
    from server.runtime.logs import configure_logging
    from server.runtime.resources import check_schema
    from server.serve import serve

    settings = state.settings(**_bind_override(bind))
    configure_logging(settings.logging)
    run_async(check_schema(settings))
    run_async(serve(settings, with_worker=False, announce=_announce))


@cli.command()
@pass_state
@handles_errors
def worker(state: State) -> None:
    """Run the background worker only (the database must be migrated)."""
    from server.runtime.logs import configure_logging
    from server.runtime.resources import check_schema
    from server.serve import run_worker

    settings = state.settings()
    configure_logging(settings.logging)
    run_async(check_schema(settings))
    run_async(run_worker(settings))


@cli.command("nginx-site")
@click.option("--listen", default="80", show_default=True, help="What nginx listens on.")
@click.option("--upstream", default=None, help="Where playfair serves (default: server.bind).")
@pass_state
@handles_errors
def nginx_site_command(state: State, listen: str, upstream: str | None) -> None:
    """Print the nginx site for this instance: signed audio links checked and served by
    nginx alone, everything else proxied to playfair. It holds the audio-link secret."""
    from urllib.parse import urlsplit

    from server.runtime.instance import read_secret
    from server.runtime.nginx_site import NginxSite, nginx_site
    from server.services.media.links import TYPES, link_secret

    settings = state.settings()
    site = NginxSite(
        server_name=urlsplit(settings.instance.base_url).hostname or "localhost",
        listen=listen,
        upstream=upstream or settings.server.bind,
        media_dir=settings.media_dir.resolve(),
        link_secret=link_secret(read_secret(settings)),
        types=TYPES,
        x_accel=settings.media.x_accel_redirect,
        max_body_bytes=settings.media.max_upload_bytes,
    )
    click.echo(nginx_site(site), nl=False)


def _announce(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@cli.group()
def user() -> None:
    """Manage accounts."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.LISTENER.value,
    show_default=True,
)
@click.option("--email", default=None, help="Optional e-mail address.")
@pass_state
@handles_errors
def user_add(state: State, name: str, role: str, email: str | None) -> None:
    """Add an account. The password is read from standard input when one is piped in;
    otherwise a password is generated and printed once."""
    from server.services.account_rules import generate_password

    password = _password_from_stdin()
    generated = password is None
    password = password or generate_password()
    settings = state.settings()
    username = run_async(_add_user(settings, name, password, Role(role), email))
    click.echo(f"added account {username} ({role})")
    if generated:
        click.echo(f"password: {password}")


def _password_from_stdin() -> str | None:
    if sys.stdin is None or sys.stdin.isatty():
        return None
    text = sys.stdin.read().rstrip("\r\n")
    return text or None


async def _add_user(
    settings: Settings, name: str, password: str, role: Role, email: str | None
) -> str:
    from server.services.account_rules import create_user

    async with _session(settings) as session:
        user = await create_user(
            session, name, password, role, email,
            starter_balance=settings.money.starter_balance,
        )  # fmt: skip
        return user.username


@cli.group()
def artist() -> None:
    """Manage artist profiles."""


@artist.command("add")
@click.argument("name")
@click.option("--owner", required=True, help="The account that manages the profile.")
@click.option("--band", is_flag=True, help="A band (ActivityPub Group) rather than a solo artist.")
@click.option("--display-name", default=None, help="The name as shown (default: NAME).")
@pass_state
@handles_errors
def artist_add(state: State, name: str, owner: str, band: bool, display_name: str | None) -> None:
    """Add an artist profile owned by an account."""
    from models.catalogue import ArtistKind
    from models.users import User
    from server.services.catalogue import create_artist

    settings = state.settings()

    async def _run() -> str:
        async with _session(settings) as session:
            user = await session.scalar(select(User).where(User.username == owner.lower()))
            if user is None:
                raise CommandFailed(f"there is no account {owner!r}")
            made = await create_artist(
                session, name, user, display_name=display_name,
                kind=ArtistKind.BAND if band else ArtistKind.SOLO,
            )  # fmt: skip
            await session.commit()
            return made.name

    click.echo(f"added artist {run_async(_run())} (owner {owner.lower()})")


@cli.group()
def instance() -> None:
    """The instance actor (/actor) as other servers show it."""


@instance.command("picture")
@click.argument("role", type=click.Choice(["avatar", "header"]))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
@handles_errors
def instance_picture(state: State, role: str, path: Path) -> None:
    """Set the instance actor's avatar or header from a JPEG, PNG or WebP file. The
    running worker resizes it (avatar 400 × 400, header 1500 × 500); then it shows."""
    import shutil

    from server.services.errors import Refused
    from server.services.media.storage import LocalStorage
    from server.services.profiles import INSTANCE, image_role, store_image

    settings = state.settings()
    storage = LocalStorage(settings.media_dir)

    async def _run() -> int:
        copy = storage.temporary_file()
        await asyncio.to_thread(shutil.copyfile, path, copy)
        async with _session(settings) as session:
            try:
                row = await store_image(session, storage, INSTANCE, image_role(role), copy)
            except Refused as error:
                raise CommandFailed(f"{path}: {error}") from None
            await session.commit()
            return row.id

    click.echo(f"{role} {run_async(_run())} of the instance actor queued for resizing")


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--artist", "artist_name", required=True, help="The artist the files belong to.")
@click.option("--draft", is_flag=True, help="Keep the releases as drafts (default: publish).")
@click.option("--free", is_flag=True, help="Make the tracks free to stream.")
@pass_state
@handles_errors
def import_command(state: State, path: Path, artist_name: str, draft: bool, free: bool) -> None:
    """Import a file or a folder of audio files; releases are made from the album tags
    (or the folder's name). The worker transcodes them afterwards."""
    from models.catalogue import PriceModel
    from server.services.importer import find_artist, find_files, import_files

    settings = state.settings()
    files = find_files(path)
    if not files:
        raise CommandFailed(f"no audio files under {path}")

    def shown(item: Path | None) -> str:  # typed: click learns the bar's item type from it
        return item.name if item else ""

    async def _run() -> Any:
        async with _database(settings) as sessionmaker:
            await find_artist(sessionmaker, artist_name)
            with click.progressbar(
                length=len(files), label="importing", file=sys.stderr, item_show_func=shown,
            ) as bar:  # fmt: skip
                return await import_files(
                    settings, sessionmaker, artist_name, files, publish=not draft,
                    price_model=PriceModel.FREE if free else PriceModel.STREAM_TO_OWN,
                    progress=lambda p: bar.update(1, p),
                )  # fmt: skip

    try:
        report = run_async(_run())
    except LookupError as exc:
        raise CommandFailed(str(exc)) from None
    for failed, reason in report.failures:
        click.echo(f"skipped {failed}: {reason}", err=True)
    state_word = "drafts" if draft else "published"
    click.echo(
        f"imported {report.imported} of {len(files)} files into "
        f"{len(report.release_ids)} releases ({state_word}); the worker transcodes them"
    )
    if report.failures:
        raise SystemExit(1)


@cli.group()
def token() -> None:
    """Personal access tokens for scripts."""


@token.command("issue")
@click.argument("username")
@click.option("--scopes", default="read", show_default=True, help='For example "read play".')
@click.option("--name", default="command line", show_default=True, help="What the token is for.")
@pass_state
@handles_errors
def token_issue(state: State, username: str, scopes: str, name: str) -> None:
    """Issue a personal access token and print it (it is shown only once)."""
    from models.tokens import (
        AccessToken,
        InvalidScope,
        check_admin_scope,
        new_token,
        parse_scopes,
        token_digest,
    )
    from models.users import Role, User

    try:
        scope_set = parse_scopes(scopes)
    except InvalidScope as exc:
        raise CommandFailed(str(exc)) from None
    settings = state.settings()
    secret = new_token()

    async def _run() -> None:
        async with _session(settings) as session:
            user = await session.scalar(select(User).where(User.username == username.lower()))
            if user is None:
                raise CommandFailed(f"there is no account {username!r}")
            try:
                check_admin_scope(scope_set, is_admin=user.role is Role.ADMIN)
            except InvalidScope as exc:
                raise CommandFailed(f"{exc}; {username!r} is a {user.role.value}") from None
            session.add(
                AccessToken(
                    user_id=user.id, digest=token_digest(secret), name=name,
                    scopes=" ".join(sorted(scope.value for scope in scope_set)),
                )
            )  # fmt: skip
            await session.commit()

    run_async(_run())
    click.echo(secret)


@cli.group("app-password")
def app_password() -> None:
    """App passwords: what a listener types into a Subsonic app (see Settings, Apps)."""


async def _account(session: Any, username: str) -> Any:
    from models.users import User

    user = await session.scalar(select(User).where(User.username == username.lower()))
    if user is None:
        raise CommandFailed(f"there is no account {username!r}")
    return user


@app_password.command("add")
@click.argument("username")
@click.option("--name", required=True, help='The app or device it is for, such as "Phone".')
@pass_state
@handles_errors
def app_password_add(state: State, username: str, name: str) -> None:
    """Make an app password for USERNAME and print it (it is shown only once)."""
    from server.runtime.instance import read_secret
    from server.services import app_passwords
    from server.services.errors import Refused

    settings = state.settings()
    secret = read_secret(settings)

    async def _run() -> str:
        async with _session(settings) as session:
            user = await _account(session, username)
            try:
                made = await app_passwords.create(session, user, name, secret)
            except Refused as refused:
                raise CommandFailed(str(refused)) from None
            return made.password

    click.echo(run_async(_run()))


@app_password.command("revoke")
@click.argument("username")
@click.argument("name")
@pass_state
@handles_errors
def app_password_revoke(state: State, username: str, name: str) -> None:
    """Revoke USERNAME's app password NAME for good."""
    from server.services import app_passwords

    settings = state.settings()

    async def _run() -> bool:
        async with _session(settings) as session:
            user = await _account(session, username)
            return await app_passwords.revoke_named(session, user.id, name)

    if not run_async(_run()):
        raise CommandFailed(f"{username!r} has no app password named {name!r}")
    click.echo(f"revoked {name!r}")


@app_password.command("list")
@click.argument("username")
@pass_state
@handles_errors
def app_password_list(state: State, username: str) -> None:
    """USERNAME's app passwords: name, made, last used (tab-separated; never the
    passwords)."""
    from server.services import app_passwords

    settings = state.settings()

    async def _run() -> list[Any]:
        async with _session(settings) as session:
            user = await _account(session, username)
            return await app_passwords.list_active(session, user.id)

    for row in run_async(_run()):
        used = row.last_used_at.isoformat() if row.last_used_at else "never"
        click.echo(f"{row.name}\t{row.created_at.isoformat()}\t{used}")


@cli.group()
def voucher() -> None:
    """Voucher codes (prepaid tokens)."""


@voucher.command("issue")
@click.option("--tokens", type=int, required=True, help="Tokens each code is worth.")
@click.option("--count", type=int, default=1, show_default=True)
@click.option("--expires", default=None, help="Valid for this long, such as 90d (default: no end).")
@pass_state
@handles_errors
def voucher_issue(state: State, tokens: int, count: int, expires: str | None) -> None:
    """Issue voucher codes and print them, one a line (only their hashes are kept)."""
    from models.base import utcnow
    from server.runtime.config import parse_duration
    from server.services.money import MoneyError, issue_vouchers

    expires_at = None
    if expires:
        try:
            expires_at = utcnow() + parse_duration(expires)
        except ValueError as exc:
            raise CommandFailed(f"--expires: {exc}") from None
    settings = state.settings()

    async def _run() -> list[str]:
        async with _session(settings) as session:
            try:
                return await issue_vouchers(session, tokens, count, expires_at)
            except MoneyError as exc:
                raise CommandFailed(str(exc)) from None

    for code in run_async(_run()):
        click.echo(code)


@cli.group()
def oauth() -> None:
    """OAuth 2 apps."""


@oauth.command("add-client")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True)
@click.option("--scopes", default="read", show_default=True)
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE required).")
@click.option("--trusted", is_flag=True, help="One of the instance's own services.")
@pass_state
@handles_errors
def oauth_add_client(
    state: State, name: str, redirect_uris: tuple[str, ...], scopes: str, public: bool,
    trusted: bool,
) -> None:  # fmt: skip
    """Register an app; prints its client id (and secret, once)."""
    from server.services.oauth_clients import ClientError, register_client

    settings = state.settings()

    async def _run() -> tuple[str, str | None]:
        async with _session(settings) as session:
            try:
                client, secret = await register_client(
                    session, name, list(redirect_uris), scopes, public=public, trusted=trusted
                )
            except ClientError as exc:
                raise CommandFailed(str(exc)) from None
            return client.client_id, secret

    client_id, secret = run_async(_run())
    click.echo(f"client_id: {client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")


@cli.command()
@click.option("--if-empty", is_flag=True, help="Do nothing if the catalogue has releases.")
@pass_state
@handles_errors
def demo(state: State, if_empty: bool) -> None:
    """Add demo content: accounts, artists and releases of synthesized tracks, published
    (the worker transcodes them)."""
    from server.services.demo import add_demo_content

    settings = state.settings()

    async def _run() -> list[str]:
        async with _database(settings) as sessionmaker:
            return await add_demo_content(settings, sessionmaker, only_if_empty=if_empty)

    for line in run_async(_run()):
        click.echo(line)


@cli.group()
def deliveries() -> None:
    """Outgoing ActivityPub deliveries: list them, replay failed ones."""


@deliveries.command("list")
@click.option(
    "--state",
    "only_state",
    type=click.Choice(["pending", "delivering", "delivered", "failed", "abandoned"]),
    default=None,
    help="Only deliveries in this state.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@pass_state
@handles_errors
def deliveries_list(state: State, limit: int, only_state: str | None) -> None:
    """One line per delivery, newest first: id, state, attempts, last status, inbox."""
    from models.federation import DeliveryState
    from server.services.activitypub.moderation import list_deliveries

    settings = state.settings()
    wanted = DeliveryState(only_state) if only_state else None

    async def _run() -> list[Any]:
        async with _session(settings) as session:
            return await list_deliveries(session, wanted, limit)

    for row in run_async(_run()):
        status = row.last_status if row.last_status is not None else "-"
        click.echo(
            f"{row.id}\t{row.state}\t{row.attempts}\t{status}\t{row.type}\t{row.inbox}"
            + (f"\t{row.last_error}" if row.last_error else "")
        )


@deliveries.command("replay")
@click.argument("ids", nargs=-1, type=int)
@pass_state
@handles_errors
def deliveries_replay(state: State, ids: tuple[int, ...]) -> None:
    """Queue failed deliveries again (all of them, or the given ids, also abandoned ones)."""
    from server.services.activitypub.delivery import replay

    settings = state.settings()

    async def _run() -> int:
        async with _session(settings) as session:
            return await replay(session, list(ids) if ids else None)

    click.echo(f"replayed {run_async(_run())} deliveries; the worker sends them")


@cli.group()
def domain() -> None:
    """Domain blocks, and the domains allowed in allow-list mode."""


@domain.command("block")
@click.argument("name")
@click.option("--reason", default="", help="Kept for the admins.")
@pass_state
@handles_errors
def domain_block(state: State, name: str, reason: str) -> None:
    """Refuse everything from a domain (and its subdomains) and stop delivering to it."""
    _set_domain(state, name, "block", reason)


@domain.command("allow")
@click.argument("name")
@click.option("--reason", default="", help="Kept for the admins.")
@pass_state
@handles_errors
def domain_allow(state: State, name: str, reason: str) -> None:
    """Allow a domain (what counts when federation.mode is "allowlist")."""
    _set_domain(state, name, "allow", reason)


def _set_domain(state: State, name: str, policy: str, reason: str) -> None:
    from models.federation import DomainPolicyKind
    from server.services.activitypub.moderation import ModerationError, set_domain_policy

    settings = state.settings()

    async def _run() -> str:
        async with _session(settings) as session:
            try:
                row = await set_domain_policy(session, name, DomainPolicyKind(policy), reason)
            except ModerationError as exc:
                raise CommandFailed(str(exc)) from None
            return row.domain

    click.echo(f"{policy}: {run_async(_run())}")


@domain.command("remove")
@click.argument("name")
@pass_state
@handles_errors
def domain_remove(state: State, name: str) -> None:
    """Remove a domain's block or allow."""
    from server.services.activitypub.moderation import ModerationError, remove_domain_policy

    settings = state.settings()

    async def _run() -> bool:
        async with _session(settings) as session:
            try:
                return await remove_domain_policy(session, name)
            except ModerationError as exc:
                raise CommandFailed(str(exc)) from None

    if not run_async(_run()):
        raise CommandFailed(f"there is no policy for {name!r}")
    click.echo(f"removed: {name}")


@domain.command("list")
@pass_state
@handles_errors
def domain_list(state: State) -> None:
    """Every domain policy: domain, policy, reason."""
    from models.federation import DomainPolicy

    settings = state.settings()

    async def _run() -> list[Any]:
        async with _session(settings) as session:
            return list(
                (await session.scalars(select(DomainPolicy).order_by(DomainPolicy.domain))).all()
            )

    for row in run_async(_run()):
        click.echo(f"{row.domain}\t{row.policy.value}\t{row.reason}")


@cli.group()
def partners() -> None:
    """Partnerships with other instances (full audio and royalty settlement)."""


@partners.command("list")
@pass_state
@handles_errors
def partners_list(state: State) -> None:
    """One line per partnership: id, their instance actor, they follow us, we follow them."""
    from server.services.activitypub.partners import list_partnerships

    settings = state.settings()

    async def _run() -> list[Any]:
        async with _session(settings) as session:
            return await list_partnerships(session)

    for row in run_async(_run()):
        click.echo(
            f"{row.id}\t{row.actor}\tthey follow: {row.they_follow}\twe follow: {row.we_follow}"
        )


@partners.command("request")
@click.argument("instance")
@pass_state
@handles_errors
def partners_request(state: State, instance: str) -> None:
    """Ask another instance (a host name or its actor URL) to be a partner."""
    settings = state.settings()

    async def _run() -> str:
        from server.services.activitypub import partners as p

        async with _federation(settings) as fed:
            try:
                row = await p.request_partnership(fed, instance)
            except p.PartnershipError as exc:
                raise CommandFailed(str(exc)) from None
            return f"asked (partnership {row.id}); the worker delivers the request"

    click.echo(run_async(_run()))


@partners.command("accept")
@click.argument("partnership_id", type=int)
@pass_state
@handles_errors
def partners_accept(state: State, partnership_id: int) -> None:
    """Accept an instance that asked to be a partner."""
    _decide_partnership(state, partnership_id, True)


@partners.command("refuse")
@click.argument("partnership_id", type=int)
@pass_state
@handles_errors
def partners_refuse(state: State, partnership_id: int) -> None:
    """Refuse (or stop) an instance's partnership: it gets previews only."""
    _decide_partnership(state, partnership_id, False)


def _decide_partnership(state: State, partnership_id: int, accept: bool) -> None:
    settings = state.settings()

    async def _run() -> None:
        from server.services.activitypub import partners as p

        async with _federation(settings) as fed:
            try:
                await p.decide(fed, partnership_id, accept)
            except p.PartnershipError as exc:
                raise CommandFailed(str(exc)) from None

    run_async(_run())
    click.echo(f"{'accepted' if accept else 'refused'}: partnership {partnership_id}")


@cli.group()
def statements() -> None:
    """Signed royalty statements with partner instances."""


@statements.command("list")
@pass_state
@handles_errors
def statements_list(state: State) -> None:
    """One line per statement: id, direction, state, period, tokens charged and owed, the
    other instance, and the reason of a rejection."""
    from models.federation import RemoteActor
    from models.remote_plays import RoyaltyStatementRecord

    settings = state.settings()

    async def _run() -> list[Any]:
        async with _session(settings) as session:
            rows = await session.execute(
                select(RoyaltyStatementRecord, RemoteActor.uri)
                .join(RemoteActor, RemoteActor.id == RoyaltyStatementRecord.counterpart_id)
                .order_by(RoyaltyStatementRecord.id)
            )
            return list(rows.all())

    for row, other in run_async(_run()):
        period = f"{row.period_start:%Y-%m-%d %H:%M}–{row.period_end:%Y-%m-%d %H:%M}"
        figures = f"charged {row.total_charged}\towed {row.total_owed}"
        reason = f"\t{row.reason}" if row.reason else ""
        click.echo(
            f"{row.uri}\t{row.direction.value}\t{row.state.value}\t{period}\t{figures}"
            f"\t{other}{reason}"
        )


@statements.command("send")
@pass_state
@handles_errors
def statements_send(state: State) -> None:
    """State every partner's paid Listens since the last statement, up to now, and
    queue the signed statements for delivery."""
    settings = state.settings()

    async def _run() -> list[str]:
        from server.services.royalties.statements import send_statements

        async with _federation(settings) as fed:
            return await send_statements(fed)

    sent = run_async(_run())
    for uri in sent:
        click.echo(uri)
    click.echo(f"{len(sent)} statements queued for delivery")


@cli.group("hub")
def hub_group() -> None:
    """The co-op hub (with federation.hub_role = true): its log and its settlements."""


@hub_group.command("settle")
@pass_state
@handles_errors
def hub_settle(state: State) -> None:
    """Net every accepted statement not settled yet, up to now, into a signed Settlement
    sent to the members concerned; print its transfers."""
    settings = state.settings()
    if not settings.federation.hub_role:
        raise CommandFailed("this instance is not a hub (federation.hub_role = false)")

    async def _run() -> dict[str, Any] | None:
        from models.base import utcnow
        from server.services.royalties.hub import settle_period

        async with _federation(settings) as fed:
            return await settle_period(fed, utcnow())

    document = run_async(_run())
    if document is None:
        click.echo("nothing to settle")
        return
    click.echo(document["id"])
    for transfer in document["transfers"]:
        click.echo(f"{transfer['payer']} pays {transfer['payee']} {transfer['tokens']} tokens")


@hub_group.command("log")
@pass_state
@handles_errors
def hub_log(state: State) -> None:
    """The hub's append-only log: kind, verified or not (and why), id, statement."""
    from models.remote_plays import HubLogEntry

    settings = state.settings()

    async def _run() -> list[Any]:
        async with _session(settings) as session:
            return list(await session.scalars(select(HubLogEntry).order_by(HubLogEntry.id)))

    for entry in run_async(_run()):
        verdict = "verified" if entry.verified else f"refused: {entry.reason}"
        click.echo(f"{entry.kind.value}\t{verdict}\t{entry.uri}\t{entry.statement_uri or ''}")


@contextlib.asynccontextmanager
async def _federation(settings: Settings) -> AsyncIterator[Any]:
    """Everything federation needs (keys, the guarded client), for one-shot commands."""
    from server.runtime.resources import check_schema, open_resources
    from server.services.activitypub.context import federation_of

    await check_schema(settings)
    resources = await open_resources(settings)
    try:
        yield federation_of(resources)
    finally:
        await resources.close()


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Any]:
    """A session factory on a checked, migrated database, for one-shot commands."""
    from models.database import create_engine, create_sessionmaker
    from server.runtime.resources import check_schema, database_options

    await check_schema(settings)
    options = database_options(settings)
    engine = create_engine(options)
    try:
        yield create_sessionmaker(engine, on_nested=options.on_nested)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[Any]:
    async with _database(settings) as sessionmaker, sessionmaker() as session:
        yield session


def main() -> None:
    cli.main(prog_name="playfair")


if __name__ == "__main__":
    main()
