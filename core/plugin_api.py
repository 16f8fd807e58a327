"""The public plugin API: the one module a Relais plugin imports from.

Everything a channel, a country's regulation or a feature needs is named here, and nothing
else of ``core`` or ``tenants`` is for plugins (an import-linter contract in CI holds every
built-in plugin to it)::

    from core.plugin_api import Outgoing, Provider, Result, hookimpl

The core behind these names may be reorganised; these names and their signatures are the
contract. docs/plugins.md documents each of them.
"""

# ruff: noqa: F401 — this module re-exports.

from core import hookimpl
from core import validation as check
from core.clinic.attribute_index import has_attribute as patient_has_attribute
from core.clinic.audit import record as record_audit
from core.clinic.consent import latest_action as latest_consent_sql
from core.clinic.consent import latest_steps as latest_consents_table
from core.clinic.consent import link as consent_link
from core.clinic.consent import record as record_consent
from core.clinic.consent import state as consent_state
from core.clinic.models import ConsentAction, ConsentMethod, Patient, Role, User
from core.clinic.patients import (
    attribute_labels,
    create_patient,
    find_patient,
    for_sending,
    mark_reviewed,
    search_patients,
    sex_labels,
)
from core.clinic.settings import Setting, plugin_setting, save_clinic, yes_no
from core.clinic.settings import clinic_choices as clinic_setting_choices
from core.clinic.settings import deployment as deployment_settings
from core.clinic.settings import save_deployment as save_deployment_settings
from core.clinic.settings import schema as declared_settings
from core.clinic.settings import stored as country_settings
from core.clinic.staff import practitioners, works_for
from core.config import external_url
from core.crypto import EncryptedBytes, EncryptedJSON, EncryptedText
from core.db import (
    UTCDateTime,
    among,
    created_column,
    db,
    id_column,
    insert_many,
    new_id,
    update_many,
    utcnow,
)
from core.delivery.jobs import run_later
from core.delivery.lifecycle import StatusChange
from core.delivery.log import masked as masked_phone
from core.delivery.log import read_message
from core.delivery.models import Message, MessageStatus
from core.delivery.outbox import cancel as cancel_message
from core.delivery.outbox import render as render_message
from core.delivery.outbox import send, send_in_parts, send_many
from core.delivery.outbox import trial as trial_message
from core.delivery.providers import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    DeclaredProvider,
    Inbound,
    Outgoing,
    Provider,
    ProviderError,
    Receipt,
    Result,
    SignatureError,
    declared_provider,
    declared_providers,
)
from core.delivery.routing import address as message_address
from core.delivery.routing import address_sql as message_address_sql
from core.delivery.routing import best_channels, configured_routes
from core.delivery.routing import preview as channel_preview
from core.delivery.sms import segments as sms_segments
from core.delivery.templates import names_used as template_names
from core.delivery.templates import unknown_variables as unknown_template_variables
from core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationError
from core.extensions import csrf, limiter
from core.hookspecs import hookspec
from core.i18n import (
    N_,
    Phrase,
    format_date,
    format_datetime,
    format_number,
    format_phone,
    format_time,
    phrase_country,
    phrase_date,
)
from core.plugins import (
    ConsolePage,
    DashboardAction,
    DashboardItem,
    DashboardLine,
    MenuItem,
    enabled_plugins,
    hooks_for,
)
from core.regulation import CountryProfile, QuietHours, Retention, Verdict, is_transactional
from core.vocabulary import CHANNELS, LANGUAGES, PURPOSES, SEXES
from core.web.api import api_blueprint
from core.web.api import authenticate as authenticate_api_key
from core.web.auth import login_limit, pending_account
from core.web.cli import fail, tenant_option
from core.web.fhir import answer_errors_as_fhir, fhir_json, fhir_operation, fhir_resource
from core.web.fhir import instant as fhir_instant
from core.web.openapi import api_operation, api_schema
from core.web.patient import current_patient, log_in_patient, patient_required
from core.web.staff_access import admin_only
from migrations.rls import protect as protect_tenant_rows
from tenants.models import Tenant
from tenants.scoping import TenantOwned, system_scope, tenant_scope

__all__ = [
    # the plugin contract
    "hookimpl",
    "hookspec",
    "MenuItem",
    "ConsolePage",
    "DashboardItem",
    "DashboardLine",
    "DashboardAction",
    "Setting",
    "yes_no",
    "plugin_setting",
    "country_settings",
    "declared_settings",
    "deployment_settings",
    "save_deployment_settings",
    "save_clinic",
    "clinic_setting_choices",
    "hooks_for",
    "enabled_plugins",
    # channels
    "Provider",
    "Outgoing",
    "Result",
    "Receipt",
    "Inbound",
    "ProviderError",
    "SignatureError",
    "ACCEPTED",
    "TEMPORARY",
    "PERMANENT",
    "UNREACHABLE",
    "DeclaredProvider",
    "declared_provider",
    "declared_providers",
    "configured_routes",
    "sms_segments",
    "CHANNELS",
    "PURPOSES",
    "LANGUAGES",
    "SEXES",
    # regulations
    "CountryProfile",
    "Verdict",
    "QuietHours",
    "Retention",
    "is_transactional",
    # sending
    "send",
    "send_many",
    "send_in_parts",
    "render_message",
    "unknown_template_variables",
    "trial_message",
    "template_names",
    "run_later",
    "cancel_message",
    "message_address",
    "message_address_sql",
    "channel_preview",
    "best_channels",
    "read_message",
    "masked_phone",
    "Message",
    "MessageStatus",
    "StatusChange",
    # the clinic
    "Tenant",
    "Patient",
    "User",
    "Role",
    "ConsentAction",
    "ConsentMethod",
    "create_patient",
    "attribute_labels",
    "sex_labels",
    "find_patient",
    "search_patients",
    "for_sending",
    "mark_reviewed",
    "practitioners",
    "works_for",
    "consent_state",
    "latest_consent_sql",
    "latest_consents_table",
    "patient_has_attribute",
    "record_consent",
    "consent_link",
    "record_audit",
    "check",
    # tables
    "db",
    "TenantOwned",
    "id_column",
    "created_column",
    "new_id",
    "utcnow",
    "insert_many",
    "update_many",
    "among",
    "UTCDateTime",
    "EncryptedText",
    "EncryptedJSON",
    "EncryptedBytes",
    "tenant_scope",
    "system_scope",
    "protect_tenant_rows",
    # pages, the API and the command line
    "csrf",
    "limiter",
    "external_url",
    "admin_only",
    "current_patient",
    "log_in_patient",
    "patient_required",
    "login_limit",
    "pending_account",
    "authenticate_api_key",
    "api_blueprint",
    "api_operation",
    "api_schema",
    "fhir_json",
    "fhir_instant",
    "fhir_operation",
    "fhir_resource",
    "answer_errors_as_fhir",
    "tenant_option",
    "fail",
    # the reader's language
    "Phrase",
    "N_",
    "phrase_country",
    "phrase_date",
    "format_date",
    "format_datetime",
    "format_time",
    "format_number",
    "format_phone",
    # errors
    "DomainError",
    "ValidationError",
    "NotFound",
    "Forbidden",
    "Conflict",
]
