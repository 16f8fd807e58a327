"""Every hook a Relais plugin can implement: the contract plugin authors read.

Hooks are called with keyword arguments only; an implementation may accept any subset of
the arguments listed, so a spec can grow arguments without breaking plugins. Calls made on
behalf of a tenant (``hooks_for(tenant)``) reach only the plugins enabled for that tenant:
enabled by the operator for the tenant's country and not switched off by the clinic.

``register_*`` hooks are collected once, at start-up, from every installed plugin; the core
then routes each registered thing to its plugin, so enablement still applies to them.

These are the core's hooks. A feature declares the hooks it calls itself, in a hookspec module
of its own that its plugin module names in a ``hookspecs`` attribute (the host adds it with
``pm.add_hookspecs``): e.g. ``relais_appointment_changed``, in
``plugins/features/appointments/hookspecs.py``.

A plugin module also declares ``kind = "channel" | "regulation" | "feature"`` and describes
itself in its docstring, or in a ``description`` made with ``lazy_gettext`` so that pages show
it in the reader's language (see docs/translations.md).
"""

import pluggy

hookspec = pluggy.HookspecMarker("relais")


# ---------------------------------------------------------------------------------------------
# Channels: the providers that carry messages (SMS, voice, e-mail, push).
# ---------------------------------------------------------------------------------------------


@hookspec
def relais_register_channels():
    """Declare the delivery providers this plugin implements. Collected once at start-up.

    :return: a list of :class:`core.delivery.providers.Provider` subclasses, each with a
        ``name`` (unique across plugins: a duplicate is a start-up error) and a ``channel``
        (``"sms"``, ``"voice"``, ``"email"`` or ``"push"``).
    """


@hookspec(firstresult=True)
def relais_channel_address(tenant, patient, channel):
    """Say where a patient can receive on a channel the core does not know (push...).

    The core answers for ``"sms"``, ``"voice"`` (the patient's phone) and ``"email"``; for any
    other channel it asks the plugins, once per message and channel.
    First non-None result wins.

    :param tenant: the clinic sending.
    :param patient: the recipient (:class:`core.clinic.models.Patient`).
    :param channel: the channel of the message's plan being tried, e.g. ``"push"``.
    :return: the address handed to the provider as ``Outgoing.to`` (any string the plugin's
        provider understands, e.g. the patient's push subscriptions as JSON), or None when
        the patient cannot receive on that channel (the message falls back to the next one).
    """


@hookspec(firstresult=True)
def relais_channel_address_sql(tenant, channel):
    """Say, as an SQL condition, which patients have an address on a channel the core does
    not know (push...), for counting and selecting patients in the database (a campaign's
    segment counted per channel) rather than asking :func:`relais_channel_address` of each.
    First non-None result wins.

    :param tenant: the clinic whose patients are counted.
    :param channel: the channel, e.g. ``"push"``.
    :return: a SQLAlchemy boolean expression on :class:`core.clinic.models.Patient` (e.g. an
        ``EXISTS`` over the plugin's own table, correlated on ``Patient.id``), true for the
        patients :func:`relais_channel_address` would give an address; None when the plugin
        does not carry ``channel``.
    """


# ---------------------------------------------------------------------------------------------
# Regulations: one plugin per country, answering what the law of that country requires.
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def relais_country_profile(country_code):
    """Describe a country's locale and safety information, shown on every clinic page.

    Called when a page is rendered for a clinic of that country. First non-None result wins.

    :param country_code: ISO 3166-1 alpha-2 code of the clinic's country, e.g. ``"FR"``.
    :return: a :class:`core.regulation.CountryProfile`, or None if this plugin does not
        regulate that country.
    """


