"""France's regulation plugin: clinics show the French emergency numbers on every page."""

from core.plugins import hooks_for
from tests.worlds import client_for, log_in, make_clinic, make_staff


def test_french_clinics_show_15_and_112(app, clinic_fr, admin_client):
    footer = admin_client.get("/patients").text.split("<footer>")[1]
    assert "<strong>15</strong>" in footer and "<strong>112</strong>" in footer


def test_the_profile_answers_only_for_france(app, clinic_fr):
    berlin = make_clinic(app, "berlin", "DE", plugins=("fr",))  # enabled by mistake for DE
    with app.test_request_context():
        assert hooks_for(clinic_fr).relais_country_profile(country_code="FR").locale == "fr"
        assert hooks_for(berlin).relais_country_profile(country_code="DE") is None


def test_no_emergency_line_where_no_regulation_is_enabled(app):
    berlin = make_clinic(app, "berlin", "DE", plugins=())
    client = client_for(app, "berlin")
    log_in(client, make_staff(app, berlin, "secretary"))
    assert "<strong>112</strong>" not in client.get("/").text
