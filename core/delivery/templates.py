"""Message templates: Jinja's immutable sandbox, bounded in size and in work.

Templates are text that staff, clinics and API clients write, rendered in the web process
and the workers: a template must not hold a worker for seconds nor fill the outbox with
megabytes. So the sandbox counts its work: every loop iteration and every call takes a
step from a budget, checked against a deadline too; ``*``, ``**`` and ``%`` refuse results
beyond a size; calls and filters refuse sizes beyond it, in their arguments and results;
the source and the output have their own limits. Jinja's ``range`` is bounded already;
``namespace`` (state that outlives a loop's iteration) and ``lipsum`` are taken away, and
the immutable sandbox forbids growing a list in place.
"""

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_SOURCE = 20_000  # characters of one template
MAX_OUTPUT = 100_000  # characters one template renders to
MAX_SIZE = 100_000  # characters or items of a value computed in a template
MAX_PRODUCT = 1_000_000  # a call's receiver's size times its largest argument's (a replace)
MAX_BITS = 4096  # bits of a whole number computed in a template
MAX_STEPS = 10_000  # loop iterations and calls in one rendering
MAX_SECONDS = 0.25  # one rendering's time, checked at each step
# A width or precision of 10,000 or more in a %-format or a str.format spec.
_WIDE_FORMAT = re.compile(r"%[^a-zA-Z%]*\d{5,}|\{[^{}]*:[^{}]*\d{5,}")


class TooCostly(SecurityError):
    """A template that would take more work or memory than any message needs."""


@dataclass
class _Budget:
    steps: int
    deadline: float


_budget: ContextVar[_Budget | None] = ContextVar("relais_template_budget", default=None)


def _step() -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget.steps -= 1
    if budget.steps < 0 or time.monotonic() > budget.deadline:
        raise TooCostly("the template does too much work")


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    return 0


def _check_arguments(receiver: Any, args: Iterable[Any]) -> None:
    """Refuse a call whose arguments ask for a result beyond the limits."""
    largest = 1
    for arg in args:
        if isinstance(arg, int) and abs(arg) > MAX_SIZE:
            raise TooCostly(f"{arg} is too large a number here")
        largest = max(largest, _size(arg))
    if _size(receiver) * largest > MAX_PRODUCT:
        raise TooCostly("the result would be too large")


def _check_result(value: Any) -> Any:
    if _size(value) > MAX_SIZE:
        raise TooCostly("a value is too large")
    return value


def _check_format(text: Any) -> None:
    if isinstance(text, str) and _WIDE_FORMAT.search(text):
        raise TooCostly("a format width is too large")


def _bounded_filter(name: str, function: Callable) -> Callable:
    """A filter that takes a step, refuses sizes beyond the limits, and checks its result."""
    skip = 1 if getattr(function, "jinja_pass_arg", None) else 0  # context or environment

    @functools.wraps(function)  # keeps jinja_pass_arg
    def bounded(*args, **kwargs):
        _step()
        value, rest = (args[skip], args[skip + 1 :]) if len(args) > skip else (None, ())
        _check_arguments(value, [*rest, *kwargs.values()])
        if name == "format":
            _check_format(value)
        return _check_result(function(*args, **kwargs))

    return bounded


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox that counts its work and bounds its sizes."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("namespace", "lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Each ``{% for %}`` iterates through :meth:`counted`; recursive loops are refused
        (their inner calls would escape the count)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise TemplateSyntaxError("recursive loops are not allowed", loop.lineno)
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("counted"), [loop.iter], [], None, None
            ).set_lineno(loop.lineno)
        return tree

    @staticmethod
    def counted(iterable: Iterable[Any]) -> Iterator[Any]:
        """The items of a loop, each taking a step of the budget."""
        for item in iterable:
            _step()
            yield item

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_BITS:
                    raise TooCostly("a number is too large")
            elif (
                _size(left) * (right if isinstance(right, int) else 0) > MAX_SIZE
                or _size(right) * (left if isinstance(left, int) else 0) > MAX_SIZE
            ):
                raise TooCostly("the result would be too large")
        elif operator == "**":
            whole = isinstance(left, int) and isinstance(right, int)
            if whole and right > 0 and max(left.bit_length(), 1) * right > MAX_BITS:
                raise TooCostly("a number is too large")
        elif operator == "%":
            if isinstance(left, str):
                _check_format(left)
                _check_arguments(None, right if isinstance(right, tuple) else (right,))
        elif operator == "+" and _size(left) + _size(right) > MAX_SIZE:
            raise TooCostly("the result would be too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's signature)
        _step()
        receiver = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        _check_arguments(receiver, [*args, *kwargs.values()])
        if getattr(__obj, "__name__", "") in ("format", "format_map"):
            _check_format(receiver)
        return _check_result(super().call(__context, __obj, *args, **kwargs))


_text_env = BoundedEnvironment(autoescape=False)
_html_env = BoundedEnvironment(autoescape=True)


class TemplateTooLong(ValueError):
    """A template's source or output beyond its limit (``limit`` characters)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is longer than {limit} characters")
        self.what, self.limit = what, limit


def names_used(source: str) -> set[str]:
    """The variable names a template reads (``{{ patient }}`` gives ``patient``), to refuse
    unknown ones before anything is sent; a template that does not parse uses none (rendering
    it says what is wrong)."""
    try:
        return set(meta.find_undeclared_variables(_text_env.parse(source)))
    except TemplateSyntaxError:
        return set()


def render(source: str, variables: dict[str, Any], html: bool = False) -> str:
    """Render one template, bounded.

    :raises TemplateTooLong: when the source or the output is too long.
    :raises Exception: whatever the template raised (a syntax error, a division by zero,
        :class:`TooCostly`...): the caller turns it into a refusal.
    """
    if len(source) > MAX_SOURCE:
        raise TemplateTooLong("source", MAX_SOURCE)
    template = _compiled(source, html)
    token = _budget.set(_Budget(MAX_STEPS, time.monotonic() + MAX_SECONDS))
    try:
        parts, length = [], 0
        for chunk in template.generate(variables):
            length += len(chunk)
            if length > MAX_OUTPUT:
                raise TemplateTooLong("output", MAX_OUTPUT)
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)


def unknown_variables(source: str, known: Iterable[str]) -> list[str]:
    """The variables ``source`` uses that are not in ``known``, sorted (only parsed, never
    rendered); empty for a template with a syntax error, which rendering reports."""
    if len(source) > MAX_SOURCE:
        return []
    try:
        used = meta.find_undeclared_variables(_text_env.parse(source))
    except TemplateSyntaxError:
        return []
    return sorted(used - set(known))


@functools.lru_cache(maxsize=512)
def _compiled(source: str, html: bool):
    """Compile each template once per process: campaigns send one text to many."""
    template = (_html_env if html else _text_env).from_string(source)
    # Jinja copies a template's globals into each render's context; kept as its ChainMap
    # over the environment's, copying them cost two thirds of rendering a message's text.
    template.globals = dict(template.globals)
    return template
