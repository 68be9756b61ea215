"""SQLAlchemy 2 ORM over psycopg 3 against a Shoal node, unmodified.

Run by tests/tests/clients.rs with the node's SQL host and port as arguments:
create_all (SERIAL keys, UNIQUE, foreign keys, indexes), relationships,
CRUD in ORM sessions, reflection through the catalogs, drop_all. Any
failed assertion or error exits non-zero; the last line names the
versions that ran.
"""

import datetime
import decimal
import sys

import psycopg
import sqlalchemy
from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Numeric,
    String,
    create_engine,
    func,
    inspect,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    books: Mapped[list["Book"]] = relationship(
        back_populates="author", cascade="all, delete-orphan", order_by="Book.id"
    )


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
    published: Mapped[datetime.date | None] = mapped_column(Date)
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id", ondelete="CASCADE"))
    author: Mapped[Author] = relationship(back_populates="books")
    __table_args__ = (Index("book_title_idx", "title"),)


def main(host: str, port: str) -> None:
    engine = create_engine(f"postgresql+psycopg://shoal@{host}:{port}/shoal")
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)

    with Session(engine) as session:
        ann = Author(name="Ann")
        ann.books = [
            Book(title="Tides", price=decimal.Decimal("12.50"), published=datetime.date(2020, 1, 2)),
            Book(title="Reefs", price=decimal.Decimal("8.00"), published=None),
        ]
        bob = Author(name="Bob", books=[Book(title="Currents", price=decimal.Decimal("20"))])
        session.add_all([ann, bob])
        session.commit()
        assert ann.id is not None and bob.id is not None and ann.id != bob.id

    with Session(engine) as session:
        ann = session.scalars(select(Author).where(Author.name == "Ann")).one()
        assert [b.title for b in ann.books] == ["Tides", "Reefs"], ann.books
        total = session.scalar(
            select(func.sum(Book.price)).join(Author).where(Author.name == "Ann")
        )
        assert total == decimal.Decimal("20.50"), total
        ann.books[1].price = decimal.Decimal("9.99")
        session.commit()

    with Session(engine) as session:
        reefs = session.scalars(select(Book).where(Book.title == "Reefs")).one()
        assert reefs.price == decimal.Decimal("9.99")
        assert reefs.author.name == "Ann"
        # A second author with the same name breaks the UNIQUE constraint.
        session.add(Author(name="Ann"))
        try:
            session.commit()
            raise AssertionError("duplicate name accepted")
        except sqlalchemy.exc.IntegrityError as e:
            assert isinstance(e.orig, psycopg.errors.UniqueViolation), e.orig
            session.rollback()
        # A book of no author breaks the foreign key.
        session.add(Book(title="Orphan", price=decimal.Decimal("1"), author_id=999999))
        try:
            session.commit()
            raise AssertionError("dangling author accepted")
        except sqlalchemy.exc.IntegrityError as e:
            assert isinstance(e.orig, psycopg.errors.ForeignKeyViolation), e.orig
            session.rollback()

    # The database's own ON DELETE CASCADE, without the ORM's help.
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM author WHERE name = 'Bob'"))
        left = conn.execute(sqlalchemy.text("SELECT count(*) FROM book")).scalar()
        assert left == 2, left

    # The ORM's cascade.
    with Session(engine) as session:
        ann = session.scalars(select(Author).where(Author.name == "Ann")).one()
        session.delete(ann)
        session.commit()
        assert session.scalar(select(func.count()).select_from(Book)) == 0

    # Reflection reads the schema back from the catalogs.
    inspector = inspect(engine)
    assert {"author", "book"} <= set(inspector.get_table_names()), inspector.get_table_names()
    columns = {c["name"]: c for c in inspector.get_columns("book")}
    assert set(columns) == {"id", "title", "price", "published", "author_id"}, columns
    assert str(columns["price"]["type"]) == "NUMERIC(10, 2)", columns["price"]["type"]
    assert columns["title"]["nullable"] is False
    assert columns["published"]["nullable"] is True
    assert inspector.get_pk_constraint("book")["constrained_columns"] == ["id"]
    fks = inspector.get_foreign_keys("book")
    assert len(fks) == 1, fks
    assert fks[0]["referred_table"] == "author", fks
    assert fks[0]["constrained_columns"] == ["author_id"], fks
    assert fks[0]["referred_columns"] == ["id"], fks
    assert fks[0]["options"].get("ondelete") == "CASCADE", fks
    uniques = inspector.get_unique_constraints("author")
    assert [u["column_names"] for u in uniques] == [["name"]], uniques
    indexes = {i["name"]: i for i in inspector.get_indexes("book")}
    assert indexes["book_title_idx"]["column_names"] == ["title"], indexes
    reflected = sqlalchemy.MetaData()
    reflected.reflect(engine, only=["author", "book"])
    assert reflected.tables["book"].c.author_id.references(reflected.tables["author"].c.id)

    Base.metadata.drop_all(engine)
    assert "book" not in inspect(engine).get_table_names()
    print(f"SQLAlchemy {sqlalchemy.__version__} over psycopg {psycopg.__version__}: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
