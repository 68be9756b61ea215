"""The syntax tree of generated statements, and the walks over it.

The generator (generator.py) does not build SQL text directly: it builds a
small tree of Node objects, and the text is rendered from the tree
(Node.sql) when the statement is sent. Keeping the tree is what makes
failures shrinkable: each node knows smaller replacements for itself
(Node.shrinks -- an operator by a same-typed operand or a constant, a
SELECT without its WHERE / HAVING / ORDER BY / DISTINCT / one projection,
a join by one of its sides, ...), and walk / replace_at let the minimizer
(minimize.py) try each replacement at each position without mutating the
original: nodes are copied on the way down (Node.replaced), never changed
in place.

The node kinds: Lit and Col (leaves, with their SQL type); Op, any
expression, rendered from a str.format template over its children's SQL
and tagged with the feature it exercises (an operator, a function, a
subquery kind); OrderBy; Select and SetOp (queries; they know their width
and whether their ORDER BY names every output column, which decides
whether rows are compared in order); Table, Join and Derived (FROM items);
Update, Delete, Insert and Row (DML on m1).

The tree also answers questions asked by the other modules: has_column
(a GROUP BY key must name a column, or PostgreSQL reads it as a position or
an error), valid (what the minimizer must never produce: constant GROUP BY
keys, a LIMIT without a complete ORDER BY) and features (the set of tags,
join kinds, set operations and clauses in a statement, by which value
failures are grouped).
"""

import copy

class Node:
    """A piece of SQL. FIELDS names the attributes holding child nodes (a
    node, a list of nodes, or None); `shrinks` gives smaller replacements
    for the node itself, for the minimizer."""

    FIELDS = ()
    typ = None

    def sql(self):
        raise NotImplementedError

    def shrinks(self):
        return []

    def replaced(self, **changes):
        c = copy.copy(self)
        for k, v in changes.items():
            setattr(c, k, v)
        return c


class Lit(Node):
    def __init__(self, text, typ):
        self.text, self.typ = text, typ

    def sql(self):
        return self.text


class Col(Node):
    def __init__(self, text, typ):
        self.text, self.typ = text, typ

    def sql(self):
        return self.text


SIMPLE_LIT = {"int4": "1", "int8": "CAST(2 AS int8)", "float8": "CAST(1.5 AS float8)", "numeric": "1.5",
              "text": "'a'", "bool": "TRUE", "date": "DATE '2020-01-01'"}


class Op(Node):
    """fmt is a str.format template over the kids' SQL."""
    FIELDS = ("kids",)

    def __init__(self, typ, fmt, kids, tag=None, agg=False):
        self.typ, self.fmt, self.kids, self.tag, self.agg = typ, fmt, list(kids), tag, agg

    def sql(self):
        return self.fmt.format(*[k.sql() for k in self.kids])

    def shrinks(self):
        out = [k for k in self.kids if k.typ == self.typ and not isinstance(k, (Select, SetOp))]
        out.append(Lit(SIMPLE_LIT[self.typ], self.typ))
        return out


class OrderBy(Node):
    FIELDS = ("expr",)

    def __init__(self, pos=None, expr=None, desc=False, nulls=None):
        self.pos, self.expr, self.desc, self.nulls = pos, expr, desc, nulls

    def sql(self):
        s = str(self.pos) if self.pos is not None else self.expr.sql()
        if self.desc:
            s += " DESC"
        if self.nulls:
            s += " NULLS " + self.nulls
        return s


def _order_sql(order, limit, offset):
    s = ""
    if order:
        s += " ORDER BY " + ", ".join(o.sql() for o in order)
    if limit is not None:
        s += " LIMIT %d" % limit
    if offset is not None:
        s += " OFFSET %d" % offset
    return s


def _fully_ordered(order, width):
    return bool(order) and {o.pos for o in order if o.pos is not None} >= set(range(1, width + 1))


class Select(Node):
    FIELDS = ("items", "from_", "where", "group", "having", "order")

    def __init__(self, items, from_=None, where=None, group=None, having=None, order=None,
                 limit=None, offset=None, distinct=False, aliases=False):
        self.items, self.from_, self.where = items, from_, where
        self.group, self.having, self.order = group or [], having, order or []
        self.limit, self.offset, self.distinct, self.aliases = limit, offset, distinct, aliases
        self.grouped = False

    def width(self):
        return len(self.items)

    def fully_ordered(self):
        return _fully_ordered(self.order, len(self.items))

    def sql(self):
        items = [i.sql() + (" AS c%d" % (n + 1) if self.aliases else "") for n, i in enumerate(self.items)]
        s = "SELECT " + ("DISTINCT " if self.distinct else "") + ", ".join(items)
        if self.from_ is not None:
            s += " FROM " + self.from_.sql()
        if self.where is not None:
            s += " WHERE " + self.where.sql()
        if self.group:
            s += " GROUP BY " + ", ".join(g.sql() for g in self.group)
        if self.having is not None:
            s += " HAVING " + self.having.sql()
        return s + _order_sql(self.order, self.limit, self.offset)

    def shrinks(self):
        out = []
        if self.where is not None:
            out.append(self.replaced(where=None))
        if self.having is not None:
            out.append(self.replaced(having=None))
        if self.limit is not None or self.offset is not None:
            out.append(self.replaced(limit=None, offset=None))
        if self.order:
            out.append(self.replaced(order=[], limit=None, offset=None))
        if self.distinct:
            out.append(self.replaced(distinct=False))
        if len(self.items) > 1 and not self.aliases:
            for i in range(len(self.items)):
                order = []
                for o in self.order:
                    if o.pos is None:
                        order.append(o)
                    elif o.pos != i + 1:
                        order.append(o.replaced(pos=o.pos - (o.pos > i + 1)))
                out.append(self.replaced(items=self.items[:i] + self.items[i + 1:], order=order))
        if self.group:
            out.append(self.replaced(group=[], having=None))
            if len(self.group) > 1:
                for i in range(len(self.group)):
                    out.append(self.replaced(group=self.group[:i] + self.group[i + 1:]))
        return out


