"""Signals the clinical record sends to apps above it (they connect in their AppConfig.ready; cases
never imports them).

report_signed(sender=Report, report=...): sent by Report.sign inside the signing transaction, after
the report's documents are stored. A receiver's writes commit or roll back with the signature (the
integration app writes its outbox rows here); a receiver that raises stops the signing.

report_documents(sender=Report, report=...): sent by Report.sign inside the signing transaction, before
report_signed. Its one receiver is the cases app's own cases.documents (connected in
CasesConfig.ready): the model does not import its renderers, which read the model (no import cycle).
A signing that cannot store its documents raises and does not happen.
"""

from django.dispatch import Signal

report_signed = Signal()
report_documents = Signal()
