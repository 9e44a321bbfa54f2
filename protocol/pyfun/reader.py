"""Typed access to one section's values for pass 2, recording which keys were used and
how an original hub's spellings were read."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from protocol.pyfun.lexing import Section, Value
from protocol.pyfun.typed import PyfunError


class Reader:
    """Typed access to one section's values; records which keys were used."""

    def __init__(self, section: Section, source: str) -> None:
        self.section = section
        self.source = source
        self.used: set[str] = set()
        self.warnings: list[str] = []
        self.translations: list[str] = []

    def _get(self, key: str) -> Value | None:
        """The value of `key`; None when absent or written `""` (the original's "unset")."""
        self.used.add(key)
        value = self.section.values.get(key)
        if value is None or not value.text.strip():
            return None
        if value.spelled:
            self.translate(key, f"read as {key}")
        return value

    def where(self, key: str) -> str:
        value = self.section.values.get(key)
        return f"{self.source}:{value.line if value else self.section.line}"

    def spelled(self, key: str) -> str:
        value = self.section.values.get(key)
        return value.spelled if value and value.spelled else key

    def has(self, key: str) -> bool:
        value = self.section.values.get(key)
        return value is not None and bool(value.text.strip())

    def translate(self, key: str, what: str) -> None:
        """Record how an original hub's key was read, for `config check`."""
        note = f"{self.where(key)}: [{self.section.title}] {self.spelled(key)}: {what}"
        if note not in self.translations:
            self.translations.append(note)

    def warn(self, key: str, why: str) -> None:
        self.warnings.append(
            f"{self.where(key)}: [{self.section.title}] {self.spelled(key)} ignored: {why}"
        )

    def ignore(self, key: str, why: str) -> None:
        """A key of the original hub that SealGate does without: one warning saying why."""
        self.used.add(key)
        if self.has(key):
            self.warn(key, why)

    def decimal(self, key: str) -> Decimal | None:
        """A non-negative decimal kept exact (costs are converted between units with it)."""
        value = self._get(key)
        if value is None:
            return None
        try:
            number = Decimal(value.text.strip())
        except InvalidOperation:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be a number"
            ) from None
        if not number.is_finite() or number < 0 or number > Decimal("1e12"):
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be between 0 and 1e12"
            )
        return number

    def error(self, key: str, problem: str) -> PyfunError:
        value = self.section.values.get(key)
        return PyfunError(self.source, value.line if value else self.section.line, problem)

    def string(self, key: str, default: str = "") -> str:
        """A one-line value (a name, a URL): one spanning lines is refused here; free text
        (`raw`) and comma lists (`names`) may span lines."""
        value = self._get(key)
        if value is None:
            return default
        text = value.text.strip()
        if "\n" in text:
            raise PyfunError(self.source, value.line, f"{self.spelled(key)} must be one line")
        return text

    def raw(self, key: str, default: str = "") -> str:
        value = self._get(key)
        return value.text if value else default

    def names(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        return tuple(item.strip() for item in value.text.split(",") if item.strip())

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        text = value.text.strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise PyfunError(self.source, value.line, f'{self.spelled(key)} must be "true" or "false"')

    def integer(
        self, key: str, default: int | None, *, low: int = 0, high: int = 2**53
    ) -> int | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = int(value.text.strip().replace("_", ""))
        except ValueError:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be a whole number"
            ) from None
        if not low <= number <= high:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be between {low} and {high}"
            )
        return number

    def number(
        self, key: str, default: float | None, *, low: float = 0.0, high: float = 1e12
    ) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = float(value.text.strip())
        except ValueError:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be a number"
            ) from None
        if not low <= number <= high or number != number:
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be between {low:g} and {high:g}"
            )
        return number

    def choice(self, key: str, choices: frozenset[str], default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        text = value.text.strip().lower()
        if text not in choices:
            allowed = ", ".join(sorted(choices))
            raise PyfunError(
                self.source, value.line, f"{self.spelled(key)} must be one of: {allowed}"
            )
        return text

    def unused_warnings(self) -> list[str]:
        return [
            *self.warnings,
            *(
                f"{self.source}:{value.line}: unknown key {value.spelled or key!r} in"
                f" [{self.section.kind}] (ignored)"
                for key, value in self.section.values.items()
                if key not in self.used
            ),
        ]