@hookspec
def relais_judge_message(tenant, patient, message, senders):
    """Judge an outgoing message before it enters the outbox (regulations).

    Called once per message, inside the transaction that writes it. Every enabled plugin is
    asked; the strictest verdict wins (deny, then defer to the latest date, then amend), and
    it is recorded with the message. A judge only judges: what it needs to know comes with
    the message; a reply it wants sent goes through the public ``send``.

    :param tenant: the clinic sending it.
    :param patient: the recipient (:class:`core.clinic.models.Patient`), or None for a code sent to
        a phone number no patient record holds yet (``message.address``; transactional
        purposes only).
    :param message: the :class:`core.delivery.models.Message` about to be written: ``purpose``,
        ``channels``, rendered ``content``, ``not_before``.
    :param senders: who it would come from: for each channel of ``message.channels``, a list
        of ``(provider, sender)``, one per route of the clinic's country that may carry it,
        best first; ``sender`` is the provider's sender for the message's purpose (an SMS
        sender ID or number, e.g. the promotional short code for a campaign), or None.
    :return: a :class:`core.regulation.Verdict`, or None to allow.
    """


@hookspec
def relais_consent_recorded(tenant, patient, consent):
    """React to a step of a patient's consent, in the transaction that records it.

    E.g. where double opt-in applies, ask the patient to confirm a consent just given.

    :param tenant: the clinic.
    :param patient: the patient (:class:`core.clinic.models.Patient`).
    :param consent: the step (:class:`core.clinic.models.Consent`): ``channel``, ``action``
        (given, confirmed, withdrawn), ``method``, ``actor``.
    """


@hookspec(firstresult=True)
def relais_retention_policy(country_code):
    """Say how long a country keeps what the outbox stores about its clinics' messages.

    Asked by the retention job (``relais purge``, and the worker once a day) for each country
    with clinics. First non-None result wins; without any, the core's default applies
    (:data:`core.regulation.DEFAULT_RETENTION`).

    :param country_code: ISO 3166-1 alpha-2 code, e.g. ``"DE"``.
    :return: a :class:`core.regulation.Retention`, or None if this plugin does not regulate
        that country.
    """


@hookspec
def relais_country_warnings(country_code):
    """Say what stops a country's clinics from sending as they should, for its operator.

    Shown on the operator console's pages of that country (e.g. "the SMS sender ID INFO is
    generic: French operators refuse it"). Asked of every installed plugin enabled there.

    :param country_code: ISO 3166-1 alpha-2 code, e.g. ``"IT"``.
    :return: a list of sentences for the operator (empty when all is well).
    """


# ---------------------------------------------------------------------------------------------
# Features: pages, commands and reactions built on the core.
# ---------------------------------------------------------------------------------------------


@hookspec
def relais_register_blueprints():
    """Give the Flask blueprints of a feature. Collected once at start-up.

    The core mounts them on every clinic subdomain; on a clinic where the plugin is not
    enabled, their routes answer 404.

    :return: a list of :class:`flask.Blueprint`.
    """


@hookspec
def relais_register_console_pages():
    """Give a feature's pages for operators, in the operator console. Collected once at
    start-up.

    The core mounts each page's blueprint on the console's subdomain
    (``operator.<domain>``), behind the console's own door: operators only (anyone else gets
    a 404), in the system scope (every clinic's rows visible: enter one clinic's scope to act
    for it). Its forms carry the CSRF token as every page's do, and its templates extend
    ``console/layout.html``. Each page's ``label`` and ``endpoint`` make an entry of the
    console's navigation.

    :return: a list of :class:`core.plugins.ConsolePage`.
    """


@hookspec
def relais_seed_demo(tenant):
    """Add a feature's sample data to the demo clinic (``relais demo``).

    Called in the clinic's scope after its staff and patients exist, each time the demo is
    set up: add only what is missing, so that running it again changes nothing.

    :param tenant: the demo clinic (:class:`tenants.models.Tenant`).
    """


@hookspec
def relais_register_commands(cli):
    """Add click commands to the ``relais`` command line. Called once at start-up.

    :param cli: the ``relais`` click group; add commands with ``@cli.command()``.
    """


