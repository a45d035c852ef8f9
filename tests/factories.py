import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from faker import Faker

from cases.choices import AssayClone, Indication, Role, Sex
from cases.models import Case, Department, Patient, Report, UserProfile

_FAKE = Faker()
_FAKE.seed_instance(0)


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"dept{n}")
    name = factory.LazyAttribute(lambda o: f"Department {o.code}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-123")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])

    @factory.post_generation
    def departments(self, create, extracted, **kwargs):
        profile, _ = UserProfile.objects.get_or_create(user=self)
        for department in extracted or []:
            profile.departments.add(department)
        self.save()


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    # Realistic names made unique: a bare surname can be a word of the pages themselves ("Case",
    # "Field"), and tests check that annotators never see a patient's name anywhere on a page.
    family_name = factory.Sequence(lambda n: f"{_FAKE.last_name()}-{n:04d}")
    given_name = factory.Sequence(lambda n: f"{_FAKE.first_name()}-{n:04d}")
    birth_date = datetime.date(1960, 5, 17)
    sex = Sex.FEMALE
    department = factory.SubFactory(DepartmentFactory)


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    accession = factory.Sequence(lambda n: f"S26-{n:05d}")
    patient = factory.SubFactory(PatientFactory)
    department = factory.SelfAttribute("patient.department")
    indication = Indication.LUNG_SQUAMOUS
    assay_clone = AssayClone.C22C3


class ReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Report

    case = factory.SubFactory(CaseFactory)
    version = 1


def make_user(role: str | None, departments=(), **kwargs):
    return UserFactory(role=role, departments=list(departments), **kwargs)


ROLES = [Role.PATHOLOGIST, Role.ANNOTATOR, Role.CLINICIAN, Role.ADMIN]
