"""campaign: outbound voice-AI call campaigns against the Aitelier REST API."""

__version__ = "0.1.0"