@hookspec
def relais_plugin_settings():
    """Declare the settings an operator can set for this plugin, per country.

    The core renders them in the operator console, validates them with each setting's
    ``parse`` function and stores them encrypted. A setting declared with ``clinic=True`` may
    also be chosen by each clinic for itself, on its admins' *Messaging rules* page. Read them
    with :func:`core.clinic.settings.plugin_setting` (the clinic's choice, else the country's
    value). Called once per app, at the first use of a setting: the declarations are kept.

    :return: a list of :class:`core.clinic.settings.Setting`.
    """


@hookspec
def relais_menu_items(tenant, user):
    """Add entries to a clinic's navigation menu. Called on every page of a clinic.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param user: the staff member viewing the page (:class:`core.clinic.models.User`).
    :return: a list of :class:`core.plugins.MenuItem`.
    """


@hookspec
def relais_patient_actions(tenant, user, patient):
    """Add buttons to a patient's file, the page staff open on a patient (e.g. "Write to
    this patient"). Called each time staff view the file.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param user: the staff member viewing it (:class:`core.clinic.models.User`).
    :param patient: the patient (:class:`core.clinic.models.Patient`).
    :return: a list of :class:`core.plugins.MenuItem` whose endpoints are routes of the
        plugin's blueprint taking the patient's id as ``patient_id``; ``roles`` limits who
        sees each.
    """


@hookspec
def relais_dashboard_items(tenant, user, day):
    """Add the work that waits for the staff to the clinic's home page (its "today" board).

    Called each time a staff member opens the home page, in the clinic's scope, next to the
    core's own cards (messages that failed or were refused, online sign-ups to check): a
    feature adds what it leaves to the staff, e.g. today's appointments and their
    confirmations, or unread replies of patients. Keep it to a couple of queries.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param user: the staff member viewing the page (:class:`core.clinic.models.User`).
    :param day: today in the clinic's time zone (:class:`datetime.date`).
    :return: a list of :class:`core.plugins.DashboardItem` (each with up to a few
        :class:`core.plugins.DashboardLine`, whose buttons, :class:`core.plugins.DashboardAction`,
        POST to the plugin's routes), or None.
    """


@hookspec
def relais_patient_links(tenant, patient):
    """Add links to a patient's own home page (``/me/``), under their clinic's name, below
    its cards (see ``relais_patient_home_cards``, for what needs more than a link).

    Called when a patient with a session of their own views the page; the endpoints are
    routes of the plugin's blueprint marked ``relais_public``, which check the patient's
    session themselves (:func:`core.web.patient.patient_required`).

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param patient: the patient viewing the page (:class:`core.clinic.models.Patient`).
    :return: a list of :class:`core.plugins.MenuItem`.
    """


@hookspec
def relais_patient_home_cards(tenant, patient):
    """Add cards to a patient's own home page (``/me/``): what the plugin keeps for them,
    e.g. their coming appointments with buttons to confirm or cancel, their conversations.

    Called when a patient with a session of their own views the page, in the clinic's scope,
    next to the core's own card (their consent per channel). Keep it to a couple of queries.
    Links and buttons lead to routes of the plugin's blueprint marked ``relais_public``,
    which check the patient's session themselves (:func:`core.web.patient.patient_required`)
    and that what they act on is the patient's own; a button
    (:class:`core.plugins.DashboardAction`) is a POST form with its CSRF token, and its
    route answers with a redirect (``url_for("patient.home")`` with a flashed sentence).

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param patient: the patient viewing the page (:class:`core.clinic.models.Patient`).
    :return: a list of :class:`core.plugins.DashboardItem` (``order`` places them: the
        appointments come at 10, the conversations at 20, the consents at 50), or None.
    """


@hookspec
def relais_patient_sign_in_links(tenant):
    """Offer ways in to a patient without a session, on the page that asks them to log in.

    Called when a patient page of a clinic is opened without a patient session.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :return: a list of :class:`core.plugins.MenuItem` whose endpoints are public routes of
        the plugin's blueprint (``relais_public``).
    """


