"""ImportTable: stream targets, shadows, service targets, authorisation, cycles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from natsd.config.schema import Account, ServiceExport, ServiceImport, StreamExport, StreamImport
from natsd.subjects.tokens import subject_matches
from natsd.worker.imports import (
    ImportTable,
    StreamImportRoute,
    export_authorizes,
    find_import_cycle,
)

A = Account(
    name="A",
    stream_exports=(
        StreamExport(subject="a.>"),
        StreamExport(subject="m.*.*"),
        StreamExport(subject="priv.>", accounts=("C",)),
        StreamExport(subject="tok.*.data", account_token_position=2),
    ),
    service_exports=(
        ServiceExport(subject="svc.x"),
        ServiceExport(subject="svc.s", response_type="stream", response_threshold=5.0),
        ServiceExport(subject="w.*.>"),
    ),
)
B = Account(
    name="B",
    stream_imports=(
        StreamImport(account="A", subject="a.>", prefix="fa"),
        StreamImport(account="A", subject="m.*.*", to="mm.$2.$1"),
        StreamImport(account="A", subject="tok.B.data"),
        StreamImport(account="A", subject="priv.x"),  # not listed: skipped
        StreamImport(account="A", subject="tok.*.data"),  # token left open: skipped
        StreamImport(account="Z", subject="x"),  # no such account: skipped
    ),
    service_imports=(
        ServiceImport(account="A", subject="svc.x", to="bx"),
        ServiceImport(account="A", subject="svc.s"),
        ServiceImport(account="A", subject="w.*.>", to="bw.*.>"),
    ),
)
C = Account(name="C", stream_imports=(StreamImport(account="A", subject="a.>"),))


def table() -> ImportTable:
    return ImportTable.build([A, B, C])


def test_stream_targets() -> None:
    t = table()
    got = {(x.importer, x.subject) for x in t.stream_targets("A", b"a.x.y")}
    assert got == {("B", b"fa.a.x.y"), ("C", b"a.x.y")}
    assert [(x.importer, x.subject) for x in t.stream_targets("A", b"m.1.2")] == [("B", b"mm.2.1")]
    assert [x.subject for x in t.stream_targets("A", b"tok.B.data")] == [b"tok.B.data"]
    assert t.stream_targets("A", b"tok.C.data") == ()
    assert t.stream_targets("A", b"priv.x") == ()
    assert t.stream_targets("B", b"fa.a.x") == ()  # no chaining, nothing exported by B
    assert not t.exports_streams("B")


def test_skipped_are_reported() -> None:
    skipped = {(imp, subj) for imp, _kind, subj, _why in table().skipped}
    assert skipped == {("B", "priv.x"), ("B", "tok.*.data"), ("B", "x")}


def test_cache_and_update() -> None:
    t = table()
    first = t.stream_targets("A", b"a.q")
    assert t.stream_targets("A", b"a.q") is first
    gen = t.generation
    t.update([A, C])
    assert t.generation == gen + 1
    assert [x.importer for x in t.stream_targets("A", b"a.q")] == ["C"]
    small = ImportTable.build([A, B, C], cache_max=8)
    for i in range(100):
        small.stream_targets("A", b"a.%d" % i)
    assert small.cache_size() <= 8


def test_shadows() -> None:
    t = table()

    def sh(p: bytes) -> set[bytes]:
        return {s.subject for s in t.shadows("B", p)}

    assert sh(b">") == {b"a.>", b"m.*.*", b"tok.B.data"}
    assert sh(b"fa.>") == {b"a.>"}
    assert sh(b"fa.*") == set()  # fa.a.> needs at least three tokens
    assert sh(b"*.a.x") == {b"a.x", b"m.x.a"}
    assert sh(b"mm.*.5") == {b"m.5.*"}
    assert sh(b"nothing") == set()
    assert t.shadows("C", b"a.b") and not t.shadows("A", b">")


def test_service_targets() -> None:
    t = table()
    [x] = t.service_targets("B", b"bx")
    assert (x.exporter, x.subject, x.response_type, x.threshold) == ("A", b"svc.x", "singleton", 120.0)
    [s] = t.service_targets("B", b"svc.s")
    assert (s.subject, s.response_type, s.threshold) == (b"svc.s", "stream", 5.0)
    assert [w.subject for w in t.service_targets("B", b"bw.7.z.q")] == [b"w.7.z.q"]
    assert t.service_targets("B", b"svc.x") == ()  # imported under its local name only
    assert t.service_targets("B", b"w.1.2") == ()
    assert t.service_targets("C", b"bx") == ()


def test_export_authorizes() -> None:
    e = StreamExport(subject="tok.*.data", account_token_position=2)
    assert export_authorizes(e, "B", "tok.B.data")
    assert not export_authorizes(e, "B", "tok.C.data")
    assert not export_authorizes(e, "B", "tok.*.data")
    assert not export_authorizes(StreamExport(subject="a.b"), "B", "a.>")
    assert export_authorizes(StreamExport(subject="a.>", accounts=("B",)), "B", "a.b")


def test_find_import_cycle() -> None:
    assert find_import_cycle([A, B, C]) is None
    x = Account(
        name="X",
        stream_exports=(StreamExport(subject="s.>"),),
        stream_imports=(StreamImport(account="Y", subject="s.>"),),
    )
    y = Account(
        name="Y",
        stream_exports=(StreamExport(subject="s.>"),),
        stream_imports=(StreamImport(account="X", subject="s.>"),),
    )
    assert find_import_cycle([x, y]) in (["X", "Y", "X"], ["Y", "X", "Y"])
    # A prefix moves the flow out of the re-exported range: no cycle.
    y2 = Account(name="Y", stream_exports=y.stream_exports,
                 stream_imports=(StreamImport(account="X", subject="s.>", prefix="p"),))
    assert find_import_cycle([x, y2]) is None
    sa = Account(name="SA", service_exports=(ServiceExport(subject="q"),),
                 service_imports=(ServiceImport(account="SB", subject="q"),))
    sb = Account(name="SB", service_exports=(ServiceExport(subject="q"),),
                 service_imports=(ServiceImport(account="SA", subject="q"),))
    assert find_import_cycle([sa, sb]) is not None


_tok = st.sampled_from(["a", "b", "1"])


@given(
    st.sampled_from([("a.>", "fa", None), ("m.*.*", None, "mm.$2.$1"), ("m.*.*", None, "mm.*.*"),
                     ("a.*.>", None, "z.$1.>"), ("k.a", None, "kk")]),
    st.lists(_tok, min_size=1, max_size=4),
    st.lists(st.sampled_from(["*", "fa", "mm", "z", "kk", "a", "b", "1"]), min_size=1, max_size=4),
    st.booleans(),
)
def test_shadow_agrees_with_delivery(imp, pub_tail, sub_toks, fwc) -> None:  # type: ignore[no-untyped-def]
    """A subscriber gets the mapped subject exactly when the publish matches its shadow."""
    subject, prefix, to = imp
    route = StreamImportRoute.compile("B", StreamImport(account="A", subject=subject, prefix=prefix, to=to))
    pub = (subject.split(".")[0] + "." + ".".join(pub_tail)).encode()
    sub = ".".join([*sub_toks, ">"] if fwc else sub_toks).encode()
    mapped = route.map(pub)
    shadow = route.shadow(sub)
    via_shadow = shadow is not None and subject_matches(shadow, pub)
    direct = mapped is not None and subject_matches(sub, mapped)
    assert via_shadow == direct
