"""Tests of dnabird.data (tiny hand-made fixture files live in subfolders here)."""
