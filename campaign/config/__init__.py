"""The campaign file: validated, typed settings (part of the shared kernel)."""