@hookspec(firstresult=True)
def relais_activation_step(tenant, user):
    """Say what a new staff member must do before enrolling their authenticator app.

    Called at each login of a staff account whose app is not enrolled yet, after its
    password, and again before the enrolment page is shown: while a step is returned, the
    account cannot enrol (e.g. prove its phone by a code). First non-None result wins.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param user: the account (:class:`core.clinic.models.User`), not logged in yet; the step's page
        finds it with :func:`core.web.auth.pending_account`.
    :return: the URL of the step's page, or None when nothing is left to do.
    """


@hookspec
def relais_template_variables(tenant):
    """Add variables to the Jinja context of every page of a clinic.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :return: a dict of variable names to values; later plugins cannot override a name an
        earlier one set.
    """


@hookspec
def relais_message_status_changed(tenant, message_id, status, at):
    """React to a message's status change (scheduled, pending, sent, delivered, expired...).

    Called once per change, whatever caused it (the outbox, a worker, the sweeper, a delivery
    receipt, a cancellation), after the transaction holding it commits, in the clinic's
    scope; a change rolled back is never announced. The changes a message may make are
    listed in :data:`core.delivery.lifecycle.TRANSITIONS`; a worker's claim (``sending``) is
    not announced: its outcome is.

    :param tenant: the clinic the message belongs to.
    :param message_id: the message's opaque id (UUID).
    :param status: the new status, e.g. ``"delivered"``.
    :param at: when the change happened (aware UTC datetime); for a delivery, when the
        provider reports the patient received it.
    """


@hookspec
def relais_message_statuses_changed(tenant, changes):
    """React to a clinic's status changes committed together, in one call (bulk listeners).

    Called after ``relais_message_status_changed`` was called for each of them, with the same
    changes, once per clinic and commit, in the clinic's scope: a listener that writes a row per
    change writes them all in one statement here. Whatever it writes, it commits itself (the
    transaction that made the changes is over).

    :param tenant: the clinic the messages belong to.
    :param changes: the changes in the order they were made, a list of
        :class:`core.delivery.lifecycle.StatusChange` (``message_id``, ``status``, ``at``, as
        ``relais_message_status_changed`` gets them).
    """


@hookspec
def relais_inbound_received(tenant, reply_id, patient_id, channel, at, handled_by):
    """Observe a patient's inbound reply once it is stored (after ``relais_handle_inbound``).

    Called once per reply (a provider's retry of one is not a new reply), inside the
    transaction that stores it: what a listener writes commits with the reply, or not at all.
    For observing (a log, a callback to the clinic's software), not handling: use
    ``relais_handle_inbound`` to act on the text.

    :param tenant: the clinic the reply is addressed to.
    :param reply_id: the stored reply's opaque id (UUID).
    :param patient_id: the patient it came from, or None if the sender is unknown.
    :param channel: the channel it came by, e.g. ``"sms"``.
    :param at: when the patient sent it (aware UTC datetime).
    :param handled_by: what the feature that handled it said it did, or None.
    """


@hookspec
def relais_sweep(now):
    """Do a plugin's periodic work: called by the sweeper on each pass (about every second).

    One sweeper works per pass in the whole deployment (beside a worker, or the demo server),
    in the system scope (every clinic's rows are visible), after the core's own steps. Keep it
    short and bounded: claim what is due (``FOR UPDATE SKIP LOCKED``), commit, and hand the
    slow part (network calls) to jobs with :func:`run_later`. An exception is logged and
    the next pass runs again.

    :param now: the pass's time (aware UTC datetime).
    """


@hookspec(firstresult=True)
def relais_handle_inbound(tenant, patient, channel, text):
    """Handle a patient's inbound reply (an SMS "OUI", "STOP"...). First non-None result wins.

    :param tenant: the clinic the reply is addressed to.
    :param patient: the patient it came from (:class:`core.clinic.models.Patient`), or None if the
        sender is unknown.
    :param channel: the channel it came by, e.g. ``"sms"``.
    :param text: the reply's text.
    :return: a short description of what was done (kept with the reply), or None to let the
        next plugin try; unhandled replies are kept for staff.
    """
