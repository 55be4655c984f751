"""The ``qt`` module of Slicer's Python (PythonQt's wrapping of Qt 5), for tests.

Only the Qt classes that Slicer's DICOM Python code and our plugin touch, with the
behaviour of Qt 5 as documented (doc.qt.io/qt-5, cited per class), seen through
PythonQt: a Q_PROPERTY is read and written as an attribute (``table.rowCount``,
``box.text = ...``), enums are ints that combine with ``|``, slots are methods.
Dialogs never show: whatever would wait for a person goes to the harness's
:class:`~slicer_harness.application.User`, which records what was shown and answers.

Everything not listed here is absent on purpose, so a code path that needs more of Qt
fails loudly instead of passing through a permissive stand-in.
"""

from __future__ import annotations

import datetime
import os

#: Set by the harness: the scripted user that reads and answers dialogs.
user = None


class Qt:
    """The ``Qt`` namespace enums used (qnamespace.h)."""

    # Qt::CheckState
    Unchecked, PartiallyChecked, Checked = 0, 1, 2
    # Qt::ItemFlag
    NoItemFlags = 0
    ItemIsSelectable, ItemIsEditable, ItemIsDragEnabled = 1, 2, 4
    ItemIsDropEnabled, ItemIsUserCheckable, ItemIsEnabled = 8, 16, 32
    # Qt::Orientation
    Horizontal, Vertical = 1, 2
    # Qt::CursorShape
    ArrowCursor, WaitCursor, BusyCursor = 0, 3, 16
    # Qt::KeyboardModifier
    NoModifier, ShiftModifier = 0, 0x02000000
    # Qt::ItemDataRole
    DisplayRole, ToolTipRole, UserRole = 0, 3, 0x0100


def SIGNAL(signature: str) -> str:
    """Qt's SIGNAL() macro prefixes the normalized signature with '2' (qobjectdefs.h)."""
    return "2" + signature


class Signal:
    """PythonQt's ``qt.Signal()`` class attribute: a signal declared in Python."""

    def __init__(self, *types):
        self.types = types


class QObject:
    """Signals and slots by signature string, as PythonQt's ``connect``/``disconnect``."""

    def __init__(self, parent=None, *args, **kwargs):
        self._parent = parent
        self._connections: dict[str, list] = {}
        self.objectName = ""

    def connect(self, signal, slot):
        self._connections.setdefault(str(signal), []).append(slot)
        return True

    def disconnect(self, signal, slot=None):
        slots = self._connections.get(str(signal), [])
        if slot is None:
            slots.clear()
        elif slot in slots:
            slots.remove(slot)
        return True

    def emit(self, signal, *args):
        for slot in list(self._connections.get(str(signal), [])):
            slot(*args)

    def parent(self):
        return self._parent

    def setParent(self, parent):
        self._parent = parent

    def deleteLater(self):
        """QObject::deleteLater: the object goes when control returns to the event loop."""

    def setProperty(self, name, value):
        setattr(self, name, value)
        return True

    def property(self, name):
        return getattr(self, name, None)


class QWidget(QObject):
    """A widget that is never shown: geometry and style calls are accepted and kept."""

    def __init__(self, parent=None, *args, **kwargs):
        super().__init__(parent)
        self._layout = None
        self.visible = False
        self.enabled = True
        self.toolTip = ""
        self.windowTitle = ""

    def setLayout(self, layout):
        self._layout = layout

    def layout(self):
        return self._layout

    def show(self):
        self.visible = True

    def hide(self):
        self.visible = False

    def close(self):
        self.visible = False
        return True

    def setMinimumHeight(self, value):
        self.minimumHeight = value

    def setMinimumWidth(self, value):
        self.minimumWidth = value

    def setMaximumHeight(self, value):
        self.maximumHeight = value

    def setToolTip(self, text):
        self.toolTip = text

    def setWindowTitle(self, text):
        self.windowTitle = text


