"""Service settings, read from the environment (prefix ``PV_``) and an optional ``.env`` file.

Every setting is documented in docs/configuration.md and config/.env.example.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


#: The configuration shipped inside the package (pv/defaults; the repository's config/ points at it).
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent / "defaults"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PV_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'pv.sqlite3'}",
        description="SQLAlchemy URL of the case store; postgresql+psycopg://... in production.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://...). Unset: tasks run in process (embedded default).",
    )
    result_backend: str | None = Field(
        default=None, description="Celery result backend; defaults to the broker URL."
    )
    task_queue: str = Field(default="pv", description="Celery queue the service's tasks are sent to.")
    visibility_timeout: int = Field(
        default=7200,
        description="Seconds before Redis redelivers an unacknowledged task; above the longest task.",
    )
    run_lease: int = Field(
        default=7200, gt=0,
        description="Seconds a run's stage claims it: a running run not heard of for longer (its worker died) is "
                    "recomputed by the next request; a queued run waits 12 times as long.",
    )
    config_dir: Path = Field(
        default=DEFAULT_CONFIG_DIR,
        description="Folder of the YAML configuration (default: the one shipped inside the package; "
                    "`pv config init DIR` writes an editable copy).",
    )
    var_dir: Path = Field(
        default=VAR_DIR, description="Folder for local state: reports, outbox, drop folder."
    )
    ingest_max_member_bytes: int = Field(
        default=2 << 30, gt=0,
        description="Largest uncompressed size of a member of a quarter's zip (bytes); a larger one refuses the file.",
    )
    ingest_max_ratio: float = Field(
        default=200.0, gt=1,
        description="Largest compression ratio of a zip member over 1 MiB; a higher one refuses the file (zip bomb).",
    )
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_allow_plaintext_login: bool = Field(
        default=False, description="Allow logging in to the SMTP server without STARTTLS (a trusted local link).")
    smtp_from: str = "pv@localhost"
    smtp_timeout: float = Field(
        default=30.0, description="Seconds before an SMTP connection or reply times out."
    )
    base_url: str | None = Field(
        default=None,
        description="Address of the service's review pages (https://pv.example.org); alert emails link "
        "{base_url}/signals/{id} and {base_url}/runs/{run_id}/report. Unset: the emails name the command "
        "and the report file instead of a link.",
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1]) == 0:
            raise ValueError(f"PV_BASE_URL must be an http:// or https:// address, got {value!r}")
        return value
    secret_key: str | None = Field(
        default=None,
        description="Key signing the review service's session cookies. Unset: a random key kept in "
        "var_dir/secret_key (made on first use).",
    )
    session_max_age: int = Field(
        default=8 * 3600, ge=60, description="Seconds without a request after which a sign-in to the review "
        "service ends."
    )
    validation_due_days: int = Field(
        default=30, ge=1, description="Days from detection by which a new signal is due to be validated "
        "(GVP IX); later ones are marked overdue.",
    )

    @property
    def is_embedded(self) -> bool:
        """True when no broker is configured: Celery tasks run eagerly in this process."""
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
