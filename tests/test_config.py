from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from models.base import utcnow
from server.runtime.config import (
    MAX_DURATION,
    ConfigError,
    InstanceRole,
    Settings,
    load_settings,
    parse_duration,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "instance.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "instance.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    settings = load_settings(None, environ={})
    assert settings.instance.role is InstanceRole.SCENE
    assert settings.server.bind == "127.0.0.1:8080"
    assert settings.instance.base_url == "http://127.0.0.1:8080"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.endswith("data/playfair.sqlite3")


def test_file_values_and_relative_data_dir(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[instance]\nname = "Brownout Records"\nbase_url = "https://Music.Example/"\n'
        'data_dir = "state"\n[worker]\nlease = "2m"\n',
    )
    settings = load_settings(path, environ={})
    assert settings.instance.name == "Brownout Records"
    assert settings.instance.base_url == "https://music.example"
    assert settings.instance.data_dir == tmp_path / "state"
    assert settings.worker.lease == timedelta(minutes=2)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nbind = "127.0.0.1:9000"\n')
    settings = load_settings(
        path,
        environ={
            "PLAYFAIR_SERVER__BIND": "0.0.0.0:9100",
            "PLAYFAIR_DATABASE__URL": "postgresql://u:p@db/playfair",
            "PLAYFAIR_SERVER__TRUSTED_PROXIES": '["10.0.0.0/8"]',
            "PLAYFAIR_FEDERATION__ALLOW_PRIVATE_ADDRESSES": "true",
        },
    )
    assert settings.server.bind == "0.0.0.0:9100"
    assert settings.server.port == 9100
    assert settings.database.url == "postgresql+asyncpg://u:p@db/playfair"
    assert settings.server.trusted_proxies == ("10.0.0.0/8",)
    assert settings.federation.allow_private_addresses is True
    assert settings.instance.base_url == "http://localhost:9100"


def test_settings_are_frozen() -> None:
    settings = load_settings(None, environ={})
    with pytest.raises(Exception, match="frozen"):
        settings.server.bind = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ('[server]\nbnd = "1"\n', {}, r"^config error: server\.bnd: unknown setting \(from "),
        ("[nosuch]\nx = 1\n", {}, r"^config error: nosuch: unknown setting"),
        ('[server]\nbind = "localhost"\n', {}, r"server\.bind: expected HOST:PORT"),
        ('[server]\nbind = "127.0.0.1:70000"\n', {}, r"server\.bind: port 70000 is out of range"),
        ('[instance]\nbase_url = "ftp://x"\n', {}, r"instance\.base_url: must be an http"),
        ('[instance]\nbase_url = "https://x/path"\n', {}, r"instance\.base_url: .*without a path"),
        ('[instance]\nrole = "boss"\n', {}, r"instance\.role: Input should be 'scene' or 'hub'"),
        ('[worker]\nlease = "soon"\n', {}, r"worker\.lease: expected a duration"),
        ('[worker]\nlease = "0s"\n', {}, r"worker\.lease: must be longer than zero"),
        ('[worker]\nconcurrency = 0\n', {}, r"worker\.concurrency: .*greater than or equal to 1"),
        ('[database]\nurl = "mysql://x/y"\n', {}, r"database\.url: must be sqlite"),
        ('[logging]\nlevel = "LOUD"\n', {}, r"logging\.level: must be one of"),
        ("server = 3\n", {}, r"server: expected a \[server\] table"),
        ("[server\n", {}, r"is not valid TOML"),
        ("", {"PLAYFAIR_SERVER__PORTX": "1"},
         r"server\.portx: unknown setting \(from PLAYFAIR_SERVER__PORTX\)"),
        ("", {"PLAYFAIR_SERVER": "1"}, r"PLAYFAIR_SERVER: expected PLAYFAIR_<SECTION>__<KEY>"),
        ("", {"PLAYFAIR_WORKER__CONCURRENCY": "many"},
         r"worker\.concurrency: .* \(from PLAYFAIR_WORKER__CONCURRENCY\)"),
    ],
)  # fmt: skip
def test_bad_configuration_names_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(path, environ=environ)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[instance]\nname = "From env"\n')
    assert load_settings(None, environ={"PLAYFAIR_CONFIG": str(path)}).instance.name == "From env"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90", 90), ("45s", 45), ("1.5m", 90), ("6h", 21600), ("1d", 86400),
     ("2w", 1209600), ("250ms", 0.25)],
)  # fmt: skip
def test_durations(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert isinstance(result, timedelta)
    assert result.total_seconds() == seconds


@pytest.mark.parametrize(
    "value", ["", "h", "1y", "-5s", True, None, [1], -5, float("nan"), float("inf"), "1e9"]
)
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    "value", ["9999999999999d", "36501d", 10**30, timedelta(days=36_501), "99999999999999999w"]
)
def test_durations_too_long_for_a_date_are_refused(value: object) -> None:
    """They raised OverflowError (a traceback instead of the key's name) before."""
    with pytest.raises(ValueError, match="at most 36500 days"):
        parse_duration(value)
    with pytest.raises(ConfigError, match=r"worker\.keep_finished: a duration may be at most"):
        load_settings(None, environ={}, overrides={"worker": {"keep_finished": value}})


def test_the_longest_duration_still_makes_a_date() -> None:
    assert parse_duration("36500d") == MAX_DURATION
    assert utcnow() + MAX_DURATION > utcnow()


def _keys(model: type[Settings]) -> set[str]:
    keys = set()
    for section, field in model.model_fields.items():
        assert field.annotation is not None
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            keys.add(f"{section}.{key}")
    return keys


def test_example_file_documents_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    documented = {f"{section}.{key}" for section, values in data.items() for key in values}
    text = EXAMPLE.read_text()
    # Keys without a default (None) cannot be written in TOML; they are shown commented out.
    optional = {
        f"{section}.{key}"
        for section, field in Settings.model_fields.items()
        for key, sub in field.annotation.model_fields.items()  # type: ignore[union-attr]
        if sub.default is None
    }
    for key in optional:
        assert f"# {key.split('.', 1)[1]} = " in text, key
    assert documented | optional == _keys(Settings)
    from_example = load_settings(EXAMPLE, environ={})
    defaults = load_settings(None, environ={})
    for section in Settings.model_fields:
        example_section = getattr(from_example, section).model_dump()
        default_section = getattr(defaults, section).model_dump()
        if section == "instance":  # data_dir resolves against the file's folder
            example_section.pop("data_dir")
            default_section.pop("data_dir")
        assert example_section == default_section, section
    for key in _keys(Settings) - optional:
        # every key has a comment line right above it
        name = key.split(".", 1)[1]
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ="))
        assert lines[index - 1].startswith("#"), f"{key} has no comment above it"
