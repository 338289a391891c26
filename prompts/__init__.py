"""Prompt templates as data files (`<stage>.v<N>.md`), read by annotator.prompting. No code lives here."""
