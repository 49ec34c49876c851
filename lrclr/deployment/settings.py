"""Deployment settings: what a browser user of this server may reach, fixed by whoever runs it.

Read once from a TOML file named by ``$LRCLR_SETTINGS`` (none: the safe defaults below). Nothing a
browser sends can change them. Relative paths in the file are relative to the file's folder.

    [batch]
    server_folders = ["/data/studies"]  # default []: the Batch page reads uploaded ZIPs only

    [models]  # the models a user may choose from (label = folder); the first is the default
    "LRCLR (site)" = "/models/lrclr-site"

    [flag_store]  # one of the two keys, not both:
    folder = "/var/lib/lrclr-review"  # a SQLite file in it (default: $LRCLR_DATA_DIR, else
                                      # ~/.local/share/lrclr-review)
    url = "postgresql://lrclr@db.example.org:5432/lrclr_flags"  # a PostgreSQL database that several
                                      # app servers share; libpq reads the password from PGPASSWORD,
                                      # ~/.pgpass or PGPASSFILE (README: "Several app servers")

    [auth]
    credentials = "users.toml"  # default none: no login (a single-user or demo machine)

    [budgets]
    decoded_megapixels = 16      # an image is downsampled on decode to at most this many pixels
    session_cache_megabytes = 256  # decoded images and results kept per browser session

A folder typed on the Batch page is read only if, after resolving ``..`` and symbolic links, it lies
under one of ``server_folders`` and no part of it below the root is hidden; any other folder gets
the same message whether or not it exists.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lrclr.annotations.store import default_data_dir
from lrclr.bundled import BASELINE_MODEL_DIR, DEFAULT_MODEL_DIR
from lrclr.errors import AnnotationStoreError, LRCLRError

SETTINGS_ENV = "LRCLR_SETTINGS"
MODEL_ENV = "LRCLR_MODEL"  # the server's default model folder, when no settings file lists models
_SETTINGS_FILE_BYTES = 1_000_000


class DeploymentSettingsError(LRCLRError):
    """The settings file is missing, unreadable or holds a value of the wrong kind."""


class FolderNotAllowedError(LRCLRError):
    """A folder the Batch page may not read (the message never says whether it exists)."""


@dataclass(frozen=True)
class ModelChoice:
    label: str
    folder: Path


@dataclass(frozen=True)
class Budgets:
    decoded_megapixels: float = 16.0
    session_cache_megabytes: float = 256.0

    @property
    def decoded_pixels(self) -> int:
        return int(self.decoded_megapixels * 1e6)

    @property
    def session_cache_bytes(self) -> int:
        return int(self.session_cache_megabytes * 2**20)


@dataclass(frozen=True)
class DeploymentSettings:
    models: tuple[ModelChoice, ...]
    flag_store: Path  # the SQLite store's folder (unused when flag_store_url is set)
    batch_roots: tuple[Path, ...] = ()
    credentials: Path | None = None
    budgets: Budgets = field(default_factory=Budgets)
    source: str = "defaults"  # the settings file, or "defaults"
    # A PostgreSQL URL instead of the folder. repr=False: a URL may hold a password, and a
    # dataclass's repr ends up in logs and tracebacks.
    flag_store_url: str | None = field(default=None, repr=False)

    @property
    def login_required(self) -> bool:
        return self.credentials is not None

    def model_folder(self, label: str) -> Path:
        """The folder of a listed model; a label not in the list is refused."""
        for choice in self.models:
            if choice.label == label:
                return choice.folder
        raise LRCLRError(f"{label!r} is not one of this deployment's models")

    def batch_folder(self, typed: str) -> Path:
        """The folder the Batch page may read for what the user typed, or FolderNotAllowedError."""
        if not self.batch_roots:
            raise FolderNotAllowedError("This deployment does not let the Batch page read server folders; "
                                        "upload a ZIP archive instead.")
        refused = FolderNotAllowedError("That is not a folder the Batch page may read. Allowed: "
                                        + ", ".join(str(root) for root in self.batch_roots) + ".")
        typed = typed.strip()
        if not typed or "\x00" in typed:
            raise refused
        candidate = Path(typed) if Path(typed).is_absolute() else self.batch_roots[0] / typed
        resolved = Path(os.path.realpath(candidate))
        root = next((r for r in self.batch_roots if resolved == r or resolved.is_relative_to(r)), None)
        if root is None or any(part.startswith(".") for part in resolved.relative_to(root).parts):
            raise refused
        if not resolved.is_dir():
            raise FolderNotAllowedError(f"There is no folder {resolved.relative_to(root)} under {root}.")
        return resolved

    def allows_file(self, path: Path) -> bool:
        """Whether a file found in a walk may be read: under a root once links are resolved, never
        hidden (a link inside an allowed folder may point anywhere)."""
        resolved = Path(os.path.realpath(path))
        return any((resolved.is_relative_to(root)
                    and not any(part.startswith(".") for part in resolved.relative_to(root).parts))
                   for root in self.batch_roots)


def read_small_toml(path: Path, what: str, error: type[LRCLRError], max_bytes: int = _SETTINGS_FILE_BYTES) -> dict:
    """A server-side TOML file (the settings, the credentials), refused unread above ``max_bytes``;
    every problem becomes ``error`` naming ``what`` and the path."""
    try:
        if path.stat().st_size > max_bytes:
            raise error(f"{path}: {what} is a few lines; this one is over {max_bytes:,} bytes")
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as problem:
        raise error(f"{what} {path} cannot be read: {problem}") from problem


def load_settings(path: str | Path | None = None) -> DeploymentSettings:
    """The settings in ``path`` (default ``$LRCLR_SETTINGS``), else the safe defaults."""
    path = path if path is not None else os.environ.get(SETTINGS_ENV) or None
    if path is None:
        return _settings({}, Path.cwd(), "defaults")
    path = Path(path).expanduser()
    data = read_small_toml(path, "The deployment settings file", DeploymentSettingsError)
    return _settings(data, path.parent, str(path))


def _settings(data: dict, base: Path, source: str) -> DeploymentSettings:
    def folder(value, what: str) -> Path:
        if not isinstance(value, str) or not value:
            raise DeploymentSettingsError(f"{source}: {what} must be a folder path (a string)")
        return Path(os.path.realpath(base / Path(value).expanduser()))

    listed = _table(data, "models", source)
    if listed:
        models = tuple(ModelChoice(str(label), folder(value, f"models.{label}")) for label, value in listed.items())
    else:
        models = _default_models()
    store, store_url = _flag_store(_table(data, "flag_store", source), source)
    roots = _table(data, "batch", source).get("server_folders", [])
    if not isinstance(roots, list):
        raise DeploymentSettingsError(f"{source}: batch.server_folders must be a list of folders")
    credentials = _table(data, "auth", source).get("credentials")
    budgets = _table(data, "budgets", source)
    try:
        limits = Budgets(**{key: float(value) for key, value in budgets.items()})
    except (TypeError, ValueError) as error:
        raise DeploymentSettingsError(f"{source}: [budgets] {error}") from error
    return DeploymentSettings(
        models=models,
        flag_store=folder(store, "flag_store.folder") if store is not None else default_data_dir(),
        batch_roots=tuple(folder(root, "batch.server_folders") for root in roots),
        credentials=folder(credentials, "auth.credentials") if credentials is not None else None,
        budgets=limits,
        source=source,
        flag_store_url=store_url,
    )


def _flag_store(table: dict, source: str) -> tuple[str | None, str | None]:
    """``folder`` or ``url``; a key misspelt would silently leave each replica its own SQLite file."""
    unknown = sorted(set(table) - {"folder", "url"})
    if unknown:
        raise DeploymentSettingsError(f"{source}: [flag_store] has no key {', '.join(unknown)}; "
                                      "give folder (a SQLite file in it) or url (a PostgreSQL database)")
    folder, url = table.get("folder"), table.get("url")
    if folder is not None and url is not None:
        raise DeploymentSettingsError(f"{source}: [flag_store] gives both folder and url; keep one")
    if url is not None:
        from lrclr.annotations.postgres_engine import StoreURL  # psycopg loads only when a URL is set

        try:
            StoreURL(url)
        except AnnotationStoreError as error:
            raise DeploymentSettingsError(f"{source}: flag_store.url: {error}") from None
    return folder, url


def _table(data: dict, name: str, source: str) -> dict:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise DeploymentSettingsError(f"{source}: [{name}] must be a table")
    return table


def _default_models() -> tuple[ModelChoice, ...]:
    """The bundled models; a folder in ``$LRCLR_MODEL`` (set by whoever starts the server) first."""
    bundled = (ModelChoice("LRCLR (bundled)", DEFAULT_MODEL_DIR), ModelChoice("baseline (bundled)", BASELINE_MODEL_DIR))
    chosen = os.environ.get(MODEL_ENV)
    if not chosen:
        return bundled
    folder = Path(chosen).expanduser()
    same = next((m for m in bundled if m.folder == folder), None)
    first = same or ModelChoice(f"{folder.name} ({MODEL_ENV})", folder)
    return (first, *(m for m in bundled if m is not same))
