"""Django against a Shoal node, unmodified: `migrate` (contenttypes, auth
and a small shop app: identity keys, unique and indexed fields, foreign
keys Django declares DEFERRABLE INITIALLY DEFERRED), then ORM CRUD,
relations, aggregates, transactions and constraint errors.

Run by tests/tests/clients.rs as `run.py HOST PORT`; any failed check
exits non-zero, the last line names the versions that ran.
"""

import decimal
import os
import sys

os.environ["SHOAL_HOST"], os.environ["SHOAL_PORT"] = sys.argv[1], sys.argv[2]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.db.models import Count, F, Sum  # noqa: E402
from django.db.models.deletion import ProtectedError  # noqa: E402

from shop.models import Customer, Line, Order, Product  # noqa: E402


def main() -> None:
    call_command("migrate", verbosity=0)
    # Migrating again finds everything applied.
    call_command("migrate", verbosity=0)

    ann = Customer.objects.create(email="ann@example.com", name="Ann")
    bob = Customer.objects.create(email="bob@example.com", name="Bob")
    tea = Product.objects.create(sku="TEA", price=decimal.Decimal("4.50"), stock=10)
    pot = Product.objects.create(sku="POT", price=decimal.Decimal("20.00"), stock=2)
    assert ann.pk is not None and bob.pk != ann.pk

    with transaction.atomic():
        order = Order.objects.create(customer=ann, note="first")
        Line.objects.create(order=order, product=tea, quantity=3)
        Line.objects.create(order=order, product=pot, quantity=1)
        Product.objects.filter(pk=tea.pk).update(stock=F("stock") - 3)

    tea.refresh_from_db()
    assert tea.stock == 7, tea.stock
    total = Line.objects.filter(order__customer=ann).aggregate(
        total=Sum(F("quantity") * F("product__price"))
    )["total"]
    assert total == decimal.Decimal("33.50"), total
    counts = {
        c.name: c.n for c in Customer.objects.annotate(n=Count("orders")).order_by("name")
    }
    assert counts == {"Ann": 1, "Bob": 0}, counts
    assert [line.product.sku for line in order.lines.order_by("id")] == ["TEA", "POT"]

    # A rolled back atomic block leaves nothing.
    try:
        with transaction.atomic():
            Order.objects.create(customer=bob, note="never")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert not Order.objects.filter(note="never").exists()

    # Unique fields are enforced by the database.
    try:
        with transaction.atomic():
            Customer.objects.create(email="ann@example.com", name="Ann again")
        raise AssertionError("duplicate email accepted")
    except IntegrityError as e:
        assert isinstance(e.__cause__, psycopg.errors.UniqueViolation), e.__cause__

    # Deferred foreign keys: a dangling reference fails at commit.
    try:
        with transaction.atomic():
            Line.objects.create(order_id=order.pk, product_id=999999, quantity=1)
        raise AssertionError("dangling product accepted")
    except IntegrityError as e:
        assert isinstance(e.__cause__, psycopg.errors.ForeignKeyViolation), e.__cause__

    # PROTECT is Django's; CASCADE runs in Django and in the database.
    try:
        pot.delete()
        raise AssertionError("protected product deleted")
    except ProtectedError:
        pass
    ann.delete()
    assert Order.objects.count() == 0 and Line.objects.count() == 0
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM shop_customer WHERE name = 'Bob'")
    assert Customer.objects.count() == 0

    # contrib.auth works on the migrated tables.
    user = User.objects.create_user("carol", password="s3cret")
    assert User.objects.get(username="carol").check_password("s3cret")
    user.delete()

    print(f"Django {django.get_version()} over psycopg {psycopg.__version__}: ok")


if __name__ == "__main__":
    main()
