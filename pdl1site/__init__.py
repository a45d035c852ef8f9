"""The PD-L1 platform's Django project.

__version__ is the one place the platform's version is defined: every analysis job records it
(AnalysisJob.software_version) and reports state it. Raise it with every release.
"""

__version__ = "0.9.0"
