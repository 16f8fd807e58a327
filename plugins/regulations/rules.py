"""What the built-in country plugins share: a country's rules as data, one way to apply them.

A country plugin (``plugins/regulations/<cc>/plugin.py``) is data: its ``hooks`` is a
:class:`CountryRules`, whose methods implement the regulation hooks (the plugin host registers
a module's ``hooks`` object in its place). The rules, in the order they apply to an
outgoing message (see docs/regulations.md):

1. Non-essential messages (campaigns, news) are never voice calls.
2. They go only by channels where the patient's consent counts (given, and confirmed where
   the country wants double opt-in); an opt-out (STOP, a link) ends them.
3. SMS senders: at most 11 Latin letters and digits, or a number; a country may refuse some
   (France: generic names, mobile numbers) or accept only registered ones (Italy).
4. A country may require a STOP mention at the end of non-essential SMS (France); a
   non-essential e-mail ends with an opt-out link.
5. SMS, push and voice carry no health details unless the clinic allows it.
6. Non-essential messages wait for allowed hours in the patient's time zone (quiet hours).

Transactional messages (codes, reminders, replies) need no consent and are never deferred.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import time, timedelta

import holidays
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    ConsentAction,
    ConsentMethod,
    CountryProfile,
    Phrase,
    QuietHours,
    Retention,
    Setting,
    Verdict,
    configured_routes,
    consent_link,
    consent_state,
    country_settings,
    declared_provider,
    hookimpl,
    is_transactional,
    phrase_date,
    plugin_setting,
    record_consent,
    send,
    utcnow,
    yes_no,
)

SENDER_ID = re.compile(r"[A-Za-z0-9]{1,11}")  # an alphanumeric sender, where one is allowed
PHONE_SENDER = re.compile(r"\+?\d{3,15}")  # a short code or a long number: it can take replies
SHORT_CODE = re.compile(r"\d{3,8}")
TEXT_CHANNELS = ("sms", "push", "voice")  # where health details must not appear
LATEST_END = time(22)  # the French operators' 2024 charter allows business SMS until 22:00


@dataclass(frozen=True, eq=False)  # a plugin: compared and hashed as itself (pluggy's sets)
class CountryRules:
    """One country's rules. Defaults of the settings are cited in each plugin's docstring.

    :param name: the country's name in the reasons given to staff ("quiet hours in France").
    :param stop_words: replies that end non-essential messages (compared without accents).
    :param confirm_words: replies that confirm a consent awaiting confirmation.
    :param stop_mention: non-essential SMS end with the operator's STOP mention setting.
    :param refused_senders: sender IDs the country's operators refuse (generic names).
    :param mobile_sender_prefixes: national mobile numbers refused as senders (as E.164).
    :param registered_senders: SMS senders must be among the operator's registered ones.
    """

    country: str
    plugin: str
    name: str
    profile: CountryProfile
    stop_words: tuple[str, ...]
    confirm_words: tuple[str, ...] = ()
    stop_mention: bool = False
    refused_senders: frozenset[str] = frozenset()
    mobile_sender_prefixes: tuple[str, ...] = ()
    registered_senders: bool = False
    quiet_hours: QuietHours = QuietHours()
    retention: Retention = Retention(timedelta(days=365), timedelta(days=3 * 365))

    # --- hooks ------------------------------------------------------------------------------

    @hookimpl
    def relais_country_profile(self, country_code):
        return self.profile if country_code == self.country else None

    @hookimpl
    def relais_plugin_settings(self):
        found = [
            Setting(
                "quiet_start",
                _l("Non-essential messages from"),
                default=self.quiet_hours.start.strftime("%H:%M"),
                parse=_parse_time,
                help=_l("First minute of the day they may reach patients, e.g. 08:00."),
            ),
            Setting(
                "quiet_end",
                _l("Non-essential messages until"),
                default=self.quiet_hours.end.strftime("%H:%M"),
                parse=_parse_end,
                help=_l("From this minute they wait for the next allowed day, e.g. 20:00."),
            ),
            Setting(
                "holidays_region",
                _l("Public holidays of the region"),
                parse=self._parse_region,
                help=_l("Leave empty for national holidays; a region code adds its own."),
            ),
            Setting(
                "health_details",
                _l("Health details in SMS, push and voice"),
                default=False,
                parse=yes_no,
                clinic=True,
                help=_l(
                    "Yes lets texts carry the reason of a visit, a specialty or results; "
                    "otherwise they are left out of these channels."
                ),
            ),
            Setting(
                "content_retention_days",
                _l("Keep message contents (days)"),
                default=self.retention.contents.days,
                parse=_parse_days,
            ),
            Setting(
                "record_retention_days",
                _l("Keep delivery records (days)"),
                default=self.retention.records.days,
                parse=_parse_days,
            ),
        ]
        if self.stop_mention:
            found.append(
                Setting(
                    "stop_mention",
                    _l("STOP mention"),
                    parse=_parse_stop_mention,
                    help=_l("Ends every non-essential SMS, e.g. STOP au 36180."),
                )
            )
        if self.registered_senders:
            found.append(
                Setting(
                    "registered_senders",
                    _l("Registered sender IDs"),
                    parse=_parse_sender_list,
                    help=_l("Those registered in the national alias registry, comma-separated."),
                )
            )
        return found

    @hookimpl
    def relais_retention_policy(self, country_code):
        if country_code != self.country:
            return None
        values = country_settings(country_code, self.plugin)
        return Retention(
            contents=timedelta(
                days=values.get("content_retention_days", self.retention.contents.days)
            ),
            records=timedelta(
                days=values.get("record_retention_days", self.retention.records.days)
            ),
        )

    @hookimpl
    def relais_judge_message(self, tenant, patient, message, senders):
        """Apply the country's rules to a message (see the module's docstring)."""
        if tenant.country_code != self.country:
            return None
        essential = is_transactional(message.purpose)
        plan = list(message.channels)
        text = message.content["text"]
        reasons, rule = [], None

        def drop(channels, why, name):
            nonlocal plan, rule
            kept = [c for c in plan if c not in channels]
            if kept != plan:
                plan, rule = kept, rule or name
                reasons.append(why)

        if not essential:
            drop(("voice",), Phrase(_l("no calls for non-essential messages")), "no_voice")
            refused = self._without_consent(patient, plan)
            for channel, why in refused.items():
                drop((channel,), why, "consent")
        if "sms" in plan:
            problem = self._sender_problem(tenant, senders.get("sms", ()))
            if problem:
                drop(("sms",), problem, "sender")
        mention = None
        if not essential and "sms" in plan and self.stop_mention:
            mention = plugin_setting(tenant, self.plugin, "stop_mention")
            if not mention:
                why = Phrase(_l("set the STOP mention of %(country)s first"), country=self.name)
                drop(("sms",), why, "stop_mention")
        if not plan:
            return Verdict("deny", reasons=tuple(reasons), rule=rule)
        if mention:
            text = f"{text}\n{mention}"
            reasons.append(Phrase(_l("STOP mention added")))
            rule = rule or "stop_mention"
        if not essential and plan[0] == "email":
            link = consent_link(tenant, patient, "email", ConsentAction.WITHDRAWN)
            with force_locale(patient.language):  # the patient reads it
                stop = _("To stop these messages: %(link)s", link=link)
            text = f"{text}\n\n{stop}"
            reasons.append(Phrase(_l("opt-out link added")))
            rule = rule or "opt_out_link"
        discreet = message.content.get("discreet")
        if (
            discreet is not None
            and any(c in TEXT_CHANNELS for c in plan)
            and not plugin_setting(tenant, self.plugin, "health_details")
        ):
            text = discreet + text[len(message.content["text"]) :]  # keep a STOP mention
            reasons.append(Phrase(_l("health details left out of SMS, push and voice")))
            rule = rule or "health_details"
        until = None if essential else self._after_quiet_hours(tenant, patient, message)
        amended = {
            "text": text if text != message.content["text"] else None,
            "channels": tuple(plan) if plan != list(message.channels) else None,
        }
        if until is not None:
            reasons.insert(0, Phrase(_l("quiet hours in %(country)s"), country=self.name))
            return Verdict(
                "defer", until=until, reasons=tuple(reasons), rule="quiet_hours", **amended
            )
        if reasons:
            return Verdict("amend", reasons=tuple(reasons), rule=rule, **amended)
        return None

    @hookimpl
    def relais_handle_inbound(self, tenant, patient, channel, text):
        """STOP words opt the patient out of that channel (confirmed once); where a consent
        awaits confirmation, the confirm words confirm it."""
        if tenant.country_code != self.country or patient is None:
            return None
        word = _normalized(text)
        if word in self.stop_words:
            step = record_consent(
                patient, channel, ConsentAction.WITHDRAWN, ConsentMethod.SMS_REPLY, "patient"
            )
            if step is not None:
                self._tell(tenant, patient, channel, "opted_out")
            return f"opt-out ({word})"
        if word in self.confirm_words and consent_state(patient, channel).status == "given":
            record_consent(
                patient, channel, ConsentAction.CONFIRMED, ConsentMethod.SMS_REPLY, "patient"
            )
            self._tell(tenant, patient, channel, "confirmed")
            return f"consent confirmed ({word})"
        return None

    @hookimpl
    def relais_consent_recorded(self, tenant, patient, consent):
        """Double opt-in: a consent just given is confirmed by the patient before it counts."""
        if (
            tenant.country_code == self.country
            and self.profile.double_opt_in
            and consent.action == ConsentAction.GIVEN
        ):
            self._tell(tenant, patient, consent.channel, "confirm")

    @hookimpl
    def relais_country_warnings(self, country_code):
        """What in the country's SMS routes breaks its rules, for the operator."""
        if country_code != self.country:
            return []
        found = []
        for route in configured_routes(country_code):
            if route.channel != "sms":
                continue
            plugin = declared_provider(route.provider).plugin
            values = country_settings(country_code, plugin)
            for key in ("sender", "promotional_sender"):
                sender = values.get(key)
                if not sender:
                    continue
                problem = self._sender_rule(country_code, sender)
                if problem:
                    found.append(f"{route.provider}: {problem}")
                elif not PHONE_SENDER.fullmatch(sender):
                    found.append(
                        _(
                            "%(provider)s: patients cannot reply to %(sender)s (OUI, STOP): "
                            "two-way SMS needs a short code or a long number.",
                            provider=route.provider,
                            sender=sender,
                        )
                    )
        return found

    # --- the rules ---------------------------------------------------------------------------

    def _without_consent(self, patient, plan) -> dict[str, Phrase]:
        """The channels of ``plan`` the patient's consent does not open, and why."""
        refused = {}
        for channel in plan:
            state = consent_state(patient, channel)
            if state.counts(self.profile.double_opt_in):
                continue
            if state.status == ConsentAction.WITHDRAWN:
                refused[channel] = Phrase(
                    _l("the patient opted out of %(channel)s on %(date)s"),
                    channel=channel_name(channel),
                    date=phrase_date(state.at.date()),
                )
            elif state.status == ConsentAction.GIVEN:
                refused[channel] = Phrase(
                    _l(
                        "the patient has not confirmed their consent to %(channel)s yet "
                        "(double opt-in in %(country)s)"
                    ),
                    channel=channel_name(channel),
                    country=self.name,
                )
            else:
                refused[channel] = Phrase(
                    _l("no consent of the patient to non-essential messages by %(channel)s"),
                    channel=channel_name(channel),
                )
        return refused

    def _sender_problem(self, tenant, senders) -> Phrase | None:
        """Why one of the SMS ``senders`` (``(provider, sender)``, given with the message)
        may not send in this country, or None."""
        for _provider, sender in senders:
            problem = sender and self._sender_rule(tenant.country_code, sender)
            if problem:
                return problem
        return None

    def _sender_rule(self, country_code, sender: str) -> Phrase | None:
        """Why ``sender`` may not send in this country, or None."""
        if sender.upper().startswith("MG") and len(sender) == 34:
            return None  # a Twilio Messaging Service: its numbers are checked at Twilio
        if PHONE_SENDER.fullmatch(sender):
            e164 = sender if sender.startswith("+") else None
            if e164 and e164.startswith(self.mobile_sender_prefixes):
                return Phrase(
                    _l(
                        "the sender %(sender)s is a mobile number: %(country)s forbids them for "
                        "automated messages"
                    ),
                    sender=sender,
                    country=self.name,
                )
        elif not SENDER_ID.fullmatch(sender):
            return Phrase(
                _l("the sender ID %(sender)s is not 1 to 11 Latin letters and digits"),
                sender=sender,
            )
        elif sender.upper() in self.refused_senders:
            return Phrase(
                _l("the sender ID %(sender)s is generic: operators in %(country)s refuse it"),
                sender=sender,
                country=self.name,
            )
        if self.registered_senders:
            registered = country_settings(country_code, self.plugin).get("registered_senders") or []
            if sender not in registered:
                return Phrase(
                    _l(
                        "the sender %(sender)s is not registered in the national alias "
                        "registry of %(country)s"
                    ),
                    sender=sender,
                    country=self.name,
                )
        return None

    def _after_quiet_hours(self, tenant, patient, message):
        def setting(name):
            return plugin_setting(tenant, self.plugin, name)

        hours = QuietHours(
            start=time.fromisoformat(setting("quiet_start")),
            end=time.fromisoformat(setting("quiet_end")),
            days=self.quiet_hours.days,
        )
        due = message.not_before or utcnow()
        allowed = hours.next_allowed(
            due, patient.timezone, self.country, setting("holidays_region")
        )
        return allowed if allowed > due else None

    def _tell(self, tenant, patient, channel, what: str) -> None:
        """Tell the patient their opt-out or confirmation was recorded, or ask them to confirm,
        by the channel it concerns, in their language."""
        with force_locale(patient.language):
            by = channel_name(channel).render()
            if what == "opted_out":
                text = _(
                    "%(clinic)s: you will no longer receive news or campaigns by %(channel)s. "
                    "Reminders and codes still come.",
                    clinic=tenant.name,
                    channel=by,
                )
            elif what == "confirmed":
                text = _("%(clinic)s: thank you, your consent is confirmed.", clinic=tenant.name)
            else:
                link = consent_link(tenant, patient, channel, ConsentAction.CONFIRMED)
                words = " / ".join(self.confirm_words)
                text = _(
                    "%(clinic)s: please confirm that you want news from us by %(channel)s: "
                    "reply %(words)s or open %(link)s",
                    clinic=tenant.name,
                    channel=by,
                    words=words,
                    link=link,
                )
        _reply(tenant, patient, channel, text)

    def _parse_region(self, text: str) -> str:
        regions = {
            code.upper(): code for code in holidays.country_holidays(self.country).subdivisions
        }
        code = regions.get(text.strip().upper())
        if code is None:
            raise ValueError(_("One of: %(codes)s.", codes=", ".join(regions.values())))
        return code


