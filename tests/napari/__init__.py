"""The napari plugin: reader and presets (ViewerModel), dock widget and parity (Xvfb)."""
