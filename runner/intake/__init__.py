"""Intake: what turns GitHub's news into work for an executor (the feedback poll, webhooks).

It offers issues and feedback items to whatever implements :class:`runner.intake.webhooks.Offers`.
"""
