"""Slicer's DICOM browser steps, run with the release's own code.

``SlicerDICOMBrowser`` (Modules/Scripted/DICOMLib/DICOMBrowser.py) is a Qt widget whose
``__init__``/``setup`` build the window around a C++ ctkDICOMBrowser.  :class:`Browser`
creates the object without its window and sets the state ``__init__`` and ``setup``
give the steps used here (plugin choice, file lists, the loadable table, the buttons,
the "Advanced" check box), then calls the release's own methods: ``onSeriesSelected``,
``examineForLoading``, ``loadCheckedLoadables`` (references dialog, "Load anyway?",
loading), and the real ``DICOMLoadableTable`` where a user checks boxes and edits names.
"""

from __future__ import annotations

import sys

from . import qt


class Browser:
    def __init__(self, harness, advanced: bool = False):
        self.harness = harness
        DICOMLib = sys.modules["DICOMLib"]
        cls = DICOMLib.DICOMBrowser.SlicerDICOMBrowser
        browser = cls.__new__(cls)
        qt.QWidget.__init__(browser, None)
        browser.enabledPluginClassNames = None
        browser.pluginInstances = {}
        browser.fileLists = []
        browser.settings = qt.QSettings()
        browser.browserPersistent = True
        browser.advancedView = int(advanced)
        browser.useVisualDICOMBrowser = False
        browser.advancedViewButton = qt.QCheckBox("Advanced")
        browser.advancedViewButton.checked = advanced
        browser.loadableTable = DICOMLib.DICOMBrowser.DICOMLoadableTable(browser)
        browser.loadButton, browser.examineButton, browser.uncheckAllButton = (qt.QPushButton() for _ in range(3))
        browser.referencedLoadables = {}
        self.browser = browser

    def select(self, series_uids) -> "Browser":
        """Click series in the database table (ctkDICOMBrowser's seriesSelectionChanged)."""
        self.browser.onSeriesSelected(list(series_uids))
        return self

    def examine(self) -> "Browser":
        """Advanced view: the Examine button."""
        self.browser.examineForLoading()
        return self

    @property
    def table(self):
        return self.browser.loadableTable

    def rows(self) -> list[tuple[str, str, bool, str]]:
        """The loadable table as shown: (name, reader, checked, warning) per row."""
        table = self.table
        return [(table.item(r, 0).text(), table.item(r, 1).text() if table.item(r, 1) else "",
                 table.item(r, 0).checkState() == qt.Qt.Checked, table.item(r, 2).text() if table.item(r, 2) else "")
                for r in range(table.rowCount)]

    def edit_name(self, row: int, text: str) -> None:
        self.table.item(row, 0).setText(text)

    def load(self) -> list:
        """The Load button; returns the data nodes that were added to the scene."""
        slicer = self.harness.slicer
        before = {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}
        self.browser.loadCheckedLoadables()
        added = [slicer.mrmlScene.GetNthNode(i) for i in range(slicer.mrmlScene.GetNumberOfNodes())]
        return [n for n in added if n.GetID() not in before and (n.IsA("vtkMRMLModelNode") or n.IsA("vtkMRMLSegmentationNode")
                                                                   or n.IsA("vtkMRMLScalarVolumeNode"))]

    @property
    def loadables(self) -> dict:
        return self.browser.loadablesByPlugin
