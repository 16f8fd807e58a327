"""A plugin made only of wrappers: it sees, and adds to, what the other plugins answer."""

from core import hookimpl

kind = "feature"
seen: list[tuple[str, object]] = []  # (hook, what the wrapped call answered or raised)


@hookimpl(wrapper=True)
def relais_template_variables(tenant):
    variables = yield
    seen.append(("relais_template_variables", list(variables)))
    return [*variables, {"watched": len(variables)}]


@hookimpl(wrapper=True)
def relais_country_warnings(country_code):
    answers = yield  # [one plugin's sentences]: the core asks the plugins in turn
    seen.append(("relais_country_warnings", answers))
    return [[*sentences, f"checked in {country_code}"] for sentences in answers]


@hookimpl(wrapper=True)
def relais_handle_inbound(tenant, patient, channel, text):
    try:
        return (yield)
    except Exception as exc:
        seen.append(("relais_handle_inbound", exc))
        raise