def channel_name(channel: str) -> Phrase:
    """A channel as reasons and replies name it, in the reader's language."""
    names = {
        "sms": _l("SMS"),
        "email": _l("e-mail"),
        "push": _l("notification"),
        "voice": _l("phone call"),
    }
    return Phrase(names.get(channel, channel))


def _reply(tenant, patient, channel: str, text: str) -> None:
    """Send the patient a reply through the outbox: the only message a regulation sends,
    judged like any other (the one call of ``send`` in this module)."""
    # The text goes in as a variable, never as a template: a clinic's name is not Jinja.
    send(tenant, patient, "messaging", "{{ text }}", {"text": text}, (channel,))


def _normalized(text: str) -> str:
    """A reply as one upper-case word without accents: " Arrêt. " -> "ARRET"."""
    word = unicodedata.normalize("NFKD", text.strip().strip(".!").upper())
    return "".join(c for c in word if not unicodedata.combining(c))


def _parse_time(text: str) -> str:
    try:
        return time.fromisoformat(text.strip()).strftime("%H:%M")
    except ValueError:
        raise ValueError(_("A time such as 08:00.")) from None


def _parse_end(text: str) -> str:
    end = _parse_time(text)
    if time.fromisoformat(end) > LATEST_END:
        raise ValueError(_("At the latest %(time)s.", time=LATEST_END.strftime("%H:%M")))
    return end


def _parse_days(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 36500:
        raise ValueError(_("A number of days, from 1."))
    return int(text)


def _parse_stop_mention(text: str) -> str:
    mention = " ".join(text.split())
    number = mention.rsplit(" ", 1)[-1]
    if not mention.upper().startswith("STOP") or not SHORT_CODE.fullmatch(number):
        raise ValueError(_("STOP and the opt-out short code, e.g. STOP au 36180."))
    return mention


def _parse_sender_list(text: str) -> list[str]:
    found = [s.strip() for s in text.split(",") if s.strip()]
    if not found or any(not (SENDER_ID.fullmatch(s) or PHONE_SENDER.fullmatch(s)) for s in found):
        raise ValueError(_("Sender IDs of 1 to 11 letters and digits, comma-separated."))
    return found
