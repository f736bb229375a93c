"""pv: post-marketing pharmacovigilance signal detection for CAR-T cell therapies."""

__version__ = "0.1.0"
