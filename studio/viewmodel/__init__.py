"""View-models: the studio's state and actions between the widgets and the worker.

QtCore only (QObjects, signals, item models), never QtWidgets: everything here is tested headless. A
widget takes its view-model in the constructor and binds to it (:mod:`studio.ui.bind`); the view-model
never knows which widgets show it. Properties are declared once (:mod:`studio.viewmodel.properties`):
their type, default and whether they are kept across restarts.
"""