class SetOp(Node):
    FIELDS = ("left", "right", "order")

    def __init__(self, op, left, right, order=None, limit=None, offset=None):
        self.op, self.left, self.right = op, left, right
        self.order, self.limit, self.offset = order or [], limit, offset

    def width(self):
        return self.left.width()

    def fully_ordered(self):
        return _fully_ordered(self.order, self.width())

    def sql(self):
        def side(q):
            return "(" + q.sql() + ")" if isinstance(q, SetOp) or q.order or q.limit is not None else q.sql()
        return side(self.left) + " " + self.op + " " + side(self.right) + _order_sql(self.order, self.limit, self.offset)

    def shrinks(self):
        out = [self.left.replaced(order=self.order, limit=self.limit, offset=self.offset),
               self.right.replaced(order=self.order, limit=self.limit, offset=self.offset)]
        if self.order or self.limit is not None:
            out.append(self.replaced(order=[], limit=None, offset=None))
        return out


class Table(Node):
    def __init__(self, name, alias):
        self.name, self.alias = name, alias

    def sql(self):
        return "%s %s" % (self.name, self.alias)


class Join(Node):
    FIELDS = ("left", "right", "on")

    def __init__(self, kind, left, right, on):
        self.kind, self.left, self.right, self.on = kind, left, right, on

    def sql(self):
        if self.on is None:
            return "%s CROSS JOIN %s" % (self.left.sql(), self.right.sql())
        return "%s %s JOIN %s ON %s" % (self.left.sql(), self.kind, self.right.sql(), self.on.sql())

    def shrinks(self):
        out = [self.left, self.right]
        if self.kind != "INNER":
            out.append(self.replaced(kind="INNER"))
        return out


class Derived(Node):
    FIELDS = ("query",)

    def __init__(self, query, alias):
        self.query, self.alias = query, alias

    def sql(self):
        return "(%s) %s" % (self.query.sql(), self.alias)


class Update(Node):
    FIELDS = ("values", "where")

    def __init__(self, table, cols, values, where):
        self.table, self.cols, self.values, self.where = table, cols, values, where

    def sql(self):
        sets = ", ".join("%s = %s" % (c, v.sql()) for c, v in zip(self.cols, self.values))
        return "UPDATE %s SET %s" % (self.table, sets) + (" WHERE " + self.where.sql() if self.where else "")

    def shrinks(self):
        out = []
        if self.where is not None:
            out.append(self.replaced(where=None))
        if len(self.cols) > 1:
            for i in range(len(self.cols)):
                out.append(self.replaced(cols=self.cols[:i] + self.cols[i + 1:],
                                         values=self.values[:i] + self.values[i + 1:]))
        return out


class Delete(Node):
    FIELDS = ("where",)

    def __init__(self, table, where):
        self.table, self.where = table, where

    def sql(self):
        return "DELETE FROM %s" % self.table + (" WHERE " + self.where.sql() if self.where else "")


class Insert(Node):
    FIELDS = ("rows", "query")

    def __init__(self, table, cols, rows=None, query=None):
        self.table, self.cols, self.rows, self.query = table, cols, rows or [], query

    def sql(self):
        s = "INSERT INTO %s (%s) " % (self.table, ", ".join(self.cols))
        if self.query is not None:
            return s + self.query.sql()
        return s + "VALUES " + ", ".join(r.sql() for r in self.rows)

    def shrinks(self):
        if len(self.rows) > 1:
            return [self.replaced(rows=[r]) for r in self.rows]
        return []


class Row(Node):
    FIELDS = ("kids",)

    def __init__(self, kids):
        self.kids = kids

    def sql(self):
        return "(" + ", ".join(k.sql() for k in self.kids) + ")"


def walk(node, path=()):
    yield path, node
    for f in node.FIELDS:
        v = getattr(node, f)
        if isinstance(v, Node):
            yield from walk(v, path + ((f, None),))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, Node):
                    yield from walk(x, path + ((f, i),))


def replace_at(node, path, new):
    if not path:
        return new
    (f, i), rest = path[0], path[1:]
    v = getattr(node, f)
    if i is None:
        return node.replaced(**{f: replace_at(v, rest, new)})
    v = list(v)
    v[i] = replace_at(v[i], rest, new)
    return node.replaced(**{f: v})


def has_column(node):
    return any(isinstance(n, Col) for _, n in walk(node))


def valid(node):
    """What the minimizer must not produce: constant GROUP BY keys (a
    position, or an error, in PostgreSQL), LIMIT without a full ORDER BY."""
    for _, n in walk(node):
        if isinstance(n, Select) and any(not has_column(g) for g in n.group):
            return False
        if isinstance(n, (Select, SetOp)) and n.limit is not None and not n.fully_ordered():
            return False
    return True


def features(node):
    tags = set()
    for _, n in walk(node):
        if isinstance(n, Op) and n.tag:
            tags.add(n.tag)
        elif isinstance(n, Join):
            tags.add("join:" + n.kind.lower())
        elif isinstance(n, SetOp):
            tags.add("setop:" + n.op.lower())
        elif isinstance(n, Derived):
            tags.add("derived")
        elif isinstance(n, Select):
            if n.group or n.grouped:
                tags.add("group-by")
            if n.distinct:
                tags.add("distinct")
            if n.limit is not None:
                tags.add("limit")
    return tags
