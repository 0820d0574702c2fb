"""The production-shaped https suite (issue 17): see conftest.py and docs/production.md."""