class QLayout(QObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.items = []
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def addWidget(self, widget, *args):
        self.items.append(widget)

    def addLayout(self, layout, *args):
        self.items.append(layout)

    def addRow(self, *args):
        self.items.append(args)

    def addStretch(self, *args):
        pass

    def setSpacing(self, spacing):
        self.spacing = spacing

    def setContentsMargins(self, *margins):
        self.contentsMargins = margins


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    pass


class QGridLayout(QLayout):
    pass


class QLabel(QWidget):
    def __init__(self, text="", parent=None):
        super().__init__(parent)
        self.text = text


class QPushButton(QWidget):
    def __init__(self, text="", parent=None):
        super().__init__(parent)
        self.text = text

    def setSizePolicy(self, policy):
        self.sizePolicy = policy


class QCheckBox(QPushButton):
    def __init__(self, text="", parent=None):
        super().__init__(text, parent)
        self.checked = False

    def checkState(self):
        return Qt.Checked if self.checked else Qt.Unchecked


class QGroupBox(QWidget):
    def __init__(self, title="", parent=None):
        super().__init__(parent)
        self.title = title


class QDialog(QWidget):
    """QDialog: ``exec_()`` is modal.  Only the message boxes below reach a user; a plain
    dialog (Slicer's ``delayDisplay`` popup) closes by its own timer, so it returns at once."""

    Rejected, Accepted = 0, 1

    def exec_(self):
        user.shown_popup(self)
        return QDialog.Rejected

    exec = exec_


class QProgressDialog(QDialog):
    """QProgressDialog as slicer.util.createProgressDialog uses it (properties only)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.minimumDuration, self.maximum, self.value = 4000, 100, 0
        self.labelText = ""
        self.wasCanceled = False

    def setValue(self, value):
        self.value = value

    def setParent(self, parent):
        self._parent = parent


class QMessageBox(QDialog):
    """QMessageBox: StandardButton, ButtonRole and Icon values of qmessagebox.h."""

    NoButton = 0
    Ok, Save, SaveAll, Open = 0x400, 0x800, 0x1000, 0x2000
    Yes, YesToAll, No, NoToAll = 0x4000, 0x8000, 0x10000, 0x20000
    Abort, Retry, Ignore, Close = 0x40000, 0x80000, 0x100000, 0x200000
    Cancel, Discard, Help, Apply = 0x400000, 0x800000, 0x1000000, 0x2000000
    Reset, RestoreDefaults = 0x4000000, 0x8000000
    InvalidRole, AcceptRole, RejectRole = -1, 0, 1
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4

    def __init__(self, *args, **kwargs):
        parent = args[0] if args and isinstance(args[0], QObject) else kwargs.get("parent")
        super().__init__(parent)
        self.text = ""
        self.informativeText = ""
        self.detailedText = ""
        self.icon = QMessageBox.NoIcon
        self.standardButtons = QMessageBox.Ok
        self._buttons = []
        self._layout = QGridLayout(self)

    def setText(self, text):
        self.text = text

    def setInformativeText(self, text):
        self.informativeText = text

    def setDetailedText(self, text):
        self.detailedText = text

    def setIcon(self, icon):
        self.icon = icon

    def setStandardButtons(self, buttons):
        self.standardButtons = buttons

    def addButton(self, button, role=None):
        """addButton(StandardButton) adds the standard button and returns its QPushButton."""
        if isinstance(button, int):
            self.standardButtons = (self.standardButtons if self._buttons else 0) | button
            button = QPushButton()
        self._buttons.append(button)
        return button

    def exec_(self):
        return user.answer(self)

    exec = exec_

    @staticmethod
    def _static(icon, parent, title, text, buttons, default):
        box = QMessageBox(parent)
        box.windowTitle, box.text, box.icon, box.standardButtons = title, text, icon, buttons
        return box.exec_()

    @staticmethod
    def question(parent, title, text, buttons=Yes | No, defaultButton=NoButton):
        return QMessageBox._static(QMessageBox.Question, parent, title, text, buttons, defaultButton)

    @staticmethod
    def information(parent, title, text, buttons=Ok, defaultButton=NoButton):
        return QMessageBox._static(QMessageBox.Information, parent, title, text, buttons, defaultButton)

    @staticmethod
    def warning(parent, title, text, buttons=Ok, defaultButton=NoButton):
        return QMessageBox._static(QMessageBox.Warning, parent, title, text, buttons, defaultButton)

    @staticmethod
    def critical(parent, title, text, buttons=Ok, defaultButton=NoButton):
        return QMessageBox._static(QMessageBox.Critical, parent, title, text, buttons, defaultButton)


class QTableWidgetItem:
    """QTableWidgetItem: default flags Selectable | Editable | Enabled | DragEnabled |
    DropEnabled | UserCheckable (qtablewidget.cpp, QTableWidgetItem::QTableWidgetItem).
    Changing an item that is in a table emits the table's ``itemChanged``."""

    def __init__(self, text="", type=0):
        self._text = str(text)
        self._check = None
        self._flags = (Qt.ItemIsSelectable | Qt.ItemIsEditable | Qt.ItemIsEnabled | Qt.ItemIsDragEnabled
                       | Qt.ItemIsDropEnabled | Qt.ItemIsUserCheckable)
        self._tooltip = ""
        self._table = None

    def _changed(self):
        if self._table is not None:
            self._table.emit("itemChanged(QTableWidgetItem*)", self)

    def text(self):
        return self._text

    def setText(self, text):
        self._text = str(text)
        self._changed()

    def checkState(self):
        return Qt.Unchecked if self._check is None else self._check

    def setCheckState(self, state):
        # PythonQt converts a Python bool to the enum's int
        self._check = int(state) if not isinstance(state, bool) else (Qt.Checked if state else Qt.Unchecked)
        self._changed()

    def flags(self):
        return self._flags

    def setFlags(self, flags):
        self._flags = flags

    def toolTip(self):
        return self._tooltip

    def setToolTip(self, text):
        self._tooltip = str(text)


class _HeaderView:
    def setSectionResizeMode(self, *args):
        pass

    def setVisible(self, visible):
        pass

    def setStretchLastSection(self, stretch):
        pass


class QHeaderView:
    Interactive, Fixed, Stretch, ResizeToContents = 0, 2, 1, 3


class QAbstractItemView:
    NoEditTriggers, AllEditTriggers = 0, 31
    SingleSelection, MultiSelection, ExtendedSelection = 1, 2, 3
    SelectItems, SelectRows, SelectColumns = 0, 1, 2
    ScrollPerItem, ScrollPerPixel = 0, 1


class QTableView(QAbstractItemView):
    pass


class QTableWidget(QWidget):
    """QTableWidget: rows of items; ``rowCount``/``columnCount`` are properties."""

    def __init__(self, parent=None, *args):
        super().__init__(parent)
        self._rows: list[list] = []
        self._columns = 0
        self._header = _HeaderView()

    @property
    def rowCount(self):
        return len(self._rows)

    @property
    def columnCount(self):
        return self._columns

    def setRowCount(self, rows):
        del self._rows[rows:]
        while len(self._rows) < rows:
            self._rows.append([None] * self._columns)

    def setColumnCount(self, columns):
        self._columns = columns
        for row in self._rows:
            row[:] = (row + [None] * columns)[:columns]

    def insertRow(self, row):
        self._rows.insert(row, [None] * self._columns)

    def setItem(self, row, column, item):
        item._table = self
        self._rows[row][column] = item

    def item(self, row, column):
        if 0 <= row < len(self._rows) and 0 <= column < self._columns:
            return self._rows[row][column]
        return None

    def clearContents(self):
        """QTableWidget::clearContents: removes the items, keeps the rows."""
        for row in self._rows:
            row[:] = [None] * self._columns

    def setHorizontalHeaderLabels(self, labels):
        self.horizontalHeaderLabels = list(labels)

    def setVerticalHeaderLabels(self, labels):
        self.verticalHeaderLabels = list(labels)

    def setSelectionBehavior(self, behavior):
        self.selectionBehavior = behavior

    def horizontalHeader(self):
        return self._header

    def verticalHeader(self):
        return self._header


class QSettings(QObject):
    """QSettings: one store per application (organization and application name), here in
    memory for the harness's lifetime; ``value`` of a missing key is None, as PythonQt
    returns an invalid QVariant."""

    NativeFormat, IniFormat = 0, 1
    _store: dict = {}

    def __init__(self, *args):
        super().__init__()

    def value(self, key, defaultValue=None):
        return QSettings._store.get(key, defaultValue)

    def setValue(self, key, value):
        QSettings._store[key] = value

    def contains(self, key):
        return key in QSettings._store

    def remove(self, key):
        for name in [k for k in QSettings._store if k == key or k.startswith(key + "/")]:
            del QSettings._store[name]

    def allKeys(self):
        return list(QSettings._store)

    def sync(self):
        pass


class QApplication:
    """QApplication's static cursor stack (qguiapplication.cpp: setOverrideCursor pushes,
    restoreOverrideCursor pops)."""

    _cursors: list = []

    @staticmethod
    def setOverrideCursor(cursor):
        # a Qt::CursorShape converts implicitly to QCursor (QCursor(Qt::CursorShape) is not explicit)
        QApplication._cursors.append(cursor if isinstance(cursor, QCursor) else QCursor(cursor))

    @staticmethod
    def restoreOverrideCursor():
        if QApplication._cursors:
            QApplication._cursors.pop()

    @staticmethod
    def overrideCursor():
        return QApplication._cursors[-1] if QApplication._cursors else None

    @staticmethod
    def processEvents(*args):
        pass

    @staticmethod
    def font(widget=None):
        return QFont()


class QCursor:
    def __init__(self, shape=Qt.ArrowCursor):
        self._shape = shape

    def shape(self):
        return self._shape


class QTimer(QObject):
    """QTimer::singleShot: the slot runs when the event loop next runs; a modal dialog's
    ``exec_`` returns at once here, so it runs then."""

    @staticmethod
    def singleShot(msec, slot):
        slot()


class QIcon:
    def __init__(self, path=""):
        self.path = str(path)

    def isNull(self):
        return not self.path or not os.path.isfile(self.path)


class QDir:
    """QDir over a path string (qdir.cpp)."""

    def __init__(self, path=""):
        self._path = str(path.path() if isinstance(path, QDir) else path) or "."

    def path(self):
        return self._path

    def absolutePath(self):
        return os.path.abspath(self._path)

    def mkpath(self, path):
        os.makedirs(path, exist_ok=True)
        return True

    def exists(self):
        return os.path.isdir(self._path)

    @staticmethod
    def toNativeSeparators(path):
        return str(path)


class QFileInfo:
    def __init__(self, *args):
        if len(args) == 2:
            self._path = os.path.join(QDir(args[0]).path(), str(args[1]))
        else:
            self._path = str(args[0])

    def absoluteFilePath(self):
        return os.path.abspath(self._path)


class QLocale:
    English, UnitedStates = 31, 225

    def __init__(self, *args):
        pass

    def toString(self, value, format):
        """QLocale::toString(QDateTime, format) for the patterns Slicer uses."""
        for qt_pattern, python in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("hh", "%H"), ("mm", "%M"),
                                   ("ss", "%S")):
            format = format.replace(qt_pattern, python)
        text = value.strftime(format)
        return text.replace("zzz", f"{value.microsecond // 1000:03d}")


class QDateTime:
    @staticmethod
    def currentDateTime():
        return datetime.datetime.now()


class QUrl:
    TolerantMode, StrictMode = 0, 1

    def __init__(self, url="", mode=0):
        self._url = str(url)

    def toString(self):
        return self._url


class QByteArray(bytes):
    pass


class QProcess(QObject):
    NotRunning, Starting, Running = 0, 1, 2


class QSizePolicy:
    Fixed, Minimum, Maximum, Preferred, Expanding = 0, 1, 4, 5, 7

    def __init__(self, *args):
        pass


class QFont:
    def setBold(self, bold):
        pass


class QFontMetrics:
    """Width of text in a font; a message box uses it for its minimum width only."""

    def __init__(self, font):
        self.font = font

    def horizontalAdvance(self, text):
        return 7 * len(text)

    width = horizontalAdvance


class QPalette:
    AlternateBase = 16
