"""Loading ``gateway.toml``: parse, validate, resolve paths, and explain every mistake.

Errors name the file and the key (``gateway.toml: partners[1].token_sha256: …``)
so an operator can fix them without reading code.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.config import (
    DmsBackendConfig,
    DropFolderConfig,
    FilesystemDestination,
    GatewayConfig,
    HttpDestination,
    PartnerConfig,
    SoapDestination,
    StorageConfig,
    XtaDestination,
)
from gateway.errors import ConfigError


def load_config(path: Path) -> GatewayConfig:
    """Read, validate and resolve a configuration file.

    Relative paths (journal file, blob directory, transfer and drop folders) are
    made absolute against the file's folder.

    Raises:
        ConfigError: unreadable file, TOML syntax error, or invalid settings.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + _explain(exc)) from exc
    return resolve_paths(config, path.resolve().parent)


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        location = _location(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/configuration.md)"
        elif error["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    return "; ".join(lines)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for index, part in enumerate(loc):
        # Discriminator labels (destinations.NAME.<type>) and validator labels mean
        # nothing to an operator; "http" elsewhere is the [http] table and stays.
        discriminator = index == 2 and loc[0] == "destinations"
        if isinstance(part, int):
            text += f"[{part}]"
        elif discriminator or str(part).startswith("function-"):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text


def resolve_paths(config: GatewayConfig, base: Path) -> GatewayConfig:
    """Make every relative path in ``config`` absolute against ``base``."""

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else base / path

    def absolute_fields(model: Any, *names: str) -> Any:
        update = {n: absolute(getattr(model, n)) for n in names if getattr(model, n) is not None}
        return model.model_copy(update=update)

    journal = config.storage.journal
    if journal.startswith("sqlite:///"):
        file_part = journal.removeprefix("sqlite:///")
        if file_part and not file_part.startswith("/") and file_part != ":memory:":
            journal = "sqlite:///" + str(base / file_part)
    storage = StorageConfig(journal=journal, blobs=absolute(config.storage.blobs))
    destinations = {
        name: (
            absolute_fields(destination, "directory")
            if isinstance(destination, FilesystemDestination)
            else absolute_fields(destination, "ca_file", "client_certificate", "client_key")
            if isinstance(destination, HttpDestination)
            else destination.resolved(base)
            if isinstance(destination, DmsBackendConfig | SoapDestination | XtaDestination)
            else destination
        )
        for name, destination in config.destinations.items()
    }
    http = config.http
    if http.tls is not None:
        tls = absolute_fields(http.tls, "certificate", "private_key", "client_ca")
        http = http.model_copy(update={"tls": tls})
    dropfolders = tuple(
        DropFolderConfig.model_validate(
            {**folder.model_dump(), "directory": absolute(folder.directory)}
        )
        for folder in config.dropfolders
    )
    xta = config.xta
    if xta is not None:
        xta = absolute_fields(xta, "wsdl")
    return config.model_copy(
        update={
            "dms": config.dms.resolved(base) if config.dms is not None else None,
            "storage": storage,
            "http": http,
            "destinations": destinations,
            "dropfolders": dropfolders,
            "archives": {name: a.resolved(base) for name, a in config.archives.items()},
            "xta": xta,
        }
    )


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def partner_for_token(config: GatewayConfig, token: str) -> PartnerConfig | None:
    """The partner a bearer token belongs to, compared in constant time."""
    digest = token_digest(token)
    found = None
    for partner in config.partners:
        expected = partner.token_sha256 or _env_digest(partner.token_env)
        if expected is not None and hmac.compare_digest(expected, digest):
            found = partner
    return found


def _env_digest(name: str | None) -> str | None:
    value = os.environ.get(name) if name else None
    return token_digest(value) if value else None


def missing_secrets(config: GatewayConfig) -> list[str]:
    """Environment variables the configuration names but the environment lacks."""
    names: list[Any] = [p.token_env for p in config.partners if p.token_env]
    names += [getattr(d, "token_env", None) for d in config.destinations.values()]
    if config.operator is not None:
        names.append(config.operator.token_env)
    names += [getattr(a.folder, "password_env", None) for a in config.archives.values()]
    names += [getattr(d, "password_env", None) for d in config.destinations.values()]
    return sorted({n for n in names if n and not os.environ.get(n)})


def is_operator_token(config: GatewayConfig, token: str) -> bool:
    """Whether ``token`` is the ``[operator]`` token, compared in constant time."""
    operator = config.operator
    if operator is None:
        return False
    expected = operator.token_sha256 or _env_digest(operator.token_env)
    return expected is not None and hmac.compare_digest(expected, token_digest(token))
