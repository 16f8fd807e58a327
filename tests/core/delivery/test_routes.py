"""Operators route each channel of a country to providers, by priority then weight."""

import random
from collections import Counter

from core.delivery import routing
from core.delivery.routing import Route
from core.web.cli import main


def test_operators_set_list_and_remove_routes(app, runner):
    assert (
        runner.invoke(
            main,
            args=[
                "providers",
                "set",
                "outbox_sms",
                "--country",
                "fr",
                "--priority",
                "2",
                "--weight",
                "30",
            ],
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(main, args=["providers", "set", "outbox_email", "--country", "FR"]).exit_code
        == 0
    )
    listing = runner.invoke(main, args=["providers", "list", "--country", "FR"]).output
    assert "FR  email  outbox_email" in listing
    assert "FR  sms    outbox_sms           priority 2   weight 30" in listing

    assert (
        runner.invoke(main, args=["providers", "remove", "outbox_sms", "--country", "FR"]).exit_code
        == 0
    )
    assert "outbox_sms" not in runner.invoke(main, args=["providers", "list"]).output


def test_bad_routes_exit_2_with_a_sentence_and_change_nothing(app, runner):
    for args, words in [
        (["providers", "set", "nope_sms", "--country", "FR"], "No provider is named nope_sms"),
        (["providers", "set", "outbox_sms", "--country", "ZZ"], "Unknown country"),
        (["providers", "set", "outbox_sms", "--country", "FR", "--priority", "0"], "priority"),
        (["providers", "set", "outbox_sms", "--country", "FR", "--weight", "5000"], "weight"),
        (["providers", "remove", "outbox_sms", "--country", "FR"], "No such route"),
    ]:
        result = runner.invoke(main, args=args)
        assert result.exit_code == 2, args
        assert words in result.output, result.output
    assert runner.invoke(main, args=["providers", "list"]).output == ""


def test_priority_first_then_weight_shares_traffic(app):
    random.seed(7)
    routes = [Route("a", "p", 1, 75), Route("b", "p", 1, 25), Route("c", "p", 2, 100)]
    with app.app_context():  # as a job or a request: health factors are read there
        picks = Counter(routing.choose(routes).provider for _ in range(4000))
    assert picks["c"] == 0  # a lower priority only when the first tier is down
    assert 2850 <= picks["a"] <= 3150 and picks["a"] + picks["b"] == 4000


def test_a_route_of_weight_zero_is_a_standby(app):
    random.seed(7)
    with app.app_context():
        standby = [Route("a", "p", 1, 100), Route("b", "p", 1, 0)]
        assert {routing.choose(standby).provider for _ in range(500)} == {"a"}
        only_standbys = [Route("a", "p", 1, 0), Route("b", "p", 1, 0)]
        picks = Counter(routing.choose(only_standbys).provider for _ in range(1000))
    assert 400 <= picks["a"] <= 600 and picks["a"] + picks["b"] == 1000


def test_an_unhealthy_provider_is_skipped_until_it_cools_down(app):
    breaker = routing.CircuitBreaker(threshold=2, cooldown=60)
    original, routing.breaker = routing.breaker, breaker
    try:
        breaker.record("a", ok=False)
        breaker.record("a", ok=False)
        routes = [Route("a", "p", 1, 100), Route("c", "p", 2, 100)]
        assert routing.choose(routes).provider == "c"
    finally:
        routing.breaker = original
