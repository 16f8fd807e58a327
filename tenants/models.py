"""Platform tables: countries, clinics (tenants), operators, plugin enablement and settings."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.auth import Credentials
from core.db import UTCDateTime, created_column, db, id_column


class Country(db.Model):
    __tablename__ = "countries"

    code: Mapped[str] = mapped_column(sa.String(2), primary_key=True)  # ISO 3166-1 alpha-2
    name: Mapped[str] = mapped_column(sa.String(80))
    locale: Mapped[str] = mapped_column(sa.String(10))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    # The operator lets practitioners sign their clinics up on the main domain (``/signup``).
    self_signup: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Tenant(db.Model):
    """A clinic, reached at ``<slug>.<domain>``."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = id_column()
    slug: Mapped[str] = mapped_column(sa.String(63), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    country_code: Mapped[str] = mapped_column(sa.ForeignKey("countries.code"))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    # The clinic's own choice of language (a Swiss or Belgian clinic); None: its country's.
    language: Mapped[str | None] = mapped_column(sa.String(10))
    created_at: Mapped[datetime] = created_column()
    # A practitioner signed the clinic up (``/signup``): when, and with which address and
    # phone (E.164); the abuse limits count a person's pending sign-ups by them.
    signed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signup_email: Mapped[str | None] = mapped_column(sa.String(254), index=True)
    signup_phone: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    # The operator suspended the clinic: every page and API call of its subdomain answers 403.
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    country: Mapped[Country] = relationship(lazy="joined")

    @property
    def default_language(self) -> str:
        """The language of the clinic's pages until a reader chooses one (ISO 639-1)."""
        return self.language or self.country.locale[:2]


class Operator(Credentials, db.Model):
    """A country operator: runs the console at ``operator.<domain>``."""

    __tablename__ = "operators"

    id: Mapped[uuid.UUID] = id_column()
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)


class PluginSettings(db.Model):
    """A plugin's settings for a country, encrypted whole (they may hold provider secrets)."""

    __tablename__ = "plugin_settings"

    country_code: Mapped[str] = mapped_column(sa.ForeignKey("countries.code"), primary_key=True)
    plugin: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    sealed: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeploymentSettings(db.Model):
    """A plugin's settings for the whole deployment (every country), encrypted whole: what
    must be one for all, such as the Web Push VAPID key pair. A country's own value of the
    same name wins over it."""

    __tablename__ = "deployment_settings"

    plugin: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    sealed: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProviderRoute(db.Model):
    """An operator's choice of a provider for a channel in a country: priority first (lowest
    wins), then weight shares traffic between providers of equal priority."""

    __tablename__ = "provider_routes"

    country_code: Mapped[str] = mapped_column(sa.ForeignKey("countries.code"), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    priority: Mapped[int] = mapped_column(default=1)
    weight: Mapped[int] = mapped_column(default=100)
