"""Small widgets the tabs share."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette, QTextOption
from PySide6.QtWidgets import QFrame, QPlainTextEdit, QSizePolicy, QWidget

ERROR_COLOUR = "#d0342c"  # readable on the light and the dark theme


def tint(widget: QWidget, colour: str | None, role: QPalette.ColorRole) -> None:
    """The widget's text in `colour` (None: the theme's). A palette, not a style sheet: a
    widget with a style sheet keeps its font when the window's font size changes."""
    palette = QPalette()  # nothing set: all from the parent and the theme
    if colour is not None:
        palette.setColor(role, QColor(colour))
    widget.setPalette(palette)


#: A status line is this many text lines high, whatever it says.
STATUS_LINES = 3


class StatusLine(QPlainTextEdit):
    """A status or error message of any length in a fixed height: it wraps anywhere (a long
    URL or path included) and scrolls, so it never pushes the layout and never cuts itself
    off; the text can be selected and copied. `setText`/`text` as on a QLabel."""

    def __init__(self, text: str = "", objectName: str = "", parent: QWidget | None = None):
        super().__init__(parent, objectName=objectName, readOnly=True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.viewport().setAutoFillBackground(False)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        line = self.fontMetrics().lineSpacing()
        margins = self.contentsMargins()
        self.setFixedHeight(
            line * STATUS_LINES
            + 2 * int(self.document().documentMargin())
            + margins.top()
            + margins.bottom()
        )
        self.setPlainText(text)

    def setText(self, text: str) -> None:
        self.set_error(text, False)

    def text(self) -> str:
        return self.toPlainText()

    def set_error(self, text: str, error: bool) -> None:
        """The text, in the error colour when `error`."""
        self.setPlainText(text)
        self.setProperty("error", error)
        tint(self, ERROR_COLOUR if error else None, QPalette.ColorRole.Text)
