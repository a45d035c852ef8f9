"""Default cut-off tables (sources in docs/reports.md) and admin permissions on them.

- 22C3 NSCLC TPS: < 1 %, 1–49 %, ≥ 50 % — KEYTRUDA (pembrolizumab) prescribing information and the
  PD-L1 IHC 22C3 pharmDx (Agilent/Dako) NSCLC interpretation manual. Approved.
- SP263 NSCLC TPS (tumour cells, TC): ≥ 1 %, ≥ 25 %, ≥ 50 % — VENTANA PD-L1 (SP263) Assay
  (Roche) package insert / interpretation guide. Approved.
- 22C3 breast CPS: < 10, ≥ 10 — KEYTRUDA label (triple-negative breast cancer). NOT approved
  here: breast ductal carcinoma is reported for research use until a laboratory approves a table;
  CPS needs immune-cell labels the detector does not produce.
Admins edit or approve tables in the Django admin; edits are audited.
"""

from django.db import migrations

DEFAULTS = [
    ("22C3", "lung_squamous", "TPS", True,
     "KEYTRUDA (pembrolizumab) label; PD-L1 IHC 22C3 pharmDx NSCLC interpretation manual (Agilent)",
     [(0, "TPS < 1%"), (1, "TPS 1-49%"), (50, "TPS >= 50%")]),
    ("SP263", "lung_squamous", "TPS", True,
     "VENTANA PD-L1 (SP263) Assay package insert and NSCLC interpretation guide (Roche)",
     [(0, "TC < 1%"), (1, "TC 1-24%"), (25, "TC 25-49%"), (50, "TC >= 50%")]),
    ("22C3", "breast_ductal", "CPS", False,
     "KEYTRUDA (pembrolizumab) label, TNBC (CPS >= 10); not approved for this laboratory's breast reporting",
     [(0, "CPS < 10"), (10, "CPS >= 10")]),
]


def add_defaults(apps, schema_editor):
    CutoffTable = apps.get_model("cases", "CutoffTable")
    Cutoff = apps.get_model("cases", "Cutoff")
    for clone, indication, score, approved, source, rows in DEFAULTS:
        table, created = CutoffTable.objects.get_or_create(
            assay_clone=clone, indication=indication, score_type=score,
            defaults={"approved": approved, "source": source})
        if created:
            Cutoff.objects.bulk_create([Cutoff(table=table, lower_bound=lo, label=label) for lo, label in rows])
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("cases")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.filter(content_type__app_label="cases",
                                      content_type__model__in=["cutofftable", "cutoff"])
    for group in Group.objects.filter(name="admin"):
        group.permissions.add(*perms)
    for group in Group.objects.filter(name="pathologist"):
        group.permissions.add(*perms.filter(codename__startswith="view_"))


class Migration(migrations.Migration):
    dependencies = [("cases", "0003_report_content_cutoffs")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
