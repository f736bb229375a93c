"""Accounts of the review service: users and roles (:mod:`.roles`), passwords, API tokens and failed sign-ins
(:mod:`.users`), and the service's append-only change log (:mod:`.audit`).

Services receive a session from their caller and never commit.
"""
