"""Every table belongs to a corp, and tenant-scoped managers never cross corps."""

from __future__ import annotations

import pytest
from django.apps import apps

from siyu.core.tenancy import CorpManager, CorpOwned
from siyu.customers.models import Customer
from tests import factories

# Tables that are not corp data: the tenant itself, the deployment's periodic-job clock, and framework tables
# (users, sessions, the task queue).
NOT_CORP_OWNED = {"corps.Corp", "core.PeriodicJob"}


def siyu_models():
    return [m for m in apps.get_models() if m.__module__.startswith("siyu.")]


def test_every_siyu_model_is_corp_owned_with_a_corp_manager():
    missing = []
    for model in siyu_models():
        label = f"{model._meta.app_label}.{model.__name__}"
        if label in NOT_CORP_OWNED:
            continue
        if not issubclass(model, CorpOwned) or not isinstance(model._default_manager, CorpManager):
            missing.append(label)
    assert missing == []


@pytest.mark.django_db
def test_for_corp_returns_only_that_corps_rows(world):
    factories.make_customer(world.corp, "本企业")
    factories.make_customer(world.other_corp, "别家")
    assert list(Customer.objects.for_corp(world.corp).values_list("name", flat=True)) == ["本企业"]
    assert list(Customer.objects.for_corp(world.other_corp.pk).values_list("name", flat=True)) == ["别家"]
