"""Tests for the DAW scripts: ReaScripts under lupa and the Live remote script on a fake Live."""
