"""Rendering of the dashboard page (and, later, the scorecard) from the gathered insights."""
